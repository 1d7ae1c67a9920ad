"""VideoMAE's data-efficiency claim (seed 000) on SynthMotion, through vidrec's own commands: masked
pretraining on every training video without labels (`vidrec pretrain
configs/videomae_small_synth_pt_flat.yaml`: 90% tube masking, per-patch normalised targets, flat
backgrounds, 4 frames at stride 4, 200 epochs, decoded frames cached), then `vidrec train` on 10%
of the labels (the first 360 training videos) from the pretrained encoder against the same ViT
from scratch, same schedule, and the test top-1 of each. Each seed pretrains its own encoder.
Resumable: every run continues from its last checkpoint (`--resume auto`); a finished seed is
recorded in results/videomae_pretrain_runs/ and skipped; results/videomae_pretrain.md is written
from the records alone (`--table`). The seeds run side by side (`--jobs`, default 3), each
command with an equal share of the cores as its threads and no loader workers in pretraining (the
frames come from the cache): on 2 cores that is twice the throughput of one run with 2 threads and
2 workers; each seed's output goes to its own log in --runs.

    vidrec synth data/synthmotion_flat --train 3600 --val 240 --test 480 --flat
    python bench/videomae_pretrain_synth.py --data data/synthmotion_flat [--seeds 0 1 2]
    python bench/videomae_pretrain_synth.py --table

Cost: the pretraining is 45,000 steps of 16 clips a seed; the three seeds side by side about 1.7 h
on 2 cores (each record keeps its wall times); the two fine-tunings of a seed a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from common import describe_machine, machine, mean_std, read_records, write_table
from vidrec.utils import atomic_write_text

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")
RUNS = os.path.join(RESULTS, "videomae_pretrain_runs")
TABLE = os.path.join(RESULTS, "videomae_pretrain.md")
PRETRAIN = os.path.relpath(os.path.join(HERE, "..", "configs", "videomae_small_synth_pt_flat.yaml"))
LABELS = 360  # 10% of the 3600 training videos
# the fine-tuning of both arms: the classifier recipe of configs/videomae_small_synth.yaml on the
# pretraining's input (4 frames at stride 4), 18 epochs, every weight at the full lr, the last epoch
# kept (the same for scratch and the pretrained start: no probe, no best-epoch choice)
FINE_TUNE = [
    "configs/videomae_small_synth.yaml",
    "--set", "schedule.epochs=18", "--set", "data.num_frames=4", "--set", "data.sampling_rate=4",
    "--set", "num_frames=4", "--set", "optimizer.backbone_lr_scale=1.0",
    "--set", "model.head_init=random", "--set", "run.keep_best=false", "--set", "run.tensorboard=false",
]  # fmt: skip


def vidrec(*args: str, threads: int, log: str | None = None) -> float:
    """Run a vidrec command with `threads` threads (its output appended to `log` if given); its wall
    seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "a") if log else contextlib.nullcontext() as out:
        subprocess.run([sys.executable, "-m", "vidrec", *args], check=True, env=env, stdout=out, stderr=out)
    return time.perf_counter() - t0


def labelled_subset(data: str) -> str:
    """train{LABELS}.csv: the first LABELS rows of the training CSV (SynthMotion cycles its classes)."""
    path = os.path.join(data, f"train{LABELS}.csv")
    if not os.path.exists(path):
        with open(os.path.join(data, "train.csv")) as f:
            lines = f.read().splitlines()
        header = lines[:1] if lines and lines[0].startswith("path") else []
        atomic_write_text(path, "\n".join(header + lines[len(header) : len(header) + LABELS]) + "\n")
    return path


def train_seconds(log: str | None, out: str, wall: float) -> float:
    """A run's training seconds over all its sessions: the `train_seconds` its last command printed
    into `log` (vidrec carries them across resumptions in its checkpoints); without a log, this
    invocation's `wall` seconds."""
    if log is None or not os.path.exists(log):
        return wall
    last = wall
    with open(log, errors="replace") as f:
        for line in f.read().replace("\r", "\n").splitlines():
            if line.startswith("{") and '"train_seconds"' in line:
                r = json.loads(line)
                last = r["train_seconds"] if r.get("out") == out else last
    return last


def test_top1(out: str) -> float:
    with open(os.path.join(out, "test_report.json")) as f:
        return json.load(f)["top1"]


def run_seed(
    data: str, runs: str, seed: int, *, threads: int, log: str | None = None, epochs: int | None = None
) -> dict:
    """Pretrain, fine-tune both arms, test: one record."""
    pt = os.path.join(runs, f"pretrain_seed{seed}")
    sets = [f"data.train={data}", f"data.cache={os.path.join(data, 'decoded')}", f"run.out={pt}"]
    pretrain = ["pretrain", PRETRAIN, *[a for s in sets for a in ("--set", s)]]
    pretrain += ["--set", f"run.seed={seed}", "--set", "run.tensorboard=false", "--set", "data.workers=0"]
    pretrain += ["--resume", "auto"]
    if epochs is not None:  # a shorter try of the recipe (not the claim's)
        pretrain += ["--set", f"schedule.epochs={epochs}"]
    seconds = {"pretrain": vidrec(*pretrain, threads=threads, log=log)}
    with open(os.path.join(pt, "metrics.jsonl")) as f:  # end-of-epoch lines
        epochs = [r for r in map(json.loads, f) if "train_loss" in r]
    losses = [r["train_loss"] for r in epochs]
    arms = {}
    for arm, init in (("pretrained", pt), ("scratch", None)):
        out = os.path.join(runs, f"{arm}_seed{seed}")
        command = ["train", *FINE_TUNE, "--set", f"data.train={labelled_subset(data)}"]
        command += ["--set", f"data.val={os.path.join(data, 'val.csv')}"]
        command += ["--set", f"data.test={os.path.join(data, 'test.csv')}"]
        command += ["--set", f"run.out={out}", "--set", f"run.seed={seed}", "--resume", "auto"]
        if init:
            command += ["--set", f"model.init={init}"]
        seconds[arm] = vidrec(*command, threads=threads, log=log)
        arms[arm] = {"test_top1": test_top1(out), "command": shlex.join(["vidrec", *command])}
    return {
        "seed": seed,
        "pretrain_command": shlex.join(["vidrec", *pretrain]),
        "pretrain_epochs": epochs[-1]["epoch"],
        "pretrain_loss_first_last_epoch": [losses[0], losses[-1]] if losses else None,
        "arms": arms,
        "wall_seconds": {k: round(v, 1) for k, v in seconds.items()},  # this invocation's
        "train_seconds": {
            k: round(train_seconds(log, os.path.join(runs, f"{k}_seed{seed}"), v), 1)
            for k, v in seconds.items()
        },
        "threads_per_command": threads,
        "machine": machine(),
    }


def table() -> str:
    """results/videomae_pretrain.md from the records alone."""
    records = read_records(RUNS)
    lines = [
        "# VideoMAE masked pretraining on SynthMotion, then 10% of the labels",
        "",
        "Written by `python bench/videomae_pretrain_synth.py --table` from the records in "
        "`results/videomae_pretrain_runs/` (one per seed; each record has its commands). Test top-1 % "
        "on the 480 test videos, means ± sample std over seeds.",
        "",
        "| start | seeds | test top-1 % | per seed |",
        "|---|---|---|---|",
    ]
    seeds = ", ".join(str(r["seed"]) for r in records)
    for arm in ("pretrained", "scratch"):
        got = [r["arms"][arm]["test_top1"] for r in records]
        if got:
            each = ", ".join(f"{v:.1f}" for v in got)
            lines.append(f"| {arm} | {seeds} | {mean_std(got)} | {each} |")
    if records:
        epochs = sorted({r["pretrain_epochs"] for r in records})
        first = [r["pretrain_loss_first_last_epoch"][0] for r in records]
        last = [r["pretrain_loss_first_last_epoch"][1] for r in records]
        hours = [r["train_seconds"]["pretrain"] / 3600 for r in records]
        minutes = [(r["train_seconds"]["pretrained"] + r["train_seconds"]["scratch"]) / 60 for r in records]
        lines += [
            "",
            f"Pretraining ({'/'.join(map(str, epochs))} epochs): normalised-pixel loss "
            f"{mean_std(first, 3)} in the first epoch, {mean_std(last, 3)} in the last; "
            f"{mean_std(hours)} h a seed with {records[0]['threads_per_command']} thread(s), "
            f"seeds side by side; both fine-tunings {mean_std(minutes)} min a seed.",
        ]
    lines += ["", "Machines:", ""] + sorted({f"- {describe_machine(r['machine'])}" for r in records})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="data/synthmotion_flat", help="a SynthMotion folder (vidrec synth --flat)"
    )
    ap.add_argument("--runs", default="runs/videomae_pretrain_synth", help="the runs of every seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=3, help="seeds run side by side")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    ap.add_argument("--pretrain-epochs", type=int, help="a shorter try (recorded elsewhere: --record)")
    ap.add_argument("--record", default=RUNS, help="where each finished seed's record goes")
    args = ap.parse_args()
    if args.pretrain_epochs is not None and args.record == RUNS:
        ap.error("--pretrain-epochs changes the recipe: give --record DIR outside results/")
    if not args.table:
        os.makedirs(args.record, exist_ok=True)
        os.makedirs(args.runs, exist_ok=True)
        todo = [s for s in args.seeds if not os.path.exists(os.path.join(args.record, f"seed{s}.json"))]
        jobs = max(1, min(args.jobs, len(todo)))
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ThreadPoolExecutor(jobs) as pool:
            running = {
                pool.submit(
                    run_seed, args.data, args.runs, seed, threads=threads, epochs=args.pretrain_epochs,
                    log=os.path.join(args.runs, f"seed{seed}.log") if jobs > 1 else None,
                ): seed
                for seed in todo
            }  # fmt: skip
            for done in as_completed(running):
                seed = running[done]
                path = os.path.join(args.record, f"seed{seed}.json")
                atomic_write_text(path, json.dumps(done.result(), indent=1) + "\n")
                print(f"seed {seed}: {path}", flush=True)
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
