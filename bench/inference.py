"""Inference speed of the three big families against their peers, in float32 and bfloat16, on the
paths `vidrec predict` and `vidrec eval` take (`for_inference`: batch norms folded, channels-last
3D weights; `--precision bf16`: bfloat16 autocast; `--backend onnxruntime`: the exported graph in
ONNX Runtime, float32). Batch 1, 2 threads, random weights (speed does not depend on them),
medians of interleaved runs; each ratio is against the peer measured in the same run, and the
peers get the same bfloat16 autocast for the bf16 rows.

    python bench/inference.py [--repeats 3] [--only slowfast i3d videomae]
    python bench/inference.py --table       # results/inference.md from the records

Each run writes a record (every row's median seconds per family, the machine: CPU, flags,
threads, its GEMM peak, versions, commit) to results/inference_runs/; results/inference.md is
written from the records alone, per machine (the ratios differ between CPUs).

Peers: PyTorchVideo's slowfast_r50 (SlowFast R50 8x8, 32x224x224), the same Inception I3D in
eager float32 and torchvision's S3D (16x224x224), transformers' VideoMAE-B with SDPA (16x224x224).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vidrec
from common import by_cpu, describe_machine, machine, read_records  # noqa: E402
from vidrec.deploy import optimize_for_inference
from vidrec.deploy.precision import native_bfloat16, to_bfloat16
from vidrec.models.download import cache_dir
from vidrec.runtime.onnxruntime import to_onnxruntime
from vidrec.utils import atomic_write_text

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "..", "results", "inference_runs")
TABLE = os.path.join(HERE, "..", "results", "inference.md")


def bf16(fn):
    """`fn` under bfloat16 autocast (the peers' bf16 form)."""

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()

    return run


def ours(name: str, **prep):
    """vidrec's model in float32 (inference form), in bfloat16, and run by ONNX Runtime (`prep`:
    the input the graph is exported for, when not the model's test input)."""
    model = vidrec.create_model(name).eval()
    model.preprocessing = dataclasses.replace(model.preprocessing, **prep)
    ort = to_onnxruntime(model, cache=os.path.join(cache_dir(), "onnx"))
    model = optimize_for_inference(model)
    return model, to_bfloat16(copy.deepcopy(model)), ort


def slowfast() -> dict:
    from pytorchvideo.models.hub import slowfast_r50

    peer = slowfast_r50(pretrained=False).eval()
    fp32, half, ort = ours("slowfast_r50_8x8", test_crop_size=224)
    fast = torch.randn(1, 3, 32, 224, 224)
    slow = fast[:, :, torch.linspace(0, 31, 8).long()]
    return {
        "PyTorchVideo slowfast_r50 fp32": lambda: peer([slow, fast]),
        "PyTorchVideo slowfast_r50 bf16": bf16(lambda: peer([slow, fast])),
        "vidrec slowfast_r50_8x8 fp32": lambda: fp32(fast),
        "vidrec slowfast_r50_8x8 bf16": lambda: half(fast),
        "vidrec slowfast_r50_8x8 onnxruntime fp32": lambda: ort(fast),
    }


def i3d() -> dict:
    import torchvision

    eager = vidrec.create_model("i3d_inception_rgb").eval()
    fp32, half, ort = ours("i3d_inception_rgb", num_frames=16)
    s3d = torchvision.models.video.s3d(weights=None).eval()
    x = torch.randn(1, 3, 16, 224, 224)
    return {
        "vidrec i3d_inception_rgb eager fp32": lambda: eager(x),
        "torchvision s3d fp32": lambda: s3d(x),
        "torchvision s3d bf16": bf16(lambda: s3d(x)),
        "vidrec i3d_inception_rgb fp32": lambda: fp32(x),
        "vidrec i3d_inception_rgb bf16": lambda: half(x),
        "vidrec i3d_inception_rgb onnxruntime fp32": lambda: ort(x),
    }


def videomae() -> dict:
    from transformers import VideoMAEForVideoClassification

    fp32, half, ort = ours("videomae_b")
    with tempfile.TemporaryDirectory() as d:
        vidrec.save_model(fp32, d, format="transformers")
        peer = VideoMAEForVideoClassification.from_pretrained(d, attn_implementation="sdpa").eval()
    x = torch.randn(1, 3, 16, 224, 224)
    xt = x.transpose(1, 2).contiguous()
    return {
        "transformers VideoMAE-B sdpa fp32": lambda: peer(pixel_values=xt),
        "transformers VideoMAE-B sdpa bf16": bf16(lambda: peer(pixel_values=xt)),
        "vidrec videomae_b fp32": lambda: fp32(x),
        "vidrec videomae_b bf16": lambda: half(x),
        "vidrec videomae_b onnxruntime fp32": lambda: ort(x),
    }


FAMILIES = {"slowfast": slowfast, "i3d": i3d, "videomae": videomae}


def measure(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run, interleaved, alternating the order (a slow spell hits all)."""
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()  # warm-up
        for r in range(repeats):
            for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
                t0 = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table() -> str:
    """results/inference.md from the records: per machine and family, each run's seconds per clip
    and ratio to the family's reference (its first row), then the range of each ratio."""
    records = read_records(RUNS)
    out = [
        "# Inference speed against the peers",
        "",
        "Written by `python bench/inference.py --table` from the records in `results/inference_runs/` "
        "(each made by `python bench/inference.py`: batch 1, 2 threads, random weights, medians of "
        "interleaved runs after a warm-up; each ratio is against the family's reference measured in "
        "the same run). Compare ratios, not seconds, across runs and machines.",
        "",
    ]
    by_machine = by_cpu(records)
    for key, runs in by_machine.items():
        out += [f"## {key}", "", f"Machine of the last run: {describe_machine(runs[-1]['machine'])}.", ""]
        families = list(dict.fromkeys(f for r in runs for f in r["seconds"]))
        for family in families:
            mine = [r for r in runs if family in r["seconds"]]
            names = list(mine[0]["seconds"][family])
            reference = names[0]
            out += [
                f"### {family}: ratio against {reference}",
                "",
                "| row | "
                + " | ".join(f"{r['machine']['date'][:16]} {r['machine']['commit'][:8]}" for r in mine)
                + " | range |",
                "|---|" + "---|" * (len(mine) + 1),
            ]
            for name in names:
                ratios = [r["seconds"][family][reference] / r["seconds"][family][name] for r in mine]
                cells = [f"{r['seconds'][family][name]:.3f} s, {x:.2f}x" for r, x in zip(mine, ratios)]
                out.append(f"| {name} | " + " | ".join(cells) + f" | {min(ratios):.2f}-{max(ratios):.2f}x |")
            out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--table", action="store_true", help="only write results/inference.md from the records")
    args = ap.parse_args()
    if args.table:
        atomic_write_text(TABLE, table())
        print(f"wrote {TABLE}", file=sys.stderr)
        return
    torch.set_num_threads(2)
    host = machine()
    print(f"{describe_machine(host)}; native bf16: {native_bfloat16()}, median of {args.repeats}")
    seconds = {}
    for family in args.only:
        times = measure(FAMILIES[family](), args.repeats)
        seconds[family] = times
        peer = next(iter(times))  # the first run of each family is its reference
        print(f"\n{family}: seconds per clip, ratio against {peer}")
        for name, t in times.items():
            print(f"  {name:<44}{t:8.3f} s {times[peer] / t:6.2f}x")
    record = {"repeats": args.repeats, "native_bf16": native_bfloat16(), "seconds": seconds, "machine": host}
    os.makedirs(RUNS, exist_ok=True)
    stamp = host["date"].replace(":", "").replace("-", "")[:15]
    atomic_write_text(
        os.path.join(RUNS, f"{stamp}_{host['commit'][:8]}.json"), json.dumps(record, indent=1) + "\n"
    )
    atomic_write_text(TABLE, table())


if __name__ == "__main__":
    main()
