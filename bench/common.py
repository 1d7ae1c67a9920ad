"""Helpers shared by the benchmarks (run them as `python bench/NAME.py`): timing, and the machine
a record was made on."""

from __future__ import annotations

import glob
import json
import math
import os
import statistics
import time


def median_time(fn, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` runs, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> dict:
    """What a record needs to be read again: the CPU (its name and the vector extensions that
    change speeds), threads, the measured fp32 GEMM peak, versions, the commit (and whether the
    code differed from it), the date."""
    import datetime
    import platform
    import subprocess

    import numpy as np
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), ""
    )
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]
    a = torch.randn(1024, 1024)
    seconds = median_time(lambda: a @ a, 5)
    # the same product by oneDNN's inner product (what vidrec's float32 linear layers use): where
    # PyTorch's GEMM (MKL) is slow on a CPU and oneDNN is not, vidrec's float32 ratios are larger
    from vidrec.deploy.onednn import onednn_available, onednn_linear

    with torch.inference_mode():
        onednn = median_time(lambda: onednn_linear(a, a), 5) if onednn_available() else None

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "cpu": name or platform.machine(),
        "cpu_flags": flags,
        "threads": torch.get_num_threads(),
        "gemm_fp32_gflops": round(2 * 1024**3 / seconds / 1e9, 1),
        "gemm_fp32_onednn_gflops": round(2 * 1024**3 / onednn / 1e9, 1) if onednn else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "commit": git("rev-parse", "HEAD"),
        # changes to what runs (not to results/ or the README) since that commit
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "src", "bench", "configs")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def describe_machine(m: dict) -> str:
    """One line for a table's header: CPU, flags, threads, GEMM peak."""
    return (
        f"{m['cpu']} ({', '.join(m['cpu_flags']) or 'no AVX2'}), {m['threads']} threads, "
        f"fp32 GEMM {m['gemm_fp32_gflops']} GFLOP/s"
        + (f" (oneDNN {m['gemm_fp32_onednn_gflops']})" if m.get("gemm_fp32_onednn_gflops") else "")
        + f"; torch {m['torch']}, commit {m['commit'][:8]}"
        + (" (with uncommitted changes)" if m.get("dirty") else "")
    )


def read_records(folder: str) -> list[dict]:
    """The JSON records in `folder`, in file-name order (a table is written from them alone)."""
    records = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            records.append(json.load(f))
    return records


def by_cpu(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by the CPU they ran on (name, vector extensions, threads), in order: ratios
    are compared within a group."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        m = r["machine"]
        groups.setdefault(f"{m['cpu']} ({', '.join(m['cpu_flags'])}), {m['threads']} threads", []).append(r)
    return groups


def mean_std(values: list[float], digits: int = 1) -> str:
    """'m ± s' over seeds, s the sample standard deviation ('m' alone for one value); undefined
    values (nan) are left out and the count kept is given: 'm ± s (2 of 3)'; n/a if none is."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return "n/a"
    text = f"{kept[0]:.{digits}f}"
    if len(kept) > 1:
        text = f"{statistics.mean(kept):.{digits}f} ± {statistics.stdev(kept):.{digits}f}"
    return text if len(kept) == len(values) else f"{text} ({len(kept)} of {len(values)})"


def write_table(path: str, text: str) -> None:
    """A results table, written atomically (a reader never sees half of it), and printed."""
    from vidrec.utils import atomic_write_text

    atomic_write_text(path, text)
    print(text)
