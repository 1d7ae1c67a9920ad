import os

import numpy as np
import pytest

from vidrec.data.datasets import load_csv
from vidrec.data.synthetic import CLASSES, SHAPES, SynthConfig, generate_dataset, render_video, video_rng
from vidrec.errors import ConfigError
from vidrec.io import read_video

PLAIN = SynthConfig(num_frames=32, size=64, max_objects=1, texture=False)
PARTNER = {
    "move left": "move right",
    "move up": "move down",
    "approach": "recede",
    "rotate clockwise": "rotate counter-clockwise",
    "appear": "disappear",
}
PARTNER.update({v: k for k, v in PARTNER.items()})


def measure(frames: np.ndarray) -> dict:
    """Actor statistics read from the pixels of a one-object, flat-background video."""
    f = frames.astype(np.float64)
    colors, counts = np.unique(frames.reshape(-1, 3), axis=0, return_counts=True)
    bg = colors[counts.argmax()].astype(np.float64)
    weight = np.abs(f - bg).sum(-1)  # (T, H, W): actor coverage x opacity x colour contrast
    weight[weight < 12] = 0
    mass = weight.sum((1, 2))
    yy, xx = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    cx = (weight * xx).sum((1, 2)) / np.maximum(mass, 1e-9)
    cy = (weight * yy).sum((1, 2)) / np.maximum(mass, 1e-9)
    tips = []
    for t in range(len(frames)):  # the arrow's tip: the actor pixel farthest from its centroid
        ys, xs = np.nonzero(weight[t])
        d = (xs - cx[t]) ** 2 + (ys - cy[t]) ** 2
        tips.append(np.arctan2(ys[d.argmax()] - cy[t], xs[d.argmax()] - cx[t]) if len(d) else 0.0)
    peak = weight.reshape(len(frames), -1).max(1)  # opacity x contrast of the most covered pixel
    return {"mass": mass, "peak": peak, "x": cx, "y": cy, "heading": np.unwrap(np.array(tips))}


def classify(frames: np.ndarray) -> str:
    """Tell the class from measured motion alone (what a temporal model has to learn)."""
    m = measure(frames)
    mass, peak = m["mass"], m["peak"]
    if peak[0] < 0.3 * peak.max() or peak[-1] < 0.3 * peak.max():
        return "appear" if peak[-1] > peak[0] else "disappear"
    if mass.max() > 2.5 * mass.min():
        return "approach" if mass[-1] > mass[0] else "recede"
    turn = m["heading"][-1] - m["heading"][0]
    dx, dy = m["x"][-1] - m["x"][0], m["y"][-1] - m["y"][0]
    span = max(np.ptp(m["x"]), np.ptp(m["y"]))
    if span < 3 and abs(turn) > np.radians(45):
        return "rotate clockwise" if turn > 0 else "rotate counter-clockwise"  # y down: clockwise = +angle
    axis = m["x"] if np.ptp(m["x"]) > np.ptp(m["y"]) else m["y"]
    crossings = int((np.diff(np.sign(axis - (axis.max() + axis.min()) / 2)) != 0).sum())
    steps = np.diff(axis)
    if (steps * np.sign(steps.sum()) > -0.3).all():  # monotonic
        if abs(dx) > abs(dy):
            return "move right" if dx > 0 else "move left"
        return "move down" if dy > 0 else "move up"
    return "oscillate fast" if crossings >= 4 else "oscillate slow"


@pytest.mark.parametrize("label", CLASSES)
def test_pixels_show_the_labelled_motion(label):
    for seed in range(4):
        frames, _ = render_video(label, video_rng(seed, "train", CLASSES.index(label)), PLAIN)
        assert frames.shape == (32, 64, 64, 3) and frames.dtype == np.uint8
        assert classify(frames) == label, (label, seed)


@pytest.mark.parametrize("label", sorted(PARTNER))
def test_time_reversal_gives_the_partner_class(label):
    frames, _ = render_video(label, video_rng(7, "val", 3), PLAIN)
    assert classify(frames[::-1]) == PARTNER[label]
    # ...and the reversed video has exactly the same set of frames: order is the only cue.
    assert sorted(map(bytes, frames)) == sorted(map(bytes, frames[::-1]))


def test_fast_and_slow_oscillation_differ_in_frequency():
    def crossings(label, seed):
        track = render_video(label, video_rng(seed, "test", 0), PLAIN)[1]
        axis = track["x"] if np.ptp(track["x"]) > np.ptp(track["y"]) else track["y"]
        return int((np.diff(np.sign(axis - axis.mean())) != 0).sum())

    assert min(crossings("oscillate fast", s) for s in range(5)) >= 4
    assert max(crossings("oscillate slow", s) for s in range(5)) <= 3


def test_appearance_is_random_and_options_apply():
    a, ta = render_video("move left", video_rng(0, "train", 0))
    b, tb = render_video("move left", video_rng(0, "train", 1))
    assert not np.array_equal(a[0], b[0])
    noisy, _ = render_video("move left", video_rng(0, "train", 0), SynthConfig(noise=10, camera_jitter=1.5))
    assert noisy.shape == a.shape and not np.array_equal(noisy, a)
    with pytest.raises(ConfigError):
        SynthConfig(size=63)


def test_dataset_files_deterministic_and_resumable(tmp_path):
    out = str(tmp_path / "synth")
    cfg = SynthConfig(num_frames=8, size=32)
    stats = generate_dataset(out, counts={"train": 14, "val": 3, "test": 2}, cfg=cfg, seed=3, progress=False)
    assert stats == {"made": 19, "kept": 0}
    records, classes = load_csv(os.path.join(out, "train.csv"))
    assert classes == list(CLASSES) and len(records) == 14
    assert {r.label for r in records} == set(range(12))  # balanced: every class
    first = read_video(records[0].path)
    assert first.shape == (8, 32, 32, 3)
    os.remove(records[1].path)
    with open(records[2].path, "r+b") as f:
        f.truncate(100)
    stats = generate_dataset(out, counts={"train": 14, "val": 3, "test": 2}, cfg=cfg, seed=3, progress=False)
    assert stats == {"made": 2, "kept": 17}
    other = str(tmp_path / "again")
    generate_dataset(other, counts={"train": 2}, cfg=cfg, seed=3, workers=2, progress=False)
    np.testing.assert_array_equal(read_video(os.path.join(other, "videos/train/train_00000.mp4")), first)
    with pytest.raises(ConfigError, match="other settings"):
        generate_dataset(
            out, counts={"train": 1}, cfg=SynthConfig(num_frames=9, size=32), seed=3, progress=False
        )


def test_per_frame_labels_are_the_same_videos_labelled_by_their_actor_or_count(tmp_path):
    cfg = SynthConfig(num_frames=4, size=32)
    actions, shapes = str(tmp_path / "actions"), str(tmp_path / "shapes")
    generate_dataset(actions, counts={"train": 24}, cfg=cfg, seed=5, progress=False)
    generate_dataset(shapes, counts={"train": 24}, cfg=cfg, seed=5, workers=2, progress=False, label="shape")
    by_action, action_names = load_csv(os.path.join(actions, "train.csv"))
    by_shape, shape_names = load_csv(os.path.join(shapes, "train.csv"))
    assert shape_names == list(SHAPES)
    for i, (a, s) in enumerate(zip(by_action, by_shape)):
        _, track = render_video(action_names[a.label], video_rng(5, "train", i), cfg)
        assert shape_names[s.label] == track["shape"]
    assert len({r.label for r in by_shape}) >= 4  # several shapes, not one
    counted = str(tmp_path / "objects")
    generate_dataset(counted, counts={"train": 24}, cfg=cfg, seed=5, progress=False, label="objects")
    by_count, count_names = load_csv(os.path.join(counted, "train.csv"))
    assert count_names == ["1 object", "2 objects", "3 objects"]
    for i, (a, c) in enumerate(zip(by_action, by_count)):
        _, track = render_video(action_names[a.label], video_rng(5, "train", i), cfg)
        assert c.label + 1 == track["objects"]
    assert len({r.label for r in by_count}) == 3
    np.testing.assert_array_equal(read_video(by_action[7].path), read_video(by_shape[7].path))
    with pytest.raises(ConfigError, match="label"):
        generate_dataset(str(tmp_path / "x"), counts={"train": 1}, cfg=cfg, label="colour", progress=False)


def test_the_synthmotion_bench_records_finished_runs_and_reads_them_back(tmp_path, monkeypatch):
    """A run's figures go to the record when it finishes; a recorded run is read back without
    training (run folders do not outlive a machine, the record is committed); an override of the
    recipe is another experiment, never recorded nor read from the record."""
    from conftest import bench_module

    bench = bench_module("synthmotion")
    trained = []

    def fake_train_and_test(cfg, *, name):
        trained.append((name, cfg.run.seed, cfg.schedule.epochs))
        return {"recipe": name, "seed": cfg.run.seed, "top1": 50.0 + cfg.run.seed}

    monkeypatch.setattr(bench, "train_and_test", fake_train_and_test)
    record, runs = str(tmp_path / "record"), str(tmp_path / "runs")
    first = bench.run_one("fast_small", 1, data="d", runs=runs, record=record)
    assert first["top1"] == 51.0 and trained == [("fast_small", 1, 5)]
    assert bench.recorded(record, "fast_small", 1) and not bench.recorded(record, "fast_small", 2)
    assert bench.run_one("fast_small", 1, data="d", runs=runs, record=record) == first
    assert len(trained) == 1  # read back, not trained again
    bench.run_one("fast_small", 1, data="d", runs=runs, record=record, overrides=["schedule.epochs=1"])
    assert trained[-1] == ("fast_small", 1, 1) and len(os.listdir(record)) == 1
