"""I3D figures: parameters and multiply-accumulates per variant, forward time against
torchvision's S3D (also an inflated Inception) in the same run, and optical-flow speed.

    python bench/i3d.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
import torchvision

import vidrec
from common import describe_machine, machine, median_time
from vidrec.data.flow import flow_estimator
from vidrec.flops import count_macs, count_params

# Reference figures: parameters of pytorch-i3d / PyTorchVideo, GFLOPs (multiply-accumulates) from
# the I3D/X3D papers and the PyTorchVideo model zoo (i3d_r50 at 8x256x256: 37.53).
REFERENCE = {
    "i3d_inception_rgb": (12_697_264, 108.0),
    "i3d_inception_flow": (12_675_312, None),
    "i3d_r50": (28_043_472, 37.53),
}
SHAPES = {
    "i3d_inception_rgb": (1, 3, 64, 224, 224),
    "i3d_inception_flow": (1, 2, 64, 224, 224),
    "i3d_r50": (1, 3, 8, 256, 256),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    torch.set_grad_enabled(False)

    print(f"{'model':<20}{'input':>20}{'params':>14}{'ref params':>14}{'GMACs':>9}{'ref':>8}")
    for name, shape in SHAPES.items():
        model = vidrec.create_model(name, num_classes=400)
        ref_params, ref_macs = REFERENCE[name]
        macs = count_macs(model, shape) / 1e9
        ref = f"{ref_macs:.1f}" if ref_macs else "-"
        print(
            f"{name:<20}{'x'.join(map(str, shape[1:])):>20}{count_params(model):>14,}"
            f"{ref_params:>14,}{macs:>9.1f}{ref:>8}"
        )

    x = torch.randn(1, 3, 16, 224, 224)
    i3d = vidrec.create_model("i3d_inception_rgb").eval()
    s3d = torchvision.models.video.s3d(weights=None).eval()
    ours, theirs = [], []
    for _ in range(args.repeats):  # interleaved, so a slow spell hits both
        ours.append(median_time(lambda: i3d(x), 1))
        theirs.append(median_time(lambda: s3d(x), 1))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"\nforward 1x3x16x224x224 ({torch.get_num_threads()} threads): i3d_inception_rgb {a:.3f} s, "
        f"torchvision s3d {b:.3f} s, ratio {a / b:.2f} (I3D {count_macs(i3d, x.shape) / 1e9:.1f} GMACs, "
        f"S3D {count_macs(s3d, x.shape) / 1e9:.1f} GMACs)"
    )

    rng = np.random.default_rng(0)
    a_img = (rng.random((224, 224)) * 255).astype(np.uint8)
    b_img = np.roll(a_img, 2, axis=1)
    for method in ("tvl1", "dis"):
        est = flow_estimator(method)
        t = median_time(lambda est=est: est.calc(a_img, b_img, None), args.repeats)
        print(f"optical flow {method} at 224x224: {1 / t:.1f} frames/s")


if __name__ == "__main__":
    main()
