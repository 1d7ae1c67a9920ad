"""When: windowed stream scores, segments with hysteresis, statistics, the timeline, the CLI."""

import json

import numpy as np
import pytest
import torch

from helpers import tiny_stream_model
from vidrec.cli import main
from vidrec.errors import ConfigError
from vidrec.recognize.stream import stream_video
from vidrec.timeline.segments import SegmentConfig, Segmenter
from vidrec.timeline.statistics import plot_timeline, statistics
from vidrec.utils import write_video


def scores_at(t: float) -> list[float]:
    """Three labels: A for 0-5 s (with a dip to 0.3 at 2 s), B from 5 s, C a 0.4 s blip at 8 s."""
    a = 0.9 if t < 5 else 0.05
    if abs(t - 2.0) < 0.01:
        a = 0.3  # above `off`: the segment holds
    b = 0.85 if t >= 5 else 0.05
    c = 0.9 if 8.0 <= t < 8.4 else 0.0
    return [a, b, c]


def test_segments_with_hysteresis_and_minimum_length():
    seg = Segmenter(["A", "B", "C"], SegmentConfig(on=0.5, off=0.2, smooth=0.25, min_length=1.0), track=7)
    closed = []
    for t in np.arange(0, 12, 0.1):
        closed += seg.update(round(float(t), 2), scores_at(t))
    assert [s["label"] for s in closed] == ["A"]  # B is still open, C was too short
    a = closed[0]
    assert (
        a["start"] == 0.0 and 5.0 <= a["end"] <= 5.3 and a["peak"] == pytest.approx(0.9) and a["track"] == 7
    )
    rest = seg.finish(12.0)
    assert [(s["label"], s["start"], s["end"]) for s in rest] == [("B", pytest.approx(5.0, abs=0.2), 12.0)]
    stats = statistics(closed + rest)
    assert stats["labels"]["B"] == {"count": 1, "seconds": pytest.approx(7.0, abs=0.2)}
    assert stats["tracks"]["7: A"]["count"] == 1
    with pytest.raises(ConfigError, match="time order"):
        seg.update(1.0, [0, 0, 0])
    with pytest.raises(ConfigError, match="expected 3 scores"):
        seg.update(13.0, [0, 0])
    with pytest.raises(ConfigError, match="off <= on"):
        SegmentConfig(on=0.2, off=0.5)


def test_smoothing_bridges_a_one_report_drop():
    seg = Segmenter(["A"], SegmentConfig(on=0.5, off=0.3, smooth=1.0, min_length=0.0))
    closed = []
    for t in np.arange(0, 6, 0.25):
        closed += seg.update(float(t), [0.0 if abs(t - 3) < 0.01 else 0.9])  # one report at zero
    assert closed == [] and len(seg.finish()) == 1


def test_window_pools_the_last_frames_only(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (30, 40, 40, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10)  # 3 s: 15 frames at the model's 5 fps
    model = tiny_stream_model()
    whole = list(stream_video(model, tmp_path / "v.mp4", every=None, probs=True))[-1]["probs"]
    long = list(stream_video(model, tmp_path / "v.mp4", every=None, window=100.0, probs=True))[-1]["probs"]
    torch.testing.assert_close(long, whole)  # a window longer than the video is the whole stream
    final = list(stream_video(model, tmp_path / "v.mp4", every=None, window=0.2, probs=True, top_k=3))[-1]
    last = final["probs"]
    overall = {p["label"]: p["score"] for p in final["overall"]}  # the windowed stream's whole-video view
    assert overall == pytest.approx({label: float(whole[i]) for i, label in enumerate("abc")}, abs=1e-5)
    from vidrec.recognize.stream import model_frames

    clip = torch.cat([f for _, f in model_frames(tmp_path / "v.mp4", model.preprocessing, fps=5.0)], 1)[None]
    with torch.no_grad():
        feats, _ = model.step_features(clip, model.init_state(1, height=32, width=32))
        expected = model.forward_head(feats[:, -1]).softmax(-1)[0]  # the last frame's features alone
    torch.testing.assert_close(last, expected)
    assert (last - whole).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="--window"):
        next(stream_video(model, tmp_path / "v.mp4", window=-1.0))


def test_stream_command_writes_segments_and_timeline(tmp_path, capsys):
    frames = np.random.default_rng(1).integers(0, 255, (40, 40, 40, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10)
    tiny_stream_model().save_pretrained(tmp_path / "m")
    out = tmp_path / "segments.jsonl"
    argv = [
        "stream",
        str(tmp_path / "v.mp4"),
        "--model",
        str(tmp_path / "m"),
        "--every",
        "0.4",
        "--window",
        "1",
    ]
    assert main([*argv, "--segments", str(out), "--timeline", str(tmp_path / "t.png")]) == 0
    segments = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(s) == {"label", "start", "end", "peak", "track"} for s in segments)
    assert "segments:" in capsys.readouterr().err
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeline_png(tmp_path):
    times = [0.0, 1.0, 2.0]
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    segments = [{"label": "a", "start": 0.0, "end": 1.5, "peak": 0.9, "track": None}]
    plot_timeline(str(tmp_path / "t.png"), times, scores, ["a", "b"], segments)
    assert (tmp_path / "t.png").stat().st_size > 1000
