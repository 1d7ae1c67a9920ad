"""Highlight reels: choosing segments, frame-exact cuts with the audio kept, the command."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

import vidrec
from helpers import tiny_stream_model
from vidrec.cli import main
from vidrec.errors import ConfigError
from vidrec.timeline.highlights import choose, cut_reel


def video_with_audio(path, seconds=6, fps=10, rate=16000):
    """Frame i shows its number as a grey level (frame-exact checks); a 440 Hz tone throughout."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=rate)
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(v.encode(frame))
        t = np.arange(seconds * rate) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024][None]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            c.mux(a.encode(frame))
        c.mux(v.encode())
        c.mux(a.encode())


def test_choose_pads_merges_and_keeps_the_best():
    segments = [
        {"label": "goal", "start": 10.0, "end": 12.0, "peak": 0.9},
        {"label": "goal", "start": 12.5, "end": 14.0, "peak": 0.6},  # touches the first once padded
        {"label": "pass", "start": 30.0, "end": 31.0, "peak": 0.99},
        {"label": "goal", "start": 50.0, "end": 51.0, "peak": 0.5},
        {"label": "goal", "start": 0.2, "end": 1.0, "peak": 0.7},
    ]
    assert choose(segments, labels=["goal"], top=3, pad=1.0, duration=60) == [(0.0, 2.0), (9.0, 15.0)]
    assert choose(segments, labels=None, top=1, pad=0.5, duration=30.8) == [(29.5, 30.8)]
    with pytest.raises(ConfigError, match="no segments of dunk"):
        choose(segments, labels=["dunk"], top=3, pad=1.0, duration=60)


def test_reel_is_frame_exact_and_keeps_the_audio(tmp_path):
    video_with_audio(tmp_path / "v.mp4")
    stats = cut_reel(tmp_path / "v.mp4", [(1.0, 2.0), (4.0, 4.5)], tmp_path / "reel.mp4")
    assert stats == {"frames": 15, "seconds": 1.5, "audio": True}
    frames = vidrec.io.read_video(tmp_path / "reel.mp4")
    levels = [int(np.median(f)) for f in frames]
    expected = [4 * i for i in list(range(10, 20)) + list(range(40, 45))]
    assert np.abs(np.array(levels) - expected).max() <= 2  # source frames 10-19 then 40-44
    with av.open(str(tmp_path / "reel.mp4")) as c:
        audio = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(audio))
    assert abs(samples / 16000 - 1.5) < 0.1


@pytest.mark.slow
def test_highlights_command(tmp_path, capsys):
    video_with_audio(tmp_path / "v.mp4", seconds=4)
    model = tiny_stream_model()
    with torch.no_grad():
        model.head.bias[:] = torch.tensor([12.0, 0.0, 0.0])  # "a" throughout
    model.save_pretrained(tmp_path / "m")
    argv = [
        "highlights",
        str(tmp_path / "v.mp4"),
        "--model",
        str(tmp_path / "m"),
        "--out",
        str(tmp_path / "r.mp4"),
    ]
    assert main([*argv, "--labels", "a", "--pad", "0", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["label"] for s in printed] == ["a"] and printed[0]["end"] == pytest.approx(4.0)
    assert (tmp_path / "r.segments.jsonl").exists() and (tmp_path / "r.timeline.png").exists()
    assert vidrec.io.probe(tmp_path / "r.mp4").has_audio
    assert main([*argv, "--labels", "b"]) == 2
    assert "no segments of b" in capsys.readouterr().err
    assert main([*argv, "--labels", "zebra"]) == 2
    assert "unknown label 'zebra'" in capsys.readouterr().err
