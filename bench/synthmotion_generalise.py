"""Does a model trained on SynthMotion generalise within the task, or memorise the generator's
draws? Test sets made with other seeds, other frame sizes, pixel noise, camera shake and more
distractors, and moving shapes drawn by another program (bench/foreign_shapes.py: OpenCV, other
shapes and motion profiles, gradient or real-footage backgrounds); top-1, accuracy within
time-reversal pairs and on oscillate fast/slow for each.

    python bench/synthmotion_generalise.py [--models i3d_small.synthmotion ...] [--videos 240]
    python bench/synthmotion_generalise.py --table   # results/synthmotion_generalise.md from the records

One JSON record per model under results/synthmotion_generalise_runs/ (every set's figures, the
machine, the commit); the table is written from the records alone. Cost: about 3 min a model on 2
cores (the nine sets of 240 videos are drawn anew for each model, the same ones by seed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile

import torch

from common import describe_machine, machine, read_records, write_table
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

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RUNS = os.path.join(RESULTS, "synthmotion_generalise_runs")
TABLE = os.path.join(RESULTS, "synthmotion_generalise.md")
SHIPPED = ["i3d_small.synthmotion", "fast_small.synthmotion", "videomae_small_synth.synthmotion"]

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


def _pct(value: float | None) -> str:
    """A percentage, or why there is none (no video was predicted inside any pair)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def test_set(model, csv: str) -> dict:
    """`model` on the videos of `csv`: top-1, within reversal pairs, oscillate fast/slow."""
    records, _ = load_csv(csv, classes=model.labels)
    result = evaluate(model, records, details=True, progress=False)
    confusion = result["confusion_matrix"]
    pairs, pace = reversal_pair_accuracy(confusion), pair_accuracy(confusion, [PACE_PAIR])
    return {
        "top1": result["top1"],
        "pairs": None if math.isnan(pairs) else pairs,
        "pace": None if math.isnan(pace) else pace,
        "videos": len(records),
    }


def measure(tag: str, *, videos: int, footage: str) -> dict:
    """Every test set for the model `tag`: a record."""
    model = load_model(tag)
    sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, seed) in VARIANTS.items():
            data = os.path.join(tmp, str(seed))
            generate_dataset(data, counts={"test": videos}, cfg=cfg, seed=seed, workers=2, progress=False)
            sets[name] = test_set(model, os.path.join(data, "test.csv"))
            print(tag, name, sets[name], flush=True)
        for background, seed in FOREIGN.items():  # drawn by another program: bench/foreign_shapes.py
            name = f"another renderer (foreign_shapes.py), {background} background"
            csv = write_foreign_set(
                os.path.join(tmp, background),
                videos=videos,
                background=background,
                seed=seed,
                footage=footage,
            )
            sets[name] = test_set(model, csv)
            print(tag, name, sets[name], flush=True)
    return {"model": tag, "videos_per_set": videos, "sets": sets, "machine": machine()}


def table() -> str:
    """results/synthmotion_generalise.md from the records alone."""
    records = {r["model"]: r for r in read_records(RUNS)}
    models = [m for m in SHIPPED if m in records] + sorted(set(records) - set(SHIPPED))
    lines = [
        "# The shipped SynthMotion models on test sets they never saw",
        "",
        "Written by `python bench/synthmotion_generalise.py --table` from the records in "
        "`results/synthmotion_generalise_runs/` (re-run: `python bench/synthmotion_generalise.py`, "
        "about 3 min a model). Each set is drawn with its own seed; the last two by another program "
        "(`bench/foreign_shapes.py`: OpenCV shapes SynthMotion never draws, other motion profiles, "
        "gradient backgrounds or stills of the real clips in `../shared/videos`). Cells: test top-1 % "
        "(within reversal pairs %; oscillate fast/slow %).",
        "",
        "| test set | " + " | ".join(f"`{m}`" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    names = list(records[models[0]]["sets"]) if models else []
    for name in names:
        cells = []
        for m in models:
            r = records[m]["sets"].get(name)
            cells.append(f"{_pct(r['top1'])} ({_pct(r['pairs'])}; {_pct(r['pace'])})" if r else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Machines:", ""]
    lines += sorted({f"- {describe_machine(records[m]['machine'])}" for m in models})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=SHIPPED, help="weights tags or model directories")
    ap.add_argument("--videos", type=int, default=240, help="test videos per set (a multiple of 12)")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    ap.add_argument(
        "--footage", default=FOOTAGE, help="real clips whose frames are foreign_shapes' backgrounds"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    if not args.table:
        os.makedirs(RUNS, exist_ok=True)
        for tag in args.models:
            record = measure(tag, videos=args.videos, footage=args.footage)
            name = os.path.basename(os.path.normpath(tag)).replace(".", "_") + ".json"
            atomic_write_text(os.path.join(RUNS, name), json.dumps(record, indent=1) + "\n")
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
