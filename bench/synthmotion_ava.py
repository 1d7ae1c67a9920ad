"""SynthMotion-AVA, action detection with boxes, through vidrec's own commands as a user runs them:
`vidrec synth-ava` makes the data, `vidrec train CONFIG --resume auto` trains and tests each
recipe (configs/*_ava_synth.yaml) with each seed. One JSON record per finished (recipe, seed)
under results/synthmotion_ava_runs/ (test frame-mAP per class and group, val mAP per epoch, wall
time, the command, the machine and commit); results/synthmotion_ava.md is written from the records
alone (`--table`). Resumable: a run folder under --runs continues from its last checkpoint, a
recorded run is skipped.

    python bench/synthmotion_ava.py [--recipes fast_small_ava tsn_small_ava] [--seeds 0 1 2]
    python bench/synthmotion_ava.py --table

Cost on 2 cores: the data about 2 min; each run about 10 min alone (6 epochs of 1800 keyframes,
then validation and the test), an hour for both recipes and three seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from common import describe_machine, machine, mean_std, read_records, write_table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
RUNS = os.path.join(ROOT, "results", "synthmotion_ava_runs")
TABLE = os.path.join(ROOT, "results", "synthmotion_ava.md")
# recipe -> (its config, what it is)
RECIPES = {
    "fast_small_ava": (
        "fast_small_ava_synth.yaml",
        "SlowFast's Fast pathway, res5 dilated, RoI head; from the shipped `fast_small.synthmotion`",
    ),
    "tsn_small_ava": (
        "tsn_small_ava_synth.yaml",
        "the per-frame (2D) baseline, maps averaged over time; scratch",
    ),
}
PICTURE = os.path.join(ROOT, "results", "synthmotion_ava_detections.png")
DATA_ARGS = ["--train", "600", "--val", "100", "--test", "100", "--seed", "0"]


def vidrec(*args: str) -> list[str]:
    """The `vidrec` command as this Python runs it."""
    return [sys.executable, "-m", "vidrec", *args]


def make_data(data: str) -> None:
    """`vidrec synth-ava DATA ...` unless DATA is complete."""
    if not os.path.exists(os.path.join(data, "labels.pbtxt")):
        subprocess.run(vidrec("synth-ava", data, *DATA_ARGS), check=True)


def train_command(recipe: str, seed: int, *, data: str, out: str) -> list[str]:
    """`vidrec train` of one recipe and seed on DATA into OUT, resuming what is there."""
    sets = [
        f"data.train={data}",
        f"detection.videos={os.path.join(data, 'videos')}",
        f"detection.labels={os.path.join(data, 'labels.pbtxt')}",
        f"run.out={out}",
        f"run.seed={seed}",
        "run.tensorboard=false",
    ]
    config = os.path.relpath(os.path.join(ROOT, "configs", RECIPES[recipe][0]))
    return vidrec("train", config, *[a for s in sets for a in ("--set", s)], "--resume", "auto")


def run_one(recipe: str, seed: int, *, data: str, runs: str) -> dict:
    """Train and test one (recipe, seed) in its folder (wall time summed over resumptions)."""
    out = os.path.join(runs, recipe, f"seed{seed}")
    clock = os.path.join(out, "bench_seconds.json")
    command = train_command(recipe, seed, data=data, out=out)
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    spent = time.perf_counter() - t0
    previous = json.load(open(clock)) if os.path.exists(clock) else {"seconds": 0.0, "sessions": 0}
    seconds = {"seconds": previous["seconds"] + spent, "sessions": previous["sessions"] + 1}
    with open(clock, "w") as f:
        json.dump(seconds, f)
    with open(os.path.join(out, "test_report.json")) as f:
        test = json.load(f)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        val = [round(r["val_mAP"], 2) for r in map(json.loads, f) if "val_mAP" in r]
    return {
        "recipe": recipe,
        "seed": seed,
        "command": shlex.join(["vidrec", *command[3:]]),
        "data": shlex.join(["vidrec", "synth-ava", data, *DATA_ARGS]),
        "test_mAP": 100.0 * test["mAP"],
        "per_class": {k: None if v is None else 100.0 * v for k, v in test["per_class"].items()},
        "groups": {k: None if v is None else 100.0 * v for k, v in test["groups"].items()},
        "num_keyframes": test["num_keyframes"],
        "num_gt": test["num_gt"],
        "val_mAP_per_epoch": val,
        "wall_seconds": round(seconds["seconds"], 1),
        "sessions": seconds["sessions"],
        "machine": machine(),
    }


def table() -> str:
    """results/synthmotion_ava.md from the records alone."""
    records = read_records(RUNS)
    lines = [
        "# SynthMotion-AVA: action detection with boxes",
        "",
        "Written by `python bench/synthmotion_ava.py --table` from the records in "
        "`results/synthmotion_ava_runs/` (one per recipe and seed; re-run them with "
        "`python bench/synthmotion_ava.py`, about 10 min a run alone on 2 cores). The data: "
        f"`vidrec synth-ava data/synthmotion_ava {' '.join(DATA_ARGS)}` (600 training videos of 2-4 actors, "
        "keyframes at 1, 2 and 3 s; 13 classes in 6 groups). Each run: `vidrec train "
        "configs/RECIPE_synth.yaml --set run.seed=SEED ...` (its command is in its record), "
        "ground-truth boxes in training and at test, the official AVA frame-mAP at IoU 0.5. "
        "Means ± sample standard deviations over seeds.",
        "",
        "| recipe | what it is | seeds | test frame-mAP | val mAP after each epoch (seed "
        "of the first record) | wall min |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["recipe"], []).append(r)
    for recipe, runs in groups.items():
        lines.append(
            f"| `{recipe}` | {RECIPES[recipe][1]} | {', '.join(str(r['seed']) for r in runs)} "
            f"| {mean_std([r['test_mAP'] for r in runs])} "
            f"| {', '.join(f'{v:.1f}' for v in runs[0]['val_mAP_per_epoch'])} "
            f"| {mean_std([r['wall_seconds'] / 60 for r in runs])} |"
        )
    for recipe, runs in groups.items():
        lines += ["", f"Per group and class, `{recipe}` (test AP, mean over seeds):", ""]
        lines += ["| group or class | AP |", "|---|---|"]
        for key in ("groups", "per_class"):
            for name in runs[0][key]:
                values = [r[key][name] for r in runs if r[key][name] is not None]
                lines.append(f"| {name} | {mean_std(values) if values else 'n/a'} |")
    lines += [
        "",
        "![test keyframes of the first run: ground truth green, predictions (score >= 0.5) red]"
        "(synthmotion_ava_detections.png)",
        "",
        "Machines:",
        "",
    ]
    lines += sorted({f"- {describe_machine(r['machine'])}" for r in records})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/synthmotion_ava", help="made here by vidrec synth-ava if missing")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/synthmotion_ava_bench", help="one folder per recipe and seed")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    args = ap.parse_args()
    if not args.table:
        make_data(args.data)
        os.makedirs(RUNS, exist_ok=True)
        for seed in args.seeds:  # every recipe once before any twice
            for recipe in args.recipes:
                record = os.path.join(RUNS, f"{recipe}_seed{seed}.json")
                if os.path.exists(record):
                    continue
                result = run_one(recipe, seed, data=args.data, runs=args.runs)
                with open(record + ".tmp", "w") as f:
                    f.write(json.dumps(result, indent=1) + "\n")
                os.replace(record + ".tmp", record)
                print(f"{recipe} seed {seed}: test frame-mAP {result['test_mAP']:.1f}", flush=True)
        # keyframes of the first recipe's seed-0 test: ground truth and predicted boxes
        first = os.path.join(args.runs, args.recipes[0], f"seed{args.seeds[0]}", "detections.png")
        if os.path.exists(first):
            shutil.copyfile(first, PICTURE)
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
