"""Fine-tuning real pretrained weights on a few real clips, as a new user does it: chunks of the real
clips in ../shared/videos (one clip per class; the first ~70% of each clip's chunks train, the rest
validate), then one `vidrec train --data D --model movinet_a0_int8.tflite --epochs 4` command.
Compared, each in its own process, with the same seeds:

- the defaults: the new classifier starts as a logistic regression on the frozen features
  (`model.head_init: probe`), everything then fine-tunes (backbone at 0.1x the lr, batch norms
  frozen), and the saved model is the checkpoint best on val, the probe included (`run.keep_best`);
- the earlier defaults: a random new classifier, the last epoch kept
  (`--set model.head_init=random --set run.keep_best=false`);
- the earlier linear probe: `--freeze-backbone` with a random head trained by AdamW, last epoch;
- the logistic regression alone (the defaults' epoch 0: scikit-learn's `LogisticRegression()` fit).

Each figure is the val top-1 of the model the run saved, read back by `vidrec eval`. One JSON
record per (chunk length, seed) under results/finetune_runs/; results/finetune.md is written from
the records alone (`--table`).

    python bench/finetune.py [--seconds 1 1.7] [--train-share 0.2 0.7] [--seeds 0 1 2]   # about 40 min
    python bench/finetune.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import av
import numpy as np

from common import describe_machine, machine, mean_std, read_records, write_table
from vidrec.utils import atomic_write_text, write_video

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")
RUNS = os.path.join(RESULTS, "finetune_runs")
TABLE = os.path.join(RESULTS, "finetune.md")
SHARED = os.path.join(HERE, "..", "..", "shared")
WEIGHTS = os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600", "movinet_a0_int8.tflite")
# one real clip per class
SOURCES = {
    "shooting basketball": "basketball_shooting.mp4",
    "soccer": "soccer_match_wide.mp4",
    "flipping pancake": "flipping_a_pancake.mkv",
    "arm wrestling": "arm_wrestling.mp4",
}
SHORT_SIDE = 180  # the chunks are stored small: MoViNet reads 172 px
TRAIN_SHARE = 0.7
# method -> the flags it adds to the common command
METHODS = {
    "defaults": [],
    "earlier defaults": ["--set", "model.head_init=random", "--set", "run.keep_best=false"],
    "earlier linear probe": [
        "--freeze-backbone", "--set", "model.head_init=random", "--set", "run.keep_best=false",
    ],
}  # fmt: skip


def read_frames(path: str) -> tuple[np.ndarray, float]:
    """Every frame, its short side resized to SHORT_SIDE by the decoder's scaler; and the fps."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        frames = []
        for frame in container.decode(stream):
            scale = SHORT_SIDE / min(frame.width, frame.height)
            w, h = round(frame.width * scale / 2) * 2, round(frame.height * scale / 2) * 2
            frames.append(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
    return np.stack(frames), fps


def make_chunks(root: str, videos: str, seconds: float, share: float = TRAIN_SHARE) -> dict[str, int]:
    """train.csv / val.csv / classes.txt in `root`: each source clip cut into chunks of `seconds`,
    split by time (the first `share` of each clip's chunks train). Returns the split sizes."""
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for label, name in SOURCES.items():
        frames, fps = read_frames(os.path.join(videos, name))
        n = round(seconds * fps)
        chunks = [frames[i : i + n] for i in range(0, len(frames) - n + 1, n)]
        train = max(1, round(share * len(chunks)))
        for k, chunk in enumerate(chunks):
            file = f"{label.replace(' ', '_')}_{k}.mp4"
            write_video(os.path.join(root, file), chunk, fps=fps)
            rows["train" if k < train else "val"].append(f"{file},{label}")
    for split, lines in rows.items():
        with open(os.path.join(root, f"{split}.csv"), "w") as f:
            f.write("path,label\n" + "\n".join(lines) + "\n")
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(SOURCES) + "\n")
    return {split: len(lines) for split, lines in rows.items()}


def vidrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidrec", *args]


def run_method(data: str, out: str, seed: int, flags: list[str], *, weights: str) -> dict:
    """One `vidrec train` run and the val figures of the model it saved."""
    command = [
        "train", "--data", data, "--model", weights, "--out", out, "--epochs", "4", "--batch-size", "4",
        "--lr", "0.001", "--seed", str(seed), "--workers", "0", "--quiet", *flags,
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(vidrec(*command), check=True)
    seconds = time.perf_counter() - t0
    val = subprocess.run(
        vidrec("eval", out, "--data", os.path.join(data, "val.csv"), "--json"),
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    metrics = json.loads(val)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {
        "command": shlex.join(["vidrec", *command]).replace(weights, "movinet_a0_int8.tflite"),
        "val_top1": metrics["top1"],
        "val_mean_class_acc": metrics["mean_class_acc"],
        "val_per_epoch": [round(r["val_top1"], 2) for r in rows if "val_top1" in r],
        "seconds": round(seconds, 1),
        "probe": next((r for r in rows if r.get("epoch") == 0 and "probe_train_top1" in r), None),
    }


def measure(seconds: float, seed: int, *, videos: str, weights: str, share: float = TRAIN_SHARE) -> dict:
    """Every method on chunks of `seconds`, the first `share` of each clip training, with `seed`."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        counts = make_chunks(data, videos, seconds, share)
        methods = {}
        for name, flags in METHODS.items():
            out = os.path.join(tmp, name.replace(" ", "_"))
            methods[name] = run_method(data, out, seed, flags, weights=weights)
            top1 = methods[name]["val_top1"]
            print(f"{seconds:g} s chunks, seed {seed}, {name}: val top-1 {top1:.1f}", flush=True)
    probe = methods["defaults"]["probe"]
    methods["logistic regression on the frozen features"] = {
        "val_top1": probe["val_top1"],
        "val_mean_class_acc": probe["val_mean_class_acc"],
        "train_top1": probe["probe_train_top1"],
    }
    return {
        "chunk_seconds": seconds,
        "train_share": share,
        "seed": seed,
        "counts": counts,
        "methods": methods,
        "machine": machine(),
    }


def table() -> str:
    """results/finetune.md from the records alone."""
    records = read_records(RUNS)
    lines = [
        "# Fine-tuning MoViNet-A0 (Kinetics-600) on a few real clips",
        "",
        "Written by `python bench/finetune.py --table` from the records in `results/finetune_runs/` "
        "(re-run: `python bench/finetune.py`, about 40 min on 2 cores). Four classes, one real clip "
        "each from ../shared/videos cut into chunks; the first chunks of each clip train (the share is "
        "in each section's title), the rest validate (chance 25%). Every run: `vidrec train --data D "
        "--model movinet_a0_int8.tflite --epochs 4 --batch-size 4 --lr 0.001 --seed SEED` plus the "
        "method's flags; the figure is the val top-1 % (mean class accuracy %) of the model the run "
        "saved. Means ± sample std over seeds.",
        "",
    ]
    groups: dict[tuple[float, float], list[dict]] = {}
    for r in records:
        groups.setdefault((r["chunk_seconds"], r["train_share"]), []).append(r)
    for (seconds, share), runs in sorted(groups.items()):
        counts = runs[0]["counts"]
        lines += [
            f"## Chunks of {seconds:g} s, the first {share:.0%} of each clip training: "
            f"{counts['train']} train, {counts['val']} val "
            f"(seeds {', '.join(str(r['seed']) for r in runs)})",
            "",
            "| method | val top-1 % | val mean class % | wall s |",
            "|---|---|---|---|",
        ]
        for name in runs[0]["methods"]:
            got = [r["methods"][name] for r in runs]
            wall = mean_std([g["seconds"] for g in got]) if "seconds" in got[0] else "(in the defaults' run)"
            lines.append(
                f"| {name} | {mean_std([g['val_top1'] for g in got])} "
                f"| {mean_std([g['val_mean_class_acc'] for g in got])} | {wall} |"
            )
        lines.append("")
    lines += ["Machines:", ""]
    lines += sorted({f"- {describe_machine(r['machine'])}" for r in records})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", nargs="+", type=float, default=[1.0, 1.7], help="chunk lengths")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--train-share", nargs="+", type=float, default=[0.2, 0.7], help="of each clip's chunks")
    ap.add_argument("--videos", default=os.path.join(SHARED, "videos"))
    ap.add_argument("--weights", default=WEIGHTS, help="the official MoViNet-A0 Stream int8 file")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    args = ap.parse_args()
    if not args.table:
        os.makedirs(RUNS, exist_ok=True)
        for seconds in args.seconds:
            for share in args.train_share:
                for seed in args.seeds:
                    path = os.path.join(RUNS, f"chunks{seconds:g}s_train{share:g}_seed{seed}.json")
                    if os.path.exists(path):
                        continue
                    record = measure(seconds, seed, videos=args.videos, weights=args.weights, share=share)
                    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
