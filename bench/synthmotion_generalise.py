"""Does a model trained on SynthMotion generalise within the task, or memorise the generator's
draws? Test sets made with other seeds, other frame sizes, pixel noise, camera shake and more
distractors, and moving shapes drawn by another program (bench/foreign_shapes.py: OpenCV, other
shapes and motion profiles, gradient or real-footage backgrounds); top-1, accuracy within
time-reversal pairs and on oscillate fast/slow for each.

    python bench/synthmotion_generalise.py --model i3d_small.synthmotion [--videos 240] [--out results/...md]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

import torch

from foreign_shapes import FOOTAGE, write_foreign_set
from vidrec.data.datasets import load_csv
from vidrec.data.synthetic import (
    PACE_PAIR,
    SynthConfig,
    generate_dataset,
    pair_accuracy,
    reversal_pair_accuracy,
)
from vidrec.models.loader import load_model
from vidrec.recognize.evaluate import evaluate
from vidrec.utils import atomic_write_text

# name -> (SynthConfig, seed): every set differs from the training draws (seed 0 or 1, 64 px).
VARIANTS = {
    "other seed (7), 64 px": (SynthConfig(), 7),
    "48 px": (SynthConfig(size=48), 8),
    "96 px": (SynthConfig(size=96), 9),
    "noise std 8": (SynthConfig(noise=8.0), 10),
    "camera shake std 2 px": (SynthConfig(camera_jitter=2.0), 11),
    "0-3 distractors": (SynthConfig(max_objects=4), 12),
    "easy: flat, actor alone": (SynthConfig(max_objects=1, texture=False), 13),
}
# background -> seed of the sets drawn by bench/foreign_shapes.py (OpenCV, other shapes and motions).
FOREIGN = {"gradient": 14, "footage": 15}


def _pct(value: float) -> str:
    """A percentage, or why there is none (no video was predicted inside any pair)."""
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def test_row(model, name: str, csv: str) -> str:
    """One table row: `model` on the videos of `csv`."""
    records, _ = load_csv(csv, classes=model.labels)
    result = evaluate(model, records, details=True, progress=False)
    confusion = result["confusion_matrix"]
    pairs, pace = reversal_pair_accuracy(confusion), pair_accuracy(confusion, [PACE_PAIR])
    return f"| {name} | {result['top1']:.1f} | {_pct(pairs)} | {_pct(pace)} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="i3d_small.synthmotion", help="weights tag or model directory")
    ap.add_argument("--videos", type=int, default=240, help="test videos per variant (a multiple of 12)")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    ap.add_argument("--foreign-only", action="store_true", help="only the sets drawn by foreign_shapes.py")
    ap.add_argument(
        "--footage", default=FOOTAGE, help="real clips whose frames are foreign_shapes' backgrounds"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    rows = ["| test set | top-1 % | within reversal pairs % | oscillate fast/slow % |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, seed) in ({} if args.foreign_only else VARIANTS).items():
            data = os.path.join(tmp, str(seed))
            counts = {"test": args.videos}
            generate_dataset(data, counts=counts, cfg=cfg, seed=seed, workers=2, progress=False)
            rows.append(test_row(model, name, os.path.join(data, "test.csv")))
            print(rows[-1], flush=True)
        for background, seed in FOREIGN.items():  # drawn by another program: bench/foreign_shapes.py
            name = f"another renderer (foreign_shapes.py), {background} background"
            try:
                csv = write_foreign_set(
                    os.path.join(tmp, background),
                    videos=args.videos,
                    background=background,
                    seed=seed,
                    footage=args.footage,
                )
                rows.append(test_row(model, name, csv))
            except FileNotFoundError as e:  # a clone without ../shared/videos: say so in the table
                rows.append(f"| {name} | n/a: {e} (--footage DIR) | | |")
            print(rows[-1], flush=True)
    table = f"`{args.model}`, {args.videos} videos per set\n\n" + "\n".join(rows) + "\n"
    if args.out:
        atomic_write_text(args.out, table)
    print(table)


if __name__ == "__main__":
    main()
