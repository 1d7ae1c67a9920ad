"""Clip loading speed: vidrec's sparse, seeking clip reader against decoding every frame.

Random training clips of 16 frames at stride 4 from 60 s, 30 fps H.264 videos (x264 defaults:
keyframe every 250 frames at most) at 320x240 and 1280x720. Each figure is the median of several
runs, measured in the same process as its reference, and reported as a ratio.

    python bench/decode.py [--repeats 5] [--clips 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import av
import numpy as np

from vidrec.data.sampling import ClipSampling, random_clip_indices
from vidrec.io import VideoReader
from vidrec.utils import atomic_write

CACHE = os.path.join(os.path.dirname(__file__), "..", ".cache", "bench")


def make_video(width: int, height: int, seconds: int = 60, fps: int = 30) -> str:
    path = os.path.join(CACHE, f"bench_{width}x{height}_{seconds}s.mp4")
    if os.path.exists(path):
        return path

    def write(tmp: str) -> None:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (height + 64, width + 64, 3), dtype=np.uint8)
        with av.open(tmp, "w", format="mp4") as out:
            s = out.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            s.options = {"preset": "veryfast", "crf": "23"}
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


def vidrec_clips(path: str, clips: int, rng: np.random.Generator) -> float:
    """Seconds per clip: open, index (cached after the first open), seek and decode 16 frames."""
    sampling = ClipSampling(num_frames=16, sampling_rate=4)
    t0 = time.perf_counter()
    for _ in range(clips):
        with VideoReader(path) as video:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clips", type=int, default=20)
    args = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    rows = []
    for w, h in ((320, 240), (1280, 720)):
        path = make_video(w, h)
        rng = np.random.default_rng(0)
        ours, full = [], []
        for _ in range(args.repeats):  # interleaved, so a slow spell hits both
            ours.append(vidrec_clips(path, args.clips, rng))
            full.append(decode_everything(path))
        a, b = statistics.median(ours), statistics.median(full)
        rows.append((f"{w}x{h}", 1 / a, 1 / b, b / a))
    print(f"\n{'video (60 s, 30 fps)':<22}{'vidrec clips/s':>16}{'decode-all clips/s':>20}{'ratio':>9}")
    for name, ours, full, ratio in rows:
        print(f"{name:<22}{ours:>16.2f}{full:>20.3f}{ratio:>8.1f}x")


if __name__ == "__main__":
    main()
