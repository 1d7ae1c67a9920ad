"""VideoMAE figures: parameters and multiply-accumulates at 16x224x224, forward time against
transformers' VideoMAEForVideoClassification (SDPA) on the same weights and input, and the
pretraining step time at mask ratio 0.9 (and with V2 decoder masking) against no masking.

    python bench/videomae.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch

import vidrec
from common import describe_machine, machine, median_time
from vidrec.flops import count_macs, count_params


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio

    print(f"{'model':<14}{'params (400)':>16}{'GMACs 16x224x224':>18}")
    for name in ("videomae_s", "videomae_b", "videomae_l"):
        m = vidrec.create_model(name, num_classes=400)
        print(f"{name:<14}{count_params(m):>16,}{count_macs(m, (1, 3, 16, 224, 224)) / 1e9:>18.1f}")

    import tempfile

    from transformers import VideoMAEForVideoClassification

    ours = vidrec.create_model("videomae_b", num_classes=400).eval()
    with tempfile.TemporaryDirectory() as d:
        vidrec.save_model(ours, d, format="transformers")
        theirs = VideoMAEForVideoClassification.from_pretrained(d, attn_implementation="sdpa").eval()
    x = torch.randn(1, 3, 16, 224, 224)
    xt = x.transpose(1, 2).contiguous()
    with torch.no_grad():
        err = (ours(x) - theirs(pixel_values=xt).logits).abs().max().item()
        a, b = [], []
        for i in range(
            2 * args.repeats + 1
        ):  # interleaved, alternating which goes first (order matters here)
            pair = [(a, lambda: ours(x)), (b, lambda: theirs(pixel_values=xt))]
            for times, fn in pair if i % 2 else pair[::-1]:
                times.append(median_time(fn, 1))
    ta, tb = statistics.median(a), statistics.median(b)
    print(
        f"\nvideomae_b forward 1x16x224x224, 2 threads: vidrec {ta:.3f} s, transformers (sdpa) {tb:.3f} s, "
        f"ratio {tb / ta:.2f}x (max abs logit diff {err:.1e})"
    )

    x2 = torch.randn(2, 3, 16, 224, 224)
    results = {}
    for label, ratio, dec in (
        ("no masking", 0.0, 0.0),
        ("tube mask 0.9", 0.9, 0.0),
        ("0.9 + V2 decoder mask 0.5", 0.9, 0.5),
    ):
        model = vidrec.create_model("videomae_b_pretrain", mask_ratio=ratio, decoder_mask_ratio=dec).train()

        def step(model=model, ratio=ratio):
            mask, decoder_mask = model.draw_masks(x2)
            if ratio == 0.0:  # the encoder sees every token and the decoder reconstructs every token
                decoder_mask = torch.zeros_like(mask)
            model.loss(x2, mask, decoder_mask).backward()
            model.zero_grad(set_to_none=True)

        results[label] = median_time(step, args.repeats)
    base = results["no masking"]
    print("\npretraining step (forward + backward), videomae_b_pretrain, batch 2, 16x224x224:")
    for label, t in results.items():
        print(f"  {label:<28}{t:8.2f} s   {base / t:5.2f}x faster than no masking")


if __name__ == "__main__":
    main()
