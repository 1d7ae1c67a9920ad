"""Parameters and multiply-accumulates of every architecture at the input its paper (or zoo) counts
at, computed from the code itself on PyTorch's meta device (shapes only: seconds, no memory).
results/models.md is this table; tests/test_results.py checks the committed one is what the code
gives, so a README figure taken from it cannot go stale.

    python bench/models.py --table
"""

from __future__ import annotations

import argparse
import os

import torch

from common import write_table
from vidrec.flops import count_macs, count_params
from vidrec.models.registry import create_model, list_models

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "models.md")
# architecture -> the input (C, T, H, W) its MACs are counted at, as its paper or model zoo does
INPUTS = {
    "i3d_inception_rgb": (3, 64, 224, 224),
    "i3d_inception_flow": (2, 64, 224, 224),
    "i3d_r50": (3, 8, 256, 256),
    "slowfast_r50_8x8": (3, 32, 256, 256),
    "slowfast_r50_4x16": (3, 32, 256, 256),
    "slowfast_r101_8x8": (3, 32, 256, 256),
    "slowfast_r101_16x8": (3, 64, 256, 256),
    "slow_r50_8x8": (3, 8, 256, 256),
    "fast_r50": (3, 32, 256, 256),
    "videomae_s": (3, 16, 224, 224),
    "videomae_b": (3, 16, 224, 224),
    "videomae_l": (3, 16, 224, 224),
    "videomae_h": (3, 16, 224, 224),
    "movinet_a0_stream": (3, 50, 172, 172),
    "movinet_a1_stream": (3, 50, 172, 172),
    # the CPU-scale variants, at SynthMotion's input
    "i3d_small": (3, 16, 56, 56),
    "i3d_resnet_small": (3, 16, 56, 56),
    "slowfast_small": (3, 16, 56, 56),
    "slow_small": (3, 16, 56, 56),
    "fast_small": (3, 16, 56, 56),
    "tsn_r50": (3, 8, 224, 224),
    "tsn_r18": (3, 8, 224, 224),
    "tsn_small": (3, 8, 56, 56),
    "videomae_small_synth": (3, 16, 56, 56),
    "movinet_a0_synth": (3, 16, 56, 56),
}


def options(name: str) -> dict:
    """Classifiers are counted with 400 classes; detectors and pretraining models as built."""
    return {} if name.endswith(("_pretrain", "_ava")) else {"num_classes": 400}


def table() -> str:
    """The Markdown table of every architecture."""
    lines = [
        "# Parameters and MACs of every architecture",
        "",
        "Written by `python bench/models.py --table` from the code (built on the meta device). "
        "Classifiers counted with 400 classes; `*_ava` detectors with their own (80 for AVA, 13 for "
        "SynthMotion-AVA); `*_pretrain`: encoder and decoder. GMACs: multiply-accumulates "
        "(what the papers call FLOPs) of one forward pass, batch 1, `torch.utils.flop_counter` "
        "(`vidrec.flops.count_macs`).",
        "",
        "| architecture | params | GMACs | input (C x T x H x W) |",
        "|---|---|---|---|",
    ]
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name, **options(name))
        shape = INPUTS.get(name)
        macs = f"{count_macs(model, (1, *shape)) / 1e9:.2f}" if shape else ""
        lines.append(f"| `{name}` | {count_params(model):,} | {macs} | {'x'.join(map(str, shape or ()))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", action="store_true", help="write results/models.md (the only thing it does)")
    ap.parse_args()
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
