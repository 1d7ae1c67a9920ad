"""The SynthMotion results table: every recipe in configs/*_synth.yaml trained through vidrec's own
engine with several seeds, on one SynthMotion split, and tested on its test videos. Per recipe:
test top-1, accuracy within the time-reversal pairs and on oscillate fast/slow, params, MACs and
train wall time, as mean +- std over the seeds; a plot; both confusion matrices of the I3D-vs-2D
claim. Resumable: every (recipe, seed) run keeps its folder under --runs; a finished run is read
back, an interrupted one resumes from its last checkpoint. A finished run's figures are also kept
in --record (results/synthmotion_runs/, committed: a few KB each, with the CPU that ran it), so
the table grows across machines and sessions whose run folders are gone. Training is
deterministic on one machine, not across CPUs: fast_small seed 0 gave 93.5% on an AVX2 EPYC and
94.8% on an AVX-512 one (other kernels, other rounding), so a table mixes machines' runs only as
it mixes seeds.

    vidrec synth data/synthmotion --train 3600 --val 240 --test 480 --seed 0
    python bench/synthmotion.py --data data/synthmotion [--recipes i3d_small tsn_small] [--seeds 0 1 2]
    python bench/synthmotion.py --table      # results/synthmotion.md and its pictures from the records

Cost on 2 cores (AMD EPYC, AVX-512; the records' train minutes): the data about 5 min; a seed of
i3d_small 4-10 min, tsn_small 2-3, fast_small 4-10, slowfast_small 6-12, slow_small 9-22,
i3d_resnet_small 12-31, movinet_a0_synth 11-42, videomae_small_synth 15-26: about 5 h for all 24.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics

import torch

from common import machine, mean_std, read_records, write_table
from vidrec.data.synthetic import CLASSES, PACE_PAIR, pair_accuracy, reversal_pair_accuracy
from vidrec.flops import count_macs, count_params
from vidrec.models.loader import load_model
from vidrec.train.checkpoint import CheckpointManager
from vidrec.train.config import RunConfig, load_config
from vidrec.train.loop import train
from vidrec.train.report import TEST_REPORT_NAME, plot_confusion
from vidrec.utils import atomic_write_text

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
# recipe -> (its config in configs/, what it is: the table's second column)
RECIPES = {
    "i3d_small": ("i3d_small_synth.yaml", "I3D: tsn_small's 2D CNN inflated to 3x3x3"),
    "tsn_small": ("tsn_small_synth.yaml", "2D CNN per frame, averaged: the order-less control"),
    "i3d_resnet_small": ("i3d_resnet_small_synth.yaml", "I3D-ResNet, one bottleneck per stage"),
    "slowfast_small": ("slowfast_small_synth.yaml", "SlowFast: 4 Slow + 16 Fast frames, laterals"),
    "slow_small": ("slow_small_synth.yaml", "Slow pathway alone (all 16 frames)"),
    "fast_small": ("fast_small_synth.yaml", "Fast pathway alone (1/4 of the channels)"),
    "movinet_a0_synth": ("movinet_a0_synth.yaml", "MoViNet-A0 Stream's network, causal, from scratch"),
    "videomae_small_synth": ("videomae_small_synth.yaml", "VideoMAE ViT, 4 blocks, MLP tubelets"),
}
RESULT_NAME = "bench_result.json"
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RECORD = os.path.join(RESULTS, "synthmotion_runs")
TABLE = os.path.join(RESULTS, "synthmotion.md")
DATA_COMMAND = "vidrec synth data/synthmotion --train 3600 --val 240 --test 480 --seed 0"


def run_dir(runs: str, recipe: str, seed: int) -> str:
    """The folder of one recipe's run with one seed."""
    return os.path.join(runs, recipe, f"seed{seed}")


def recorded(record: str | None, recipe: str, seed: int) -> str | None:
    """The recorded figures of a finished run (recipe, seed), if `record` holds them."""
    path = os.path.join(record, f"{recipe}_seed{seed}.json") if record else None
    return path if path and os.path.exists(path) else None


def run_one(
    recipe: str, seed: int, *, data: str, runs: str, overrides: list[str] = (), record: str | None = None
) -> dict:
    """Train (or resume, or read back) one recipe with one seed; its test figures, also written
    to `record` (unless `overrides` change the recipe: then it is another experiment)."""
    if not overrides and (path := recorded(record, recipe, seed)):
        with open(path) as f:
            return json.load(f)
    out = run_dir(runs, recipe, seed)
    result = train_and_test(
        recipe_config(RECIPES[recipe][0], data=data, out=out, seed=seed, overrides=overrides), name=recipe
    )
    if record and not overrides:
        result.setdefault("cpu", cpu_name())
        result.setdefault("machine", machine())
        result.setdefault("data", DATA_COMMAND)
        os.makedirs(record, exist_ok=True)
        atomic_write_text(os.path.join(record, f"{recipe}_seed{seed}.json"), json.dumps(result) + "\n")
    return result


def recipe_config(config: str, *, data: str, out: str, seed: int, overrides: list[str] = ()) -> RunConfig:
    """configs/`config` on the SynthMotion folder `data`, run in `out` with `seed`."""
    return load_config(
        os.path.join(CONFIGS, config),
        [f"data.train={data}", f"run.out={out}", f"run.seed={seed}", "run.tensorboard=false", *overrides],
    )


def train_and_test(cfg: RunConfig, *, name: str) -> dict:
    """Train `cfg` in `cfg.run.out` (resuming an interrupted run; a finished one is read back) and
    test it on its test split: top-1, within-pair and pace accuracy, confusion matrix, cost."""
    out = cfg.run.out
    done = os.path.join(out, RESULT_NAME)
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    resume = "auto" if CheckpointManager(os.path.join(out, "checkpoints")).exists() else None
    summary = train(cfg, resume=resume)
    with open(os.path.join(out, TEST_REPORT_NAME)) as f:
        test = json.load(f)
    model = load_model(out)
    p = model.preprocessing
    matrix, actions = test["confusion_matrix"], test["labels"] == list(CLASSES)  # else: shape labels
    result = {
        "recipe": name,
        "seed": cfg.run.seed,
        "top1": summary["test_top1"],
        "pairs": reversal_pair_accuracy(matrix) if actions else math.nan,
        "pace": pair_accuracy(matrix, [PACE_PAIR]) if actions else math.nan,
        "confusion_matrix": matrix,
        "labels": test["labels"],
        "params": count_params(model),
        "macs": count_macs(model, (1, len(p.mean), p.num_frames, p.crop_size, p.crop_size)),
        "input": f"{p.num_frames}x{p.crop_size}x{p.crop_size}",
        # every session of the run; unknown (nan) if it resumed a checkpoint older than the count
        "train_seconds": math.nan if summary["train_seconds"] is None else summary["train_seconds"],
        "resumed": resume is not None,
        "epochs": cfg.schedule.epochs,
    }
    atomic_write_text(done, json.dumps(result, indent=1) + "\n")
    return result


def cpu_name() -> str:
    """The CPU's model name and vector width, as a run's record notes it."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown"
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), ""
    )
    return f"{name} ({'AVX-512' if 'avx512f' in text else 'AVX2' if 'avx2' in text else 'SSE'})"


def results_table(results: dict[str, list[dict]]) -> str:
    """The Markdown table, one row per recipe."""
    rows = [
        "| recipe | what it is | seeds | test top-1 % | within reversal pairs % | oscillate fast/slow % "
        "| params | GMACs (input) | train min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for recipe, runs in results.items():
        first = runs[0]
        rows.append(
            f"| `{recipe}` | {RECIPES[recipe][1]} | {len(runs)} | {mean_std([r['top1'] for r in runs])} "
            f"| {mean_std([r['pairs'] for r in runs])} | {mean_std([r['pace'] for r in runs])} "
            f"| {first['params']:,} | {first['macs'] / 1e9:.2f} ({first['input']}) "
            f"| {mean_std([r['train_seconds'] / 60 for r in runs])} |"
        )
    return "\n".join(rows) + "\n"


def records_by_recipe(folder: str = RECORD) -> dict[str, list[dict]]:
    """The committed records, grouped by recipe in RECIPES' order, seeds ascending."""
    found: dict[str, list[dict]] = {}
    for r in read_records(folder):
        found.setdefault(r["recipe"], []).append(r)
    return {k: sorted(found[k], key=lambda r: r["seed"]) for k in RECIPES if k in found}


def _claim(results: dict[str, list[dict]], better: str, worse: str, what: str) -> str:
    """One claim, 'A beats B', read from the records: both means, and whether it holds per seed."""
    a, b = results.get(better), results.get(worse)
    if not a or not b:
        return f"- {what}: not measured ({better} or {worse} has no record)."
    pairs = [(x["top1"], y["top1"]) for x in a for y in b if x["seed"] == y["seed"]]
    per_seed = sum(x > y for x, y in pairs)
    holds = (
        "holds" if statistics.mean(r["top1"] for r in a) > statistics.mean(r["top1"] for r in b) else "fails"
    )
    return (
        f"- {what}, {holds}: `{better}` {mean_std([r['top1'] for r in a])}% against `{worse}` "
        f"{mean_std([r['top1'] for r in b])}% test top-1 (within reversal pairs "
        f"{mean_std([r['pairs'] for r in a])}% against {mean_std([r['pairs'] for r in b])}%); "
        f"above it in {per_seed} of {len(pairs)} seeds."
    )


def table(results: dict[str, list[dict]] | None = None) -> str:
    """results/synthmotion.md, from the records alone (`results`: those records, by recipe)."""
    results = records_by_recipe() if results is None else results
    cpus = sorted({r.get("cpu", "unknown") for runs in results.values() for r in runs})
    stamped = [r for runs in results.values() for r in runs if "machine" in r]
    return "\n".join(
        [
            "# SynthMotion: which architectures see motion",
            "",
            "Written by `python bench/synthmotion.py --table` from the records in "
            "`results/synthmotion_runs/` (one per recipe and seed). To re-run them: the data, `"
            + DATA_COMMAND
            + "` (12 classes, "
            "chance 8.3%), then `python bench/synthmotion.py --data data/synthmotion` (each recipe of "
            "`configs/*_synth.yaml` with seeds 0, 1, 2 through vidrec's training engine, as `vidrec train` "
            "runs it; about 5 h on 2 cores). Means ± sample standard deviations over the seeds. Machines: "
            + ", ".join(cpus)
            + (
                f"; {len(stamped)} of the {sum(map(len, results.values()))} records also name the commit "
                "and versions"
                if stamped
                else "; the records name the CPU, not the commit or library versions (they predate that)"
            )
            + ". "
            "Training is deterministic on one machine, not across CPUs.",
            "",
            results_table(results).rstrip("\n"),
            "",
            '"within reversal pairs": of the test videos of the five time-reversal pairs (move left/right, '
            "up/down, approach/recede, rotate clockwise/counter-clockwise, appear/disappear) that a model "
            "put in their pair, the share on the right side: 50% is chance for a model blind to frame order. "
            '"oscillate fast/slow" is the same within that pair. "train min" is the wall time of the whole '
            "run (training, validation each epoch, the test), shared with other work in some runs.",
            "",
            "The seeds' claims, from the same records:",
            "",
            _claim(results, "i3d_small", "tsn_small", "I3D against its 2D CNN per frame (seed 004)"),
            _claim(
                results, "slowfast_small", "slow_small", "SlowFast against its Slow pathway alone (seed 000)"
            ),
            _claim(
                results, "fast_small", "slow_small", "the Fast pathway alone against the Slow pathway alone"
            ),
            "",
            "![SynthMotion test accuracy](synthmotion.png)",
            "",
            "Confusion matrices (test, seed 0 of each recipe): "
            + ", ".join(f"`synthmotion_confusion_{k}.png`" for k in results)
            + ".",
            "",
        ]
    )


def plot(results: dict[str, list[dict]], png: str) -> None:
    """Test top-1 and within-pair accuracy per recipe, mean and std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 2.0))
    for k, (key, label) in enumerate((("top1", "test top-1"), ("pairs", "within reversal pairs"))):
        values = [[r[key] for r in results[n] if not math.isnan(r[key])] or [0.0] for n in names]
        means = [statistics.mean(v) for v in values]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ys = [i + (k - 0.5) * 0.38 for i in range(len(names))]
        ax.barh(ys, means, height=0.36, xerr=stds, label=label, capsize=3)
    ax.axvline(100 / 12, color="gray", linestyle=":", label="chance (top-1)")
    ax.axvline(50, color="gray", linestyle="--", label="chance (within pairs)")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% (mean ± std over seeds)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8)  # off the bars
    ax.set_title("SynthMotion test accuracy")
    fig.tight_layout()
    fig.savefig(png + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(png + ".tmp.png", png)


def write_results(results: dict[str, list[dict]], folder: str) -> None:
    """The table, every run's figures, the plot and each recipe's seed-0 confusion matrix."""
    atomic_write_text(os.path.join(folder, "synthmotion_table.md"), results_table(results))
    runs = {k: [{f: r[f] for f in r if f != "confusion_matrix"} for r in v] for k, v in results.items()}
    atomic_write_text(os.path.join(folder, "synthmotion_runs.json"), json.dumps(runs, indent=1) + "\n")
    plot(results, os.path.join(folder, "synthmotion.png"))
    for recipe, runs in results.items():
        first = runs[0]
        png = os.path.join(folder, f"synthmotion_confusion_{recipe}.png")
        plot_confusion(first["confusion_matrix"], first["labels"], png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/synthmotion", help="a SynthMotion folder (vidrec synth)")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/synthmotion_bench", help="one folder per recipe and seed")
    ap.add_argument(
        "--results", help="where the table, plot and matrices of this invocation go (default: --runs)"
    )
    ap.add_argument("--record", default=RECORD, help="finished runs' figures, kept ('' for none)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override every recipe")
    ap.add_argument(
        "--table", action="store_true", help="train nothing: results/synthmotion.md from the records"
    )
    ap.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: the table, plot and matrices of the runs already finished under --runs",
    )
    args = ap.parse_args()
    args.results = args.results or args.runs
    if args.table:
        results = records_by_recipe(args.record)
        write_table(TABLE, table(results))
        plot(results, os.path.join(RESULTS, "synthmotion.png"))
        for recipe, runs in results.items():
            png = os.path.join(RESULTS, f"synthmotion_confusion_{recipe}.png")
            plot_confusion(runs[0]["confusion_matrix"], runs[0]["labels"], png)
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results: dict[str, list[dict]] = {r: [] for r in args.recipes}
    for seed in args.seeds:  # every recipe once before any twice: a cut-short run still covers all
        for recipe in args.recipes:
            finished = os.path.exists(os.path.join(run_dir(args.runs, recipe, seed), RESULT_NAME))
            if args.finished_only and not finished and not recorded(args.record, recipe, seed):
                continue
            results[recipe].append(
                run_one(recipe, seed, data=args.data, runs=args.runs, overrides=args.set, record=args.record)
            )
            print(results_table({recipe: results[recipe]}).splitlines()[-1], flush=True)
            write_results({k: v for k, v in results.items() if v}, args.results)
    print(results_table({k: v for k, v in results.items() if v}))
    if args.record == RECORD and not args.set:
        atomic_write_text(TABLE, table())
        print(f"{TABLE}: written from the records")


if __name__ == "__main__":
    main()
