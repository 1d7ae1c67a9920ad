"""Distillation on SynthMotion from the shipped weights (VideoMAE V2's recipe, `distill:` in a run
config): a student i3d_small at a quarter of the width (width 8: 1/14 of the parameters) trained
with configs/i3d_small_synth.yaml on the labels alone, and on the labels plus the shipped
`i3d_small.synthmotion` teacher's predictions (alpha 0.5, temperature 1), seeds 0-2, both tested
on the same test videos; the teacher's own test accuracy beside them. Twice: on all 3600 training
videos (5 epochs, the recipe's), and on their first tenth (360 videos, 50 epochs: as many steps),
where labels are few.

    vidrec synth data/synthmotion --train 3600 --val 240 --test 480 --seed 0
    python bench/distill_synth.py --data data/synthmotion [--seeds 0 1 2]
    python bench/distill_synth.py --table     # results/distill.md from the records

Resumable as bench/synthmotion.py (each run keeps its folder under --runs). Each finished run
writes a record to results/distill_runs/. Cost on 2 cores: the data about 5 min, a student run
3-8 min on all videos (the teacher's forward pass makes a distilled run about a third longer), 2-3
min on a tenth: about 45 min.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from common import by_cpu, machine, mean_std, read_records, write_table
from synthmotion import DATA_COMMAND, recipe_config, train_and_test
from vidrec.data.datasets import load_csv
from vidrec.models.loader import load_model
from vidrec.recognize.evaluate import evaluate
from vidrec.utils import atomic_write_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RECORD = os.path.join(RESULTS, "distill_runs")
TABLE = os.path.join(RESULTS, "distill.md")
TEACHER = "i3d_small.synthmotion"
STUDENT = ["width=8"]  # a quarter of the teacher's width
SETTINGS = {  # name -> (what the students learn from, its overrides; the record's name suffix)
    "all": ("3600 labelled videos, 5 epochs", [], ""),
    "tenth": ("360 labelled videos (the first tenth), 50 epochs", ["schedule.epochs=50"], "_tenth"),
}
ARMS = {
    "labels": ("the labels alone", []),
    "distilled": (
        f"labels + `{TEACHER}`'s predictions (alpha 0.5, T 1)",
        [f"distill.teacher={TEACHER}", "distill.alpha=0.5", "distill.temperature=1.0"],
    ),
}


def teacher_record(data: str) -> dict:
    """The teacher's test top-1 on the same test videos (one centre clip, as the students' test)."""
    path = os.path.join(RECORD, "teacher.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    model = load_model(TEACHER)
    records = load_csv(os.path.join(data, "test.csv"), classes=model.labels)[0]
    result = evaluate(model, records, num_clips=1, batch_size=8, device=torch.device("cpu"), progress=False)
    record = {
        "teacher": TEACHER,
        "top1": result["top1"],
        "params": sum(p.numel() for p in model.parameters()),
        "data": DATA_COMMAND,
        "machine": machine(),
    }
    os.makedirs(RECORD, exist_ok=True)
    atomic_write_text(path, json.dumps(record) + "\n")
    return record


def first_tenth(data: str) -> str:
    """train_tenth.csv beside train.csv: its first tenth of rows (the classes are balanced
    throughout the generated list), with classes.txt beside it as before."""
    path = os.path.join(data, "train_tenth.csv")
    if not os.path.exists(path):
        with open(os.path.join(data, "train.csv")) as f:
            rows = [line for line in f if line.strip()]
        header = rows[:1] if rows[0].startswith("path,") else []
        videos = rows[len(header) :]
        atomic_write_text(path, "".join(header + videos[: len(videos) // 10]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/synthmotion")
    parser.add_argument("--runs", default="runs/bench_distill")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--table", action="store_true", help="only write results/distill.md from the records")
    args = parser.parse_args()
    if args.table:
        write_table(TABLE, table())
        return
    teacher_record(args.data)
    tenth = first_tenth(args.data)
    for setting, (_, changes, suffix) in SETTINGS.items():
        if setting == "tenth":
            changes = [
                *changes,
                f"data.train={tenth}",
                f"data.val={os.path.join(args.data, 'val.csv')}",
                f"data.test={os.path.join(args.data, 'test.csv')}",
            ]
        for seed in args.seeds:
            for arm, (_, overrides) in ARMS.items():
                path = os.path.join(RECORD, f"{arm}{suffix}_seed{seed}.json")
                if os.path.exists(path):
                    continue
                out = os.path.join(args.runs, f"{arm}{suffix}", f"seed{seed}")
                cfg = recipe_config(
                    "i3d_small_synth.yaml",
                    data=args.data,
                    out=out,
                    seed=seed,
                    overrides=STUDENT + overrides + changes,
                )
                result = train_and_test(cfg, name=f"i3d_small width 8, {arm}")
                result.pop("confusion_matrix")
                result.update(arm=arm, setting=setting, data=DATA_COMMAND, machine=machine())
                atomic_write_text(path, json.dumps(result) + "\n")
    write_table(TABLE, table())


def table() -> str:
    """results/distill.md from the records alone."""
    records = read_records(RECORD)
    teacher = next((r for r in records if "teacher" in r), None)
    lines = [
        "# Distillation on SynthMotion from the shipped weights",
        "",
        "Written by `python bench/distill_synth.py --table` from the records in `results/distill_runs/` "
        f"(made by `python bench/distill_synth.py --data data/synthmotion` on `{DATA_COMMAND}`). The "
        "student is `i3d_small` at width 8, trained by `configs/i3d_small_synth.yaml`; the distilled "
        "arm adds `distill:` with the shipped teacher. Test top-1 on the 480 test videos, one centre "
        "clip; mean ± sample std over the seeds.",
        "",
        "| student trained on | seeds | test top-1 % | within reversal pairs % | params | train min |",
        "|---|---|---|---|---|---|",
    ]
    for setting, (what, _, _) in SETTINGS.items():
        for arm, (how, _) in ARMS.items():
            found = sorted(
                (r for r in records if r.get("arm") == arm and r.get("setting", "all") == setting),
                key=lambda r: r["seed"],
            )
            if not found:
                continue
            seeds = ", ".join(str(r["seed"]) for r in found)
            lines.append(
                f"| {what}: {how} | {seeds} | {mean_std([r['top1'] for r in found])} "
                f"| {mean_std([r['pairs'] for r in found])} | {found[0]['params']:,} "
                f"| {mean_std([r['train_seconds'] / 60 for r in found])} |"
            )
    if teacher:
        lines += [
            "",
            f"The teacher `{TEACHER}` ({teacher['params']:,} parameters): {teacher['top1']:.1f}% "
            "on the same test videos.",
        ]
    for key, runs in by_cpu([r for r in records if "machine" in r]).items():
        gemm = sorted(r["machine"]["gemm_fp32_gflops"] for r in runs)
        commits = ", ".join(sorted({r["machine"]["commit"][:8] for r in runs}))
        lines += [
            "",
            f"Machine: {key}, torch {runs[0]['machine']['torch']}, commits {commits}; its fp32 GEMM measured "
            f"{gemm[0]:.0f}-{gemm[-1]:.0f} GFLOP/s at the records' times: the runs shared the 2 cores with "
            "other jobs, so their train minutes are not comparable with each other.",
        ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    main()
