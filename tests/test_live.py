"""Live sources: a local process sends an MPEG-TS stream in real time on a pipe; `vidrec stream -`
reads it as it comes, reports while it plays, keeps latency bounded, and says when it stalls."""

import json
import os
import subprocess
import sys
import time

import pytest

import vidrec
from helpers import tiny_stream_model
from vidrec.io.live import as_file, is_live_source

PRODUCER = """
import sys, time
from fractions import Fraction
import av, numpy as np
seconds, stall = float(sys.argv[1]), float(sys.argv[2])
out = av.open(sys.stdout.buffer, "w", format="mpegts", options={"flush_packets": "1"}, buffer_size=1316)
v = out.add_stream("libx264", rate=10)
v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
v.options = {"tune": "zerolatency", "preset": "ultrafast"}
if len(sys.argv) > 3:  # a real clip, 10 frames a second of it
    with av.open(sys.argv[3]) as clip:
        frames = [f.to_ndarray(format="rgb24", width=64, height=48) for f in clip.decode(video=0)][::3]
else:
    frames = list(np.random.default_rng(0).integers(0, 255, (100, 48, 64, 3), dtype=np.uint8))
for i in range(int(seconds * 10)):
    f = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i % len(frames)]), format="rgb24")
    f.pts, f.time_base = i, Fraction(1, 10)
    for p in v.encode(f):
        out.mux(p)
    sys.stdout.buffer.flush()
    time.sleep(0.1)  # real time: 10 frames per second
time.sleep(stall)
for p in v.encode():
    out.mux(p)
out.close()
"""


def test_live_sources_are_recognised():
    assert is_live_source("-") and is_live_source("rtsp://cam/1") and is_live_source("/dev/video0")
    assert is_live_source("udp://127.0.0.1:5000") and not is_live_source("clip.mp4")


def _stream(
    tmp_path, seconds: float, stall: float, *extra: str, clip: str | None = None, command="stream", model=None
):
    (tmp_path / "producer.py").write_text(PRODUCER)
    tiny_stream_model().save_pretrained(tmp_path / "m")
    producer = subprocess.Popen(
        [sys.executable, str(tmp_path / "producer.py"), str(seconds), str(stall), *([clip] if clip else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    model = ["--model", model or str(tmp_path / "m")] if command != "detect" else []
    args = [sys.executable, "-m", "vidrec", command, "-", *model, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    consumer = subprocess.Popen(
        args, stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    producer.stdout.close()
    arrivals = []
    for line in consumer.stdout:
        arrivals.append((time.monotonic(), json.loads(line)))
    consumer.wait(timeout=120)
    producer.kill()
    return consumer, arrivals


@pytest.mark.slow
def test_a_live_stream_is_reported_while_it_plays(tmp_path, shared_videos):
    clip = os.path.join(shared_videos, "arm_wrestling.mp4")
    # 15 s: long enough that most of it plays after the reader has started (imports take seconds)
    consumer, arrivals = _stream(tmp_path, 15, 0, "--every", "1", "--json", clip=clip)
    assert consumer.returncode == 0, consumer.stderr.read()[-2000:]
    reports = [r for _, r in arrivals]
    assert reports[-1]["final"] and len(reports) >= 5
    first, last = arrivals[0][0], arrivals[-2][0]
    assert last - first >= 5.0  # the reports came out as the stream played, not all at its end
    live = reports[-1]["live"]
    print(f"live stream: {live}")
    assert live["decoded"] >= 140 and live["processed"] >= 30  # 15 s at 10 fps in, up to 5 fps looked at
    assert live["processed"] + live["skipped_for_rate"] + live["dropped"] == live["decoded"]
    assert live["latency_max_s"] < 5.0


@pytest.mark.slow
def test_a_stalled_live_stream_is_reported_not_waited_on(tmp_path):
    start = time.monotonic()
    consumer, arrivals = _stream(tmp_path, 1.5, 60, "--timeout", "3", "--json")
    took = time.monotonic() - start
    assert consumer.returncode == 2 and took < 45
    err = consumer.stderr.read()
    assert "stalled, no frame for 3 s" in err and err.count("\n") == 1


@pytest.mark.parametrize("source", ["udp://127.0.0.1:9", "/dev/video9"])
def test_unreachable_live_sources_fail_in_one_line(tmp_path, capsys, source):
    from vidrec.cli import main

    tiny_stream_model().save_pretrained(tmp_path / "m")
    assert main(["stream", source, "--model", str(tmp_path / "m"), "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and source in err


@pytest.mark.slow
def test_detect_reads_a_live_source(tmp_path, shared_videos, monkeypatch):
    from conftest import MOVINET_DIR, SSD_DIR

    for folder in (SSD_DIR, MOVINET_DIR):
        if not os.path.isdir(folder):
            pytest.skip(f"{folder} not found")
    monkeypatch.setenv("VIDREC_WEIGHTS", os.pathsep.join([SSD_DIR, MOVINET_DIR]))
    clip = os.path.join(shared_videos, "arm_wrestling.mp4")
    consumer, arrivals = _stream(tmp_path, 12, 0, "--json", "--fps", "1", clip=clip, command="detect")
    assert consumer.returncode == 0, consumer.stderr.read()[-2000:]
    looks = [r for _, r in arrivals]
    assert len(looks) >= 4 and all(set(r) == {"time", "frame", "tracks"} for r in looks)
    assert any(r["tracks"] for r in looks)  # people found in the live frames


def test_a_file_is_its_own_recording(tmp_path):
    with as_file(str(tmp_path / "clip.mp4"), seconds=5) as path:
        assert path == str(tmp_path / "clip.mp4")
    with pytest.raises(vidrec.errors.VideoError, match="not a live source: there is nothing to record"):
        with as_file(str(tmp_path / "clip.mp4"), seconds=5, keep=str(tmp_path / "r.mkv")):
            pass


@pytest.mark.slow
def test_predict_and_highlights_record_a_live_source_first(tmp_path, shared_videos):
    """Commands that need the whole video record the live source for --duration s (packets as
    sent), run on the recording, and keep it with --record."""
    clip = os.path.join(shared_videos, "arm_wrestling.mp4")
    record = tmp_path / "rec.mkv"
    consumer, arrivals = _stream(
        tmp_path, 8, 0, "--duration", "3", "--json", "--record", str(record), clip=clip, command="predict"
    )
    assert consumer.returncode == 0, consumer.stderr.read()[-2000:]
    (result,) = [r for _, r in arrivals]
    assert result["video"] == "-" and len(result["predictions"]) == 3  # the tiny model's classes
    info = vidrec.io.probe(record)
    assert 27 <= info.num_frames <= 31 and abs(info.duration - 3.0) < 0.25  # 3 s at 10 fps
    reel = tmp_path / "reel.mp4"
    consumer, _ = _stream(
        tmp_path, 8, 0, "--duration", "4", "--out", str(reel), "--on", "0.01", clip=clip, command="highlights"
    )
    assert consumer.returncode == 0, consumer.stderr.read()[-2000:]
    assert vidrec.io.probe(reel).num_frames > 0 and (tmp_path / "reel.timeline.png").exists()


@pytest.mark.slow
def test_a_live_source_that_stalls_while_recording_leaves_nothing(tmp_path):
    start = time.monotonic()
    record = tmp_path / "rec.mkv"
    consumer, _ = _stream(
        tmp_path, 1.5, 60, "--duration", "10", "--timeout", "3", "--record", str(record), command="predict"
    )
    assert consumer.returncode == 1 and time.monotonic() - start < 45  # predict: 1 = an input failed
    err = consumer.stderr.read()
    assert err.startswith("error: -: stalled, nothing for 3 s while recording") and err.count("\n") == 1
    assert not record.exists() and not list(tmp_path.glob(".rec*"))


@pytest.mark.slow
def test_a_causal_spotter_reports_events_while_the_stream_plays(tmp_path, shared_videos):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    width = tiny_stream_model().num_features  # the extractor: the tiny stream model `_stream` saves
    spotter = vidrec.create_model(
        "spotter_conv_causal", num_classes=2, in_features=width, rate=2.0, extractor=str(tmp_path / "m")
    )
    spotter.save_pretrained(tmp_path / "spotter")
    clip = os.path.join(shared_videos, "basketball_shooting.mp4")
    args = ("--json", "--threshold", "0", "--nms", "2")
    consumer, arrivals = _stream(
        tmp_path, 12, 0, *args, clip=clip, command="spot", model=str(tmp_path / "spotter")
    )
    assert consumer.returncode == 0, consumer.stderr.read()[-2000:]
    events = [e for _, e in arrivals]
    assert len(events) >= 4 and {e["label"] for e in events} <= {"class_0", "class_1"}
    assert arrivals[-1][0] - arrivals[0][0] >= 4.0  # reported as the stream played, not at its end
    late = [e["reported_at"] - e["time"] for e in events[:-2]]  # the last may close with the stream
    assert late == pytest.approx([1.0] * len(late), abs=0.26)  # nms/2 of stream time, to a step
