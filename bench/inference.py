"""Inference speed of the three big families against their peers, in float32 and bfloat16, on the
paths `vidrec predict` and `vidrec eval` take (`for_inference`: batch norms folded, channels-last
3D weights; `--precision bf16`: bfloat16 autocast; `--backend onnxruntime`: the exported graph in
ONNX Runtime, float32). Batch 1, 2 threads, random weights (speed does not depend on them),
medians of interleaved runs; each ratio is against the peer measured in the same run, and the
peers get the same bfloat16 autocast for the bf16 rows.

    python bench/inference.py [--repeats 3] [--only slowfast i3d videomae]

Peers: PyTorchVideo's slowfast_r50 (SlowFast R50 8x8, 32x224x224), the same Inception I3D in
eager float32 and torchvision's S3D (16x224x224), transformers' VideoMAE-B with SDPA (16x224x224).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import statistics
import tempfile
import time

import torch

import vidrec
from vidrec.deploy import optimize_for_inference
from vidrec.deploy.precision import native_bfloat16, to_bfloat16
from vidrec.models.download import cache_dir
from vidrec.runtime.onnxruntime import to_onnxruntime


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


def cpu_name() -> str:
    """The CPU's model name (lscpu's), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(
        f"{cpu_name()}, torch {torch.__version__}, 2 threads, "
        f"native bf16: {native_bfloat16()}, median of {args.repeats}"
    )
    for family in args.only:
        times = measure(FAMILIES[family](), args.repeats)
        peer = next(iter(times))  # the first run of each family is its reference
        print(f"\n{family}: seconds per clip, ratio against {peer}")
        for name, seconds in times.items():
            print(f"  {name:<44}{seconds:8.3f} s {times[peer] / seconds:6.2f}x")


if __name__ == "__main__":
    main()
