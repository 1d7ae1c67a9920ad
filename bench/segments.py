"""How soon a change of action shows: MoViNet-A0 Stream on real clips played back to back, its
whole-stream pool against a window of the last seconds, and the segments each gives.

The clips of ../shared/videos (pancake 10.3 s, arm wrestling 10 s, basketball 19.2 s, soccer 10 s)
are cut to `--seconds` each, resized (short side 256, centre crop 340x256) and resampled to 25 fps
into one video. For each boundary: the delay until the running top-1 becomes the label MoViNet
gives that clip alone. Writes RESULTS/segments.md, segments_window.jsonl and segments_timeline.png.

    python bench/segments.py --results results [--seconds 8] [--window 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from vidrec.data.sampling import resample_timeline
from vidrec.data.transforms import crop, frames_to_clip, resize_short_side
from vidrec.io import VideoReader
from vidrec.models.loader import load_model
from vidrec.recognize.stream import stream_video
from vidrec.timeline.segments import SegmentConfig, Segmenter
from vidrec.timeline.statistics import plot_timeline, statistics
from vidrec.utils import VideoWriter, atomic_write_text

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
CLIPS = ["flipping_a_pancake.mkv", "arm_wrestling.mp4", "basketball_shooting.mp4", "soccer_match_wide.mp4"]
FPS = 25


def concatenate(out: str, seconds: float) -> list[tuple[str, float]]:
    """The clips back to back in one video at 25 fps; (clip, start time) of each."""
    writer, starts, t0 = VideoWriter(out, fps=FPS), [], 0.0
    for name in CLIPS:
        with VideoReader(os.path.join(SHARED, "videos", name)) as video:
            ticks = resample_timeline(video.timestamps, FPS)[: int(seconds * FPS)]
            frames = video.get_frames(np.unique(ticks))
            lookup = {int(i): f for i, f in zip(np.unique(ticks), frames)}
            for i in ticks:
                clip = frames_to_clip(lookup[int(i)][None])  # (3, 1, H, W)
                clip = resize_short_side(clip, 256)
                h, w = clip.shape[-2:]
                clip = (
                    crop(clip, (h - 256) // 2, (w - 340) // 2, 256, 340) if w >= 340 else clip[..., :256, :]
                )
                writer.write(clip[:, 0].permute(1, 2, 0).numpy())
        starts.append((name, t0))
        t0 += len(ticks) / FPS
    writer.close()
    return starts


def delays(reports: list[dict], starts: list[tuple[str, float]], truth: dict[str, str]) -> list[float | None]:
    out = []
    for k, (name, start) in enumerate(starts):
        end = starts[k + 1][1] if k + 1 < len(starts) else float("inf")
        hit = next(
            (
                r["time"]
                for r in reports
                if start < r["time"] <= end and r["predictions"][0]["label"] == truth[name]
            ),
            None,
        )
        out.append(None if hit is None else round(hit - start, 2))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of each clip")
    p.add_argument("--window", type=float, default=2.0, help="seconds pooled by the windowed stream")
    p.add_argument("--every", type=float, default=0.5)
    p.add_argument("--work", default="/tmp/vidrec_segments")
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    os.environ.setdefault("VIDREC_WEIGHTS", os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600"))
    model = load_model("movinet_a0_stream")
    video = os.path.join(args.work, "concat.mp4")
    starts = concatenate(video, args.seconds)
    truth = {}
    for name, start in starts:  # each clip alone, as cut into the concatenation
        alone = os.path.join(args.work, f"alone_{name}.mp4")
        with VideoReader(video) as v:
            idx = np.flatnonzero(
                (v.timestamps >= start - 1e-6) & (v.timestamps < start + args.seconds - 1e-6)
            )
            frames = v.get_frames(idx)
        writer = VideoWriter(alone, fps=FPS)
        for f in frames:
            writer.write(f)
        writer.close()
        truth[name] = list(stream_video(model, alone, every=None))[-1]["predictions"][0]["label"]
    runs = {}
    for name, window in (("whole stream", None), (f"window {args.window:g} s", args.window)):
        with torch.inference_mode():
            runs[name] = list(stream_video(model, video, every=args.every, window=window, probs=True))
    lines = [
        "# When an action changes: MoViNet-A0 Stream on real clips back to back",
        "",
        f"`python bench/segments.py` (this machine, 2 CPU cores). {len(CLIPS)} clips of {args.seconds:g} s "
        f"from ../shared/videos, one video at {FPS} fps; reports every {args.every:g} s. Delay: from a "
        "clip's start to the first report whose top-1 is the label MoViNet gives that clip alone.",
        "",
        "| clip (starts at) | label alone | " + " | ".join(f"delay, {n}" for n in runs) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    measured = {n: delays(r, starts, truth) for n, r in runs.items()}
    for k, (name, start) in enumerate(starts):
        cells = [f"{measured[n][k]} s" if measured[n][k] is not None else "never" for n in runs]
        lines.append(f"| {name} ({start:g} s) | {truth[name]} | " + " | ".join(cells) + " |")
    windowed = runs[f"window {args.window:g} s"][:-1]
    labels = model.labels
    segmenter = Segmenter(labels, SegmentConfig())
    segments = []
    for r in windowed:
        segments += segmenter.update(r["time"], r["probs"].numpy())
    segments += segmenter.finish()
    stats = statistics(segments)
    lines += ["", f"Segments from the windowed scores ({SegmentConfig()}):", ""]
    lines += [f"- {s['label']}: {s['start']:g}-{s['end']:g} s, peak {s['peak']:.2f}" for s in segments]
    lines += [
        "",
        "Per label: "
        + ", ".join(f"{k} {v['count']}x {v['seconds']:g} s" for k, v in stats["labels"].items()),
    ]
    os.makedirs(args.results, exist_ok=True)
    atomic_write_text(os.path.join(args.results, "segments.md"), "\n".join(lines) + "\n")
    atomic_write_text(
        os.path.join(args.results, "segments_window.jsonl"), "".join(json.dumps(s) + "\n" for s in segments)
    )
    times = [r["time"] for r in windowed]
    plot_timeline(
        os.path.join(args.results, "segments_timeline.png"),
        times,
        np.stack([r["probs"].numpy() for r in windowed]),
        labels,
        segments,
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
