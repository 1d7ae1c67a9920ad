"""Clip loading speed: vidrec's sparse, seeking clip reader against its earlier settings (frame
threads, every frame decoded) and against decoding every frame.

Random training clips of 16 frames at stride 4 from 60 s, 30 fps H.264 videos at 320x240 and
1280x720, each encoded twice: with 2 slices per frame (what PyAV's libx264 writes by default: slice
threads) and with 1 (frame threads, as most cameras and sites write), and from a real clip
(basketball_shooting.mp4, 960x480, 1 slice) when ../shared/videos has it. Each figure is the median
of several interleaved runs in one process; ratios are against the reference measured in it.

    python bench/decode.py [--repeats 5] [--clips 20]
    python bench/decode.py --table      # results/decode.md from the records

Each run writes a record (every row's clips/s, the machine, the commit) to results/decode_runs/;
results/decode.md is written from the records alone. Cost: about 5 min (the videos are made once,
into .cache/bench).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import av
import numpy as np

from common import describe_machine, machine, read_records, write_table
from vidrec.data.sampling import ClipSampling, random_clip_indices
from vidrec.io import VideoReader
from vidrec.utils import atomic_write, atomic_write_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RUNS = os.path.join(RESULTS, "decode_runs")
TABLE = os.path.join(RESULTS, "decode.md")
SIZES = ((320, 240), (1280, 720))
CACHE = os.path.join(os.path.dirname(__file__), "..", ".cache", "bench")


def make_video(width: int, height: int, seconds: int = 60, fps: int = 30, slices: int = 2) -> str:
    name = f"bench_{width}x{height}_{seconds}s" + ("" if slices == 2 else f"_{slices}slice")
    path = os.path.join(CACHE, f"{name}.mp4")
    if os.path.exists(path):
        return path

    def write(tmp: str) -> None:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (height + 64, width + 64, 3), dtype=np.uint8)
        with av.open(tmp, "w", format="mp4") as out:
            s = out.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            s.options = {"preset": "veryfast", "crf": "23", "slices": str(slices)}
            if slices == 1:
                s.codec_context.thread_type = "FRAME"
            for i in range(seconds * fps):
                dx, dy = (i * 2) % 64, (i // 3) % 64  # a moving texture, so frames differ
                img = np.ascontiguousarray(base[dy : dy + height, dx : dx + width])
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)

    print(f"making {path} ...", flush=True)
    atomic_write(path, write)
    return path


class EarlierReader(VideoReader):
    """The reader's settings before the skipping of unwanted frames, slice threads and the probe
    that decodes nothing."""

    thread_type = "AUTO"  # frame and slice threads allowed: FFmpeg takes frame threads for H.264
    skip_unwanted = False
    full_probe = True


def vidrec_clips(path: str, clips: int, rng: np.random.Generator, reader=VideoReader) -> float:
    """Seconds per clip: open, index (cached after the first open), seek and decode 16 frames."""
    sampling = ClipSampling(num_frames=16, sampling_rate=4)
    t0 = time.perf_counter()
    for _ in range(clips):
        with reader(path) as video:
            frames = video.get_frames(random_clip_indices(len(video), sampling, rng=rng))
        assert frames.shape[0] == 16
    return (time.perf_counter() - t0) / clips


def decode_everything(path: str) -> float:
    """Seconds per clip when a loader decodes every frame to RGB and then picks 16."""
    t0 = time.perf_counter()
    with av.open(path) as c:
        c.streams.video[0].thread_type = "AUTO"
        n = sum(1 for f in c.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
    assert n > 0
    return time.perf_counter() - t0


def table() -> str:
    """results/decode.md from the records alone: one table per run, newest first."""
    lines = [
        "# Clip loading speed",
        "",
        "Written by `python bench/decode.py --table` from the records in `results/decode_runs/` "
        "(re-run: `python bench/decode.py`, about 5 min). Random training clips of 16 frames at stride 4, "
        "clips/s: vidrec's reader now, the same reader with its earlier settings (frame threads, every "
        "frame decoded, a probe that decodes), and decoding every frame of the video for one clip. "
        "Medians of interleaved repeats in one process.",
    ]
    for r in reversed(read_records(RUNS)):
        lines += [
            "",
            f"## {r['machine']['date'][:10]}: {describe_machine(r['machine'])}",
            "",
            "| video | vidrec clips/s | earlier settings clips/s | ratio | decoding every frame, clips/s |",
            "|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            lines.append(
                f"| {row['video']} | {row['clips_per_s']:.2f} | {row['earlier_clips_per_s']:.2f} "
                f"| {row['clips_per_s'] / row['earlier_clips_per_s']:.2f}x | {row['decode_all_per_s']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--table", action="store_true", help="only write results/decode.md from the records")
    args = ap.parse_args()
    if args.table:
        write_table(TABLE, table())
        return
    os.makedirs(CACHE, exist_ok=True)
    videos = {
        f"{w}x{h}, {k} slice{'s' * (k > 1)}": make_video(w, h, slices=k) for w, h in SIZES for k in (2, 1)
    }
    real = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "videos", "basketball_shooting.mp4")
    if os.path.exists(real):
        videos["basketball_shooting 960x480, 1 slice (19 s)"] = real
    rows = []
    for name, path in videos.items():
        now, before, full = [], [], []
        for r in range(args.repeats):  # interleaved, so a slow spell hits each
            now.append(vidrec_clips(path, args.clips, np.random.default_rng(r)))
            before.append(vidrec_clips(path, args.clips, np.random.default_rng(r), EarlierReader))
            full.append(decode_everything(path))
        a, b, c = (statistics.median(x) for x in (now, before, full))
        rows.append(
            {"video": name, "clips_per_s": 1 / a, "earlier_clips_per_s": 1 / b, "decode_all_per_s": 1 / c}
        )
        print(rows[-1], flush=True)
    record = {"repeats": args.repeats, "clips": args.clips, "rows": rows, "machine": machine()}
    os.makedirs(RUNS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    atomic_write_text(os.path.join(RUNS, f"{stamp}.json"), json.dumps(record, indent=1) + "\n")
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
