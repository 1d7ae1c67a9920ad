"""Finding people: tiles that cover a frame, merging boxes across tiles, the SSD person detector
on a real wide shot, and boxes read from a CSV."""

import os

import numpy as np
import pytest
import torch

import vidrec
from vidrec.errors import ConfigError
from vidrec.people.detectors import CSVPersons, Persons, SSDPersons, merge_tiles, tile_grid


def test_tiles_cover_the_frame_with_overlap():
    tiles = tile_grid(1728, 3072, tile=400, overlap=0.25)
    assert all(x1 - x0 == 400 and y1 - y0 == 400 for x0, y0, x1, y1 in tiles)
    covered = np.zeros((1728, 3072), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({t[0] for t in tiles})
    assert xs[0] == 0 and xs[-1] == 3072 - 400 and max(np.diff(xs)) == 300  # 100 px (25%) overlap
    assert len(tiles) == len(xs) * len({t[1] for t in tiles}) == 10 * 6
    assert tile_grid(200, 300, tile=400, overlap=0.25) == [(0, 0, 200, 200), (100, 0, 300, 200)]
    with pytest.raises(vidrec.errors.ConfigError, match="overlap"):
        tile_grid(100, 100, tile=50, overlap=1.0)


def test_merging_keeps_one_box_per_person():
    boxes = torch.tensor(
        [
            [100, 100, 140, 200],  # a player seen whole by one tile
            [100, 100, 140, 140],  # ... and cut by the next tile's edge: inside the first
            [101, 99, 141, 201],  # ... and again by a third tile: NMS
            [130, 100, 170, 200],  # a second player overlapping the first (IoU 0.14, 25% inside)
        ],
        dtype=torch.float32,
    )
    scores = torch.tensor([0.6, 0.7, 0.55, 0.5])
    assert merge_tiles(boxes, scores).tolist() == [0, 3]  # the whole box replaces the cut one
    assert merge_tiles(boxes[[0, 1]], torch.tensor([0.6, 0.5])).tolist() == [0]


@pytest.mark.slow
def test_tiles_find_the_small_players_of_a_wide_shot(ssd_tflite, shared_videos):
    """soccer_match_wide.mp4 (3072x1728): players a few dozen pixels tall. Measured: 5 and 6 people
    on the whole frame, 30 and 24 with 400 px tiles (min score 0.5)."""
    from vidrec.io import open_video

    frames = open_video(os.path.join(shared_videos, "soccer_match_wide.mp4")).get_frames([0, 125])
    model = vidrec.load_model(ssd_tflite)
    whole = SSDPersons(model)(frames)
    tiled_detector = SSDPersons(model, tile=400)
    tiled = tiled_detector(frames)
    print(
        "persons per frame, whole frame:", [len(p) for p in whole], "400 px tiles:", [len(p) for p in tiled]
    )
    assert tiled_detector.tiles_per_frame == 1 + 60
    for w, t in zip(whole, tiled):
        assert len(t) >= 20 and len(t) >= 3 * len(w)
        heights = t.boxes[:, 3] - t.boxes[:, 1]
        assert np.median(heights) < 100 and (heights < 300).all()
        assert (t.boxes[:, [0, 2]] <= 3072).all() and (t.boxes[:, [1, 3]] <= 1728).all()


def test_persons_from_a_csv(tmp_path):
    (tmp_path / "boxes.csv").write_text("v1,0902,0.1,0.2,0.3,0.6,,0.9\nv1,0902,0.5,0.5,0.6,0.9,,0.2\n")
    persons = CSVPersons(str(tmp_path / "boxes.csv"), min_score=0.5).persons("v1", 902, 200, 100)
    np.testing.assert_allclose(persons.boxes, [[20, 20, 60, 60]], atol=1e-4)
    assert persons.scores.tolist() == [pytest.approx(0.9)]
    assert len(CSVPersons(str(tmp_path / "boxes.csv")).persons("v1", 903, 200, 100)) == 0
    # a detections CSV repeats a box per action: one person, at its best score
    (tmp_path / "d.csv").write_text(
        "v1,1,0.1,0.2,0.3,0.6,4,0.7\nv1,1,0.1,0.2,0.3,0.6,9,0.8\nv1,2,0,0,1,1,4,0.6\n"
    )
    detector = CSVPersons(str(tmp_path / "d.csv"), video_id="v1")
    frames = np.zeros((3, 100, 200, 3), np.uint8)
    near = detector(frames, times=[1.2, 1.6, 7.0])  # seconds 1, 2, and 7 (none)
    assert [len(p) for p in near] == [1, 1, 0] and near[0].scores.tolist() == [pytest.approx(0.8)]
    np.testing.assert_allclose(near[1].boxes, [[0, 0, 200, 100]])
    with pytest.raises(ConfigError, match="need the video's id and each frame's time"):
        detector(frames)


def test_tiles_follow_the_size_of_the_people_found():
    """With `fit`, the tile side becomes 2.5x the median height of the people lately found with a
    score >= 0.7 (a multiple of 16, within `fit`); weaker boxes and too few heights change nothing."""

    class Model:
        def eval(self):
            return self

    finder = SSDPersons(Model(), tile=480, fit=(240, 480))
    people = lambda h, s: Persons(np.array([[0, 0, 40, h]] * 3, np.float32), np.full(3, s, np.float32))  # noqa: E731
    finder._fit_tiles(people(100, 0.9))
    assert finder.tile == 480  # three heights: not yet
    finder._fit_tiles(people(100, 0.5))
    assert finder.tile == 480  # weak boxes are not counted
    finder._fit_tiles(people(120, 0.9))
    assert finder.tile == int(2.5 * 110) // 16 * 16  # median of 100, 100, 100, 120, 120, 120
    for _ in range(30):
        finder._fit_tiles(people(40, 0.9))
    assert finder.tile == 240  # small people: the least side
    for _ in range(64):
        finder._fit_tiles(people(int(0.9 * 480 / 2.5) + 1, 0.9))
    assert finder.tile == 480  # within 90% of the largest: the largest (one row of tiles, not two)
    for _ in range(64):
        finder._fit_tiles(people(int(0.9 * 480 / 2.5) - 8, 0.9))
    assert finder.tile == int(2.5 * (int(0.9 * 480 / 2.5) - 8)) // 16 * 16 < 0.9 * 480
    assert SSDPersons(Model(), tile=480).fit is None
