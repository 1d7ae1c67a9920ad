"""VideoMAE V2's ViT-g/14 (1,012,174,352 parameters with 400 classes) on this machine: one
16x224x224 clip classified, with the weights

- in float32 (the reference: 4.0 GB), plain PyTorch (no `optimize_for_inference`) in every form,
- in float32 under bfloat16 autocast (`--precision bf16`, as the CLI runs a model),
- in bfloat16, memory-mapped from model.safetensors (`vidrec.load_model(DIR,
  dtype=torch.bfloat16)` then `vidrec.deploy.precision.to_bfloat16`: 2.0 GB, read as they are used),

each in a fresh process, so its peak resident memory (VmHWM, Python and torch included) is
that form's alone: load time, the first clip (untimed warm-up), the median of `--repeats` more,
and how far its logits are from float32's.

    python bench/vitg.py [--work DIR] [--repeats 3]
    python bench/vitg.py --table     # results/vitg.md from the records

The weights are random (normal, std 0.02: no ViT-g checkpoint can be downloaded here; time and
memory do not depend on the values), written once as a vidrec model directory in --work. Each run
writes a record (machine, commit, every form's figures) to results/vitg_runs/. About 10 minutes on
2 cores (float32's clips take most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))

from common import by_cpu, describe_machine, machine, read_records, write_table  # noqa: E402
from vidrec.models.download import cache_dir  # noqa: E402
from vidrec.utils import atomic_write_text  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")
RUNS = os.path.join(RESULTS, "vitg_runs")
TABLE = os.path.join(RESULTS, "vitg.md")
ARCH, INPUT = "videomae_g", (1, 3, 16, 224, 224)
FORMS = {  # name -> (weights dtype, bfloat16 autocast)
    "float32": ("float32", False),
    "float32 weights, bf16 autocast": ("float32", True),
    "bfloat16 weights (memory-mapped), bf16 autocast": ("bfloat16", True),
}


def write_weights(folder: str, dtype: torch.dtype) -> str:
    """A vidrec directory of ViT-g with random weights in `dtype` (made once; a tensor at a time,
    so float32's 4 GB are never held twice)."""
    import vidrec
    from vidrec.models.base import WEIGHTS_NAME

    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    with torch.device("meta"):
        model = vidrec.create_model(ARCH, num_classes=400)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, p in model.state_dict().items():
        if name.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
            state[name] = torch.ones(p.shape, dtype=dtype)
        else:
            state[name] = (torch.randn(p.shape, generator=generator) * 0.02).to(dtype)
    from vidrec.utils import write_safetensors

    # as save_pretrained writes it (the data on a 64-byte boundary), without building the model
    write_safetensors(os.path.join(folder, WEIGHTS_NAME), state, {"format": "pt"})
    del state
    model.preprocessing = vidrec.create_model("videomae_b", num_classes=2).preprocessing
    atomic_write_text(os.path.join(folder, "config.json"), json.dumps(model.config_json(), indent=2) + "\n")
    return folder


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started: VmHWM, which exec resets. Linux's
    ru_maxrss keeps the high-water mark of the process that forked it (a parent that has just written
    the weights makes every form look as big as itself)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(folder: str, dtype: str, autocast: bool, repeats: int, reference: str | None) -> dict:
    """In this (fresh) process: load, one warm-up clip, `repeats` timed clips, peak memory."""
    import vidrec
    from vidrec.deploy.precision import to_bfloat16

    dtype = None if dtype == "float32" else getattr(torch, dtype)
    t0 = time.perf_counter()
    model = vidrec.load_model(folder, dtype=dtype)
    load_s = time.perf_counter() - t0
    if autocast:
        model = to_bfloat16(model)
    x = torch.randn(*INPUT, generator=torch.Generator().manual_seed(1))
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            logits = model(x if dtype is None or autocast else x.to(dtype)).float()
            times.append(time.perf_counter() - t0)
    out = {
        "load_s": load_s,
        "first_clip_s": times[0],
        "clip_s": times[1:],
        "peak_rss_mib": peak_rss_mib(),
        "logits": logits[0].tolist(),
    }
    if reference:
        ref = torch.tensor(json.loads(reference))
        out["max_logit_error_rel"] = float((logits[0] - ref).abs().max() / ref.abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.join(cache_dir(), "bench_vitg"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only write results/vitg.md from the records")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a form, in a fresh process
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        write_table(TABLE, table())
        return
    torch.set_num_threads(args.threads)
    if args.measure:
        weights, autocast = FORMS[args.measure]
        folder = os.path.join(args.work, weights)
        print(json.dumps(measure(folder, weights, autocast, args.repeats, args.reference)))
        return
    from vidrec.flops import count_macs, count_params

    for dtype in ("float32", "bfloat16"):
        write_weights(os.path.join(args.work, dtype), getattr(torch, dtype))
    with torch.device("meta"):
        import vidrec

        meta = vidrec.create_model(ARCH, num_classes=400)
    record = {
        "arch": ARCH,
        "input": list(INPUT),
        "params": count_params(meta),
        "gmacs": count_macs(meta, INPUT) / 1e9,
        "weights_bytes": {
            d: os.path.getsize(os.path.join(args.work, d, "model.safetensors"))
            for d in ("float32", "bfloat16")
        },
        "repeats": args.repeats,
        "forms": {},
        "machine": machine(),
    }
    reference = None
    for name in FORMS:
        command = [
            sys.executable,
            __file__,
            "--measure",
            name,
            "--work",
            args.work,
            "--repeats",
            str(args.repeats),
        ]
        command += ["--threads", str(args.threads)] + (["--reference", reference] if reference else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if reference is None:
            reference = json.dumps(result["logits"])
        result.pop("logits")
        record["forms"][name] = result
        print(name, json.dumps(result), file=sys.stderr)
    os.makedirs(RUNS, exist_ok=True)
    stamp = record["machine"]["date"].replace(":", "").replace("-", "")[:15]
    atomic_write_text(os.path.join(RUNS, f"{stamp}.json"), json.dumps(record, indent=1) + "\n")
    write_table(TABLE, table())


def table() -> str:
    """results/vitg.md from the records: per machine and run, each form's load time, clip time
    (median), peak memory and logit error, and its speed against float32 in the same run."""
    import statistics

    records = read_records(RUNS)
    out = [
        "# VideoMAE V2 ViT-g/14 on a CPU: one 16x224x224 clip",
        "",
        "Written by `python bench/vitg.py --table` from the records in `results/vitg_runs/` (each made by "
        "`python bench/vitg.py`: random weights, each form in a fresh process; clip time is the median of "
        "the repeats after an untimed first clip; peak memory is the process's maximum resident set, "
        "Python and torch included; the logit error is the largest difference from float32's logits "
        "over their largest magnitude).",
        "",
    ]
    for key, runs in by_cpu(records).items():
        out += [f"## {key}", ""]
        for r in runs:
            ref = statistics.median(r["forms"]["float32"]["clip_s"])
            out += [
                f"{describe_machine(r['machine'])}; {r['params']:,} parameters, "
                f"{r['gmacs']:.0f} GMACs a clip.",
                "",
                "| weights and compute | load s | clip s | vs float32 | peak memory GiB | logit error |",
                "|---|---|---|---|---|---|",
            ]
            for name, f in r["forms"].items():
                clip = statistics.median(f["clip_s"])
                error = f"{f['max_logit_error_rel']:.1e}" if "max_logit_error_rel" in f else "reference"
                out.append(
                    f"| {name} | {f['load_s']:.1f} | {clip:.1f} | {ref / clip:.2f}x | "
                    f"{f['peak_rss_mib'] / 1024:.1f} | {error} |"
                )
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
