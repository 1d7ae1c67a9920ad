"""How soon a change of action shows: MoViNet-A0 Stream on real clips played back to back, its
whole-stream pool against a window of the last seconds, and the segments each gives.

The clips of ../shared/videos (pancake 10.3 s, arm wrestling 10 s, basketball 19.2 s, soccer 10 s)
are cut to `--seconds` each, resized (short side 256, centre crop 340x256) and resampled to 25 fps
into one video. For each boundary: the delay until the running top-1 becomes the label MoViNet
gives that clip alone. Writes a record (results/segments_runs/segments.json: the delays, the
segments, the settings, the machine and commit), then results/segments.md from it,
segments_window.jsonl and segments_timeline.png.

    python bench/segments.py [--seconds 8] [--window 2]     # about 2 min on 2 cores
    python bench/segments.py --table                         # results/segments.md from the record
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from common import describe_machine, machine
from vidrec.data.sampling import resample_timeline
from vidrec.data.transforms import crop, frames_to_clip, resize_short_side
from vidrec.io import VideoReader
from vidrec.models.loader import load_model
from vidrec.recognize.stream import stream_video
from vidrec.timeline.segments import SegmentConfig, Segmenter
from vidrec.timeline.statistics import plot_timeline, statistics
from vidrec.utils import VideoWriter, atomic_write_text

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RECORD = os.path.join(RESULTS, "segments_runs", "segments.json")
TABLE = os.path.join(RESULTS, "segments.md")
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


def table(record: dict | None = None) -> str:
    """results/segments.md from the record alone."""
    if record is None:
        with open(RECORD) as f:
            record = json.load(f)
    settings, runs = record["settings"], record["delays"]
    lines = [
        "# When an action changes: MoViNet-A0 Stream on real clips back to back",
        "",
        "Written by `python bench/segments.py --table` from `results/segments_runs/segments.json` "
        f"(re-run: `python bench/segments.py`, about 2 min). {len(record['starts'])} clips of "
        f"{settings['seconds']:g} s from ../shared/videos, one video at {FPS} fps; reports every "
        f"{settings['every']:g} s. Delay: from a clip's start to the first report whose top-1 is the "
        "label MoViNet gives that clip alone.",
        "",
        "| clip (starts at) | label alone | " + " | ".join(f"delay, {n}" for n in runs) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for k, (name, start) in enumerate(record["starts"]):
        cells = [f"{runs[n][k]} s" if runs[n][k] is not None else "never" for n in runs]
        lines.append(f"| {name} ({start:g} s) | {record['truth'][name]} | " + " | ".join(cells) + " |")
    lines += ["", f"Segments from the windowed scores ({settings['segments']}):", ""]
    lines += [
        f"- {s['label']}: {s['start']:g}-{s['end']:g} s, peak {s['peak']:.2f}" for s in record["segments"]
    ]
    labels = record["stats"]["labels"].items()
    lines += [
        "",
        "Per label: " + ", ".join(f"{k} {v['count']}x {v['seconds']:g} s" for k, v in labels),
        "",
        f"Machine: {describe_machine(record['machine'])}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=RESULTS, help="where segments_window.jsonl and the timeline go")
    p.add_argument("--table", action="store_true", help="only write results/segments.md from the record")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of each clip")
    p.add_argument("--window", type=float, default=2.0, help="seconds pooled by the windowed stream")
    p.add_argument("--every", type=float, default=0.5)
    p.add_argument("--work", default="/tmp/vidrec_segments")
    args = p.parse_args(argv)
    if args.table:
        atomic_write_text(TABLE, table())
        return 0
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
    measured = {n: delays(r, starts, truth) for n, r in runs.items()}
    windowed = runs[f"window {args.window:g} s"][:-1]
    labels = model.labels
    segmenter = Segmenter(labels, SegmentConfig())
    segments = []
    for r in windowed:
        segments += segmenter.update(r["time"], r["probs"].numpy())
    segments += segmenter.finish()
    stats = statistics(segments)
    settings = {"seconds": args.seconds, "window": args.window, "every": args.every}
    record = {
        "settings": {**settings, "segments": str(SegmentConfig())},
        "starts": starts,
        "truth": truth,
        "delays": measured,
        "segments": segments,
        "stats": stats,
        "machine": machine(),
    }
    os.makedirs(os.path.dirname(RECORD), exist_ok=True)
    atomic_write_text(RECORD, json.dumps(record, indent=1) + "\n")
    atomic_write_text(TABLE, table(record))
    os.makedirs(args.results, exist_ok=True)
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
    print(table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
