"""SlowFast R50 8x8 forward time (batch 1, eval, 2 threads) against PyTorchVideo's slowfast_r50
on identical input in the same run, and what channels_last_3d, fused conv-BN and torch.compile
give. Medians of interleaved runs; ratios against PyTorchVideo measured in the same run.

    python bench/slowfast.py [--repeats 7] [--size 224] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import vidrec
from common import describe_machine, machine
from vidrec.deploy import fuse_conv_bn
from vidrec.flops import count_macs, count_params

ZOO = {  # params (PyTorchVideo hub models), GMACs at 256x256 (model zoo) where known here
    "slowfast_r50_4x16": (None, 36.1, 32),
    "slowfast_r50_8x8": (34_566_488, 65.7, 32),
    "slowfast_r101_8x8": (62_826_968, None, 32),
    "slowfast_r101_16x8": (53_774_808, None, 64),
    "slow_r50_8x8": (32_454_096, 54.52, 8),
    "fast_r50": (None, None, 32),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build on CPU)")
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    torch.set_grad_enabled(False)

    if not args.no_table:
        print(f"{'model':<22}{'params':>14}{'zoo':>14}{'GMACs@256':>11}{'zoo':>8}")
        for name, (params, gmacs, frames) in ZOO.items():
            m = vidrec.create_model(name)
            macs = count_macs(m, (1, 3, frames, 256, 256)) / 1e9
            print(f"{name:<22}{count_params(m):>14,}{params or '-':>14}{macs:>11.2f}{gmacs or '-':>8}")

    from pytorchvideo.models.hub import slowfast_r50

    reference = slowfast_r50(pretrained=False).eval()
    ours = vidrec.create_model("slowfast_r50_8x8").eval()
    fast = torch.randn(1, 3, 32, args.size, args.size)
    slow = fast[:, :, torch.linspace(0, 31, 8).long()]
    variants = {"pytorchvideo slowfast_r50": lambda: reference([slow, fast]), "vidrec": lambda: ours(fast)}
    channels_last = copy.deepcopy(ours).to(memory_format=torch.channels_last_3d)
    fast_cl = fast.contiguous(memory_format=torch.channels_last_3d)
    variants["vidrec channels_last_3d"] = lambda: channels_last(fast_cl)
    fused = fuse_conv_bn(copy.deepcopy(ours))
    err = (fused(fast) - ours(fast)).abs().max().item()
    variants["vidrec fused conv-bn"] = lambda: fused(fast)
    fused_cl = copy.deepcopy(fused).to(memory_format=torch.channels_last_3d)
    variants["vidrec fused + channels_last_3d"] = lambda: fused_cl(fast_cl)
    if args.compile:
        compiled = torch.compile(fused)
        t0 = time.perf_counter()
        compiled(fast)
        print(f"torch.compile build: {time.perf_counter() - t0:.0f} s")
        variants["vidrec fused + torch.compile"] = lambda: compiled(fast)
    times = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(args.repeats):  # interleaved, so a slow spell hits every variant
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    ref = statistics.median(times["pytorchvideo slowfast_r50"])
    print(f"\nforward, batch 1, 32 frames {args.size}x{args.size}, 2 threads, median of {args.repeats}:")
    for k, ts in times.items():
        med = statistics.median(ts)
        print(f"  {k:<36}{med:8.3f} s   {ref / med:5.2f}x vs PyTorchVideo")
    print(f"fused conv-bn max abs logit change: {err:.1e}")


if __name__ == "__main__":
    main()
