"""SynthMotion-AVA: several actors with their own actions and boxes, in AVA's formats."""

import numpy as np
import pytest

from vidrec.cli import main
from vidrec.data.ava import read_boxes, read_label_map
from vidrec.data.synthetic_ava import (
    AVA_CLASSES,
    LABEL_MAP,
    STILL,
    SynthAvaConfig,
    keyframe_rows,
    render_ava_video,
)
from vidrec.errors import ConfigError
from vidrec.io import probe

SMALL = SynthAvaConfig(size=96, num_frames=24, cell=48)


def test_each_actor_has_its_action_and_a_tight_box():
    frames, actors = render_ava_video(np.random.default_rng(0), SMALL)
    assert frames.shape == (24, 96, 96, 3) and frames.dtype == np.uint8
    assert SMALL.min_actors <= len(actors) <= SMALL.max_actors
    for actor in actors:
        assert actor["label"] in AVA_CLASSES and len(actor["boxes"]) == 24
        for box in filter(None, actor["boxes"]):
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


def test_still_actors_do_not_move_and_movers_do():
    seen = set()
    for seed in range(40):
        _, actors = render_ava_video(np.random.default_rng(seed), SMALL)
        for a in actors:
            boxes = [b for b in a["boxes"] if b is not None]
            if len(boxes) < 2:
                continue
            shift = np.abs(np.array(boxes[-1]) - np.array(boxes[0])).max()
            if a["label"] == STILL:
                assert shift == 0
            elif a["label"].startswith("move"):
                assert shift > 0.1
            seen.add(a["label"])
    assert STILL in seen and "move left" in seen


def test_keyframe_rows_cover_visible_actors_and_some_enter_or_leave():
    cfg = SynthAvaConfig(size=96, num_frames=32, cell=48, enter_leave=1.0)
    assert cfg.keyframes == [1, 2, 3]
    partial = 0
    for seed in range(30):
        _, actors = render_ava_video(np.random.default_rng(seed), cfg)
        rows = keyframe_rows("v", actors, cfg)
        for r in rows:
            actor = actors[r.person_id]
            assert r.box == actor["boxes"][r.sec * cfg.fps]
            assert AVA_CLASSES[r.action_id - 1] == actor["label"]
        for person, a in enumerate(actors):
            present = {r.sec for r in rows if r.person_id == person}
            if a["label"].startswith("move") and 0 < len(present) < 3:
                partial += 1  # on screen for some keyframes only: it entered or left
    assert partial > 0


def test_synth_ava_cli_writes_readable_files(tmp_path, capsys):
    out = tmp_path / "sava"
    args = [
        "synth-ava",
        str(out),
        "--train",
        "3",
        "--val",
        "1",
        "--test",
        "1",
        "--size",
        "96",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    assert "5 videos made" in capsys.readouterr().out
    assert probe(out / "videos" / "train" / "train_00000.mp4").num_frames == 32
    rows = read_boxes(out / "train.csv", kind="gt")
    assert {r.video_id for r in rows} == {"train_00000", "train_00001", "train_00002"}
    assert read_label_map(out / "labels.pbtxt") == LABEL_MAP
    boxes = read_boxes(out / "train_boxes.csv", kind="boxes")
    assert len(boxes) >= len(rows) * 0.9 and all(b.score is not None for b in boxes)
    assert main(args) == 0  # resumable: the same settings keep the videos and write the same CSVs
    assert "0 videos made, 5 kept" in capsys.readouterr().out
    assert read_boxes(out / "train.csv", kind="gt") == rows
    assert main([*args, "--seed", "1"]) == 2  # other settings into the same folder: refused
    assert "made with other settings" in capsys.readouterr().err


def test_bad_settings():
    with pytest.raises(ConfigError, match="min_actors"):
        SynthAvaConfig(min_actors=3, max_actors=2)
    with pytest.raises(ConfigError, match="more than one second"):
        SynthAvaConfig(num_frames=10)
