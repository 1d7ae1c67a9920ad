"""The seeds' claims that need more than one recipe, reproduced on SynthMotion through vidrec's own
engine (resumable like bench/synthmotion.py: each run keeps its folder and its result).

inflation (seed 004): pretrain tsn_small on single frames of the same videos labelled by how many
objects they show (`vidrec synth --label objects`), inflate it into i3d_small (replicate and centre),
fine-tune on a fraction of the action labels; against the same i3d_small from scratch on the
same labels and schedule.

two_stream (seed 004): i3d_small on RGB (bench/synthmotion.py's runs), the same network on optical
flow (DIS), and their late fusion; fusion should match or beat the better stream.

VideoMAE's claim (seed 000) needs 600 epochs of pretraining: bench/videomae_pretrain_synth.py.

    python bench/synthmotion_claims.py inflation --data data/synthmotion [--fraction 0.1] [--seeds 0 1 2]
    python bench/synthmotion_claims.py two_stream --data data/synthmotion [--rgb-runs DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil

import torch

from synthmotion import mean_std, recipe_config, train_and_test
from vidrec.data.synthetic import SynthConfig, generate_dataset, reversal_pair_accuracy
from vidrec.train.config import config_from_dict
from vidrec.utils import atomic_write_text

# Shared by every run of a claim: the i3d_small recipe's optimiser, the same learning rate in every
# layer (initialised or not: only the starting weights differ between arms), no per-epoch
# validation (the test split is scored once at the end).
OPTIMIZER = {"name": "adamw", "lr": 0.002, "weight_decay": 0.05, "grad_clip": 1.0, "backbone_lr_scale": 1.0}


def _rows(csv: str) -> list[str]:
    with open(csv) as f:
        return [line for line in f.read().splitlines()[1:] if line.strip()]


def label_subset(data: str, fraction: float, out: str) -> str:
    """A train CSV with the first `fraction` of `data`'s training videos (balanced: SynthMotion's
    labels come in blocks holding each class once), paths made absolute, classes beside it."""
    rows = _rows(os.path.join(data, "train.csv"))
    keep = max(12, round(len(rows) * fraction) // 12 * 12)
    os.makedirs(out, exist_ok=True)
    lines = ["path,label"] + [f"{os.path.join(os.path.abspath(data), r)}" for r in rows[:keep]]
    csv = os.path.join(out, f"train_{keep}.csv")
    atomic_write_text(csv, "\n".join(lines) + "\n")
    shutil.copy(os.path.join(data, "classes.txt"), os.path.join(out, "classes.txt"))
    return csv


def run_config(out: str, seed: int, *, model: dict, data: dict, epochs: int, warmup: float = 1.0):
    """A RunConfig for one claim run (`data` gives the files and any preprocessing changes)."""
    return config_from_dict(
        {
            "model": model,
            "data": {"batch_size": 16, "workers": 2, **data},
            "optimizer": OPTIMIZER,
            "schedule": {"epochs": epochs, "warmup_epochs": warmup},
            "run": {"out": out, "seed": seed, "tensorboard": False},
        }
    )


def fine_tune_arms(arms: dict, *, work: str, seed: int, files: dict, epochs: int, results: dict) -> None:
    """Train each arm (a `model:` section) on the same files and schedule; results[arm] += its test.
    freeze "none": every layer learns from its starting weights, as in I3D and VideoMAE fine-tuning."""
    for i, (arm, model) in enumerate(arms.items()):
        out = os.path.join(work, f"arm{i}/seed{seed}")
        cfg = run_config(out, seed, model={**model, "freeze": "none"}, data=files, epochs=epochs)
        results.setdefault(arm, []).append(train_and_test(cfg, name=arm))


def arms_table(results: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: test top-1, within-pair accuracy and train time per arm, mean +- std."""
    rows = ["| run | test top-1 % | within reversal pairs % | train min |", "|---|---|---|---|"]
    for arm, runs in results.items():
        rows.append(
            f"| {arm} | {mean_std([r['top1'] for r in runs])} | {mean_std([r['pairs'] for r in runs])} "
            f"| {mean_std([r['train_seconds'] / 60 for r in runs])} |"
        )
    return rows


def inflation(args) -> str:
    """2D per-frame pretraining -> inflated I3D vs I3D from scratch, on a fraction of the labels."""
    with open(os.path.join(args.data, "synth.json")) as f:
        meta = json.load(f)
    counts = {
        split: len(_rows(os.path.join(args.data, f"{split}.csv"))) for split in ("train", "val", "test")
    }
    # The per-frame task: how many objects a frame shows (1-3), on the same videos. It makes the
    # 2D network find objects on textured backgrounds. The actor's shape was tried first and is
    # not learnable by tsn_small at this size: ~5 px shapes, test top-1 stayed at the majority
    # class (34%; 51% even on flat backgrounds) while the training frames were memorised.
    frames = os.path.join(args.work, "objects")
    cfg = SynthConfig(**meta["config"])
    generate_dataset(frames, counts=counts, cfg=cfg, seed=meta["seed"], workers=2, label="objects")
    subset = label_subset(args.data, args.fraction, os.path.join(args.work, "labels"))
    n = len(_rows(subset))
    files = {"train": subset, "test": os.path.join(args.data, "test.csv")}
    epochs = max(1, round(args.steps * 16 / n))
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        tsn_dir = os.path.join(args.work, f"tsn_objects/seed{seed}")
        one_frame = {"num_frames": 1, "sampling_rate": 1, "centering": "clip", "flip": False}
        pretrain = run_config(
            tsn_dir,
            seed,
            model={"name": "tsn_small"},
            data={"train": frames, **one_frame},
            epochs=args.pretrain_epochs,
        )
        results.setdefault("tsn_small on single frames, object counts (the 2D pretraining)", []).append(
            train_and_test(pretrain, name="tsn_objects")
        )
        arms = {
            "i3d_small from scratch": {"name": "i3d_small"},
            "i3d_small inflated from it (replicate)": {"name": "i3d_small", "init": f"inflate:{tsn_dir}"},
            "i3d_small inflated from it (centre)": {
                "name": "i3d_small",
                "init": f"inflate:{tsn_dir}",
                "inflation": "centre",
            },
        }
        fine_tune_arms(arms, work=args.work, seed=seed, files=files, epochs=epochs, results=results)
    rows = [
        f"Action labels: {n} of {counts['train']} training videos ({100 * n / counts['train']:.0f}%), "
        f"{epochs} epochs (about {epochs * n // 16} steps of 16), the same for every arm; "
        f"tested on {counts['test']} videos. Seeds: {', '.join(map(str, args.seeds))}.",
        "",
        *arms_table(results),
    ]
    return "\n".join(rows) + "\n"


def two_stream(args) -> str:
    """RGB-only and flow-only i3d_small, and their late fusion, on the same split and seeds."""
    from vidrec.data.datasets import load_csv
    from vidrec.data.flow import extract_flow
    from vidrec.models.loader import load_model
    from vidrec.models.two_stream import TwoStream
    from vidrec.recognize.evaluate import evaluate

    flows = {}
    for split in ("train", "test"):  # DIS flow: TV-L1 takes ~5 s per 16-frame video here, DIS 0.09 s
        records, classes = load_csv(os.path.join(args.data, f"{split}.csv"))
        flows[split] = os.path.join(args.work, f"flow_{split}")
        extract_flow(records, flows[split], classes=classes, method="dis", short_side=64, workers=2)
    flow_data = {
        "train": os.path.join(flows["train"], "manifest.csv"),
        "test": os.path.join(flows["test"], "manifest.csv"),
    }  # i3d_small with in_channels=2 takes flow preprocessing
    test_records, _ = load_csv(os.path.join(args.data, "test.csv"))
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        rgb_dir = os.path.join(args.rgb_runs, f"seed{seed}")
        rgb = recipe_config("i3d_small_synth.yaml", data=args.data, out=rgb_dir, seed=seed)
        results.setdefault("RGB i3d_small (configs/i3d_small_synth.yaml)", []).append(
            train_and_test(rgb, name="rgb")
        )
        flow_dir = os.path.join(args.work, f"flow_i3d_small/seed{seed}")
        flow = run_config(
            flow_dir,
            seed,
            model={"name": "i3d_small", "options": {"in_channels": 2}},
            data=flow_data,
            epochs=rgb.schedule.epochs,
        )
        results.setdefault("flow i3d_small (DIS flow, same schedule)", []).append(
            train_and_test(flow, name="flow")
        )
        fused = TwoStream(load_model(rgb_dir), load_model(flow_dir), flow_method="dis", flow_short_side=64)
        test = evaluate(fused, test_records, flow_dir=flows["test"], workers=2, details=True)
        results.setdefault("late fusion, probabilities averaged 0.5 / 0.5", []).append(
            {
                "top1": test["top1"],
                "pairs": reversal_pair_accuracy(test["confusion_matrix"]),
                "train_seconds": math.nan,  # nothing trained: the table says n/a
            }
        )
    rows = [f"DIS optical flow at 64 px. Seeds: {', '.join(map(str, args.seeds))}.", "", *arms_table(results)]
    return "\n".join(rows) + "\n"


CLAIMS = {"inflation": inflation, "two_stream": two_stream}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claim", choices=list(CLAIMS))
    ap.add_argument("--data", default="data/synthmotion", help="a SynthMotion folder (vidrec synth)")
    ap.add_argument("--work", default="runs/synthmotion_claims", help="derived data and one folder per run")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the action labels fine-tuned on")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps of each fine-tuning arm")
    ap.add_argument("--pretrain-epochs", type=int, default=4, help="epochs of the 2D per-frame pretraining")
    ap.add_argument(
        "--rgb-runs",
        default="runs/synthmotion_bench/i3d_small",
        help="two_stream: the RGB runs (bench/synthmotion.py's i3d_small folders are reused)",
    )
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    args.work = os.path.join(args.work, args.claim)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    text = CLAIMS[args.claim](args)
    if args.out:
        atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
