"""How long a small VideoMAE takes to learn the easiest masked-video task there is.

Each clip is a grid of random colours, one per patch and the same in every frame; 50% of the
tokens are hidden at random. A hidden token is its own position at another time, so a model that
routes that token to it scores 0 there; a model that has not learnt to route predicts the mean
(the colours' variance, 1/12). With 2 tubelets the partner is visible half the time, so the
optimum is half the variance (0.042). The loss curve shows the plateau every small MAE sits on
before it copies (results/synthmotion.md: the reason VideoMAE pretraining does not get going on
SynthMotion at CPU scale).

    python bench/videomae_copy_task.py                 # 98 tokens (4 frames), about 3 min on 2 cores
    python bench/videomae_copy_task.py --frames 16     # SynthMotion's 392 tokens
"""

from __future__ import annotations

import argparse
import time

import torch

import vidrec
from vidrec.data.transforms import normalize


def colour_grid_clips(batch: int, frames: int, *, size: int, patch: int, generator) -> torch.Tensor:
    """uint8 `(B, 3, T, size, size)`: one random colour per patch, the same in every frame."""
    cells = size // patch
    colours = torch.randint(0, 256, (batch, 3, 1, cells, cells), generator=generator, dtype=torch.uint8)
    grid = colours.repeat_interleave(patch, 3).repeat_interleave(patch, 4)
    return grid.expand(batch, 3, frames, size, size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--every", type=int, default=250, help="print the mean loss of this many steps")
    a = p.parse_args()
    torch.manual_seed(0)
    model = vidrec.create_model(
        "videomae_small_synth_pretrain",
        num_frames=a.frames,
        masking="random",
        mask_ratio=0.5,
        norm_pix_loss=False,
    )
    c, prep = model.config, model.preprocessing
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(0)
    tokens = (a.frames // c.tubelet_size) * (c.image_size // c.patch_size) ** 2
    print(f"{tokens} tokens; the mean scores about {1 / 12:.4f}, the copy optimum {1 / 24:.4f}")
    start, losses = time.perf_counter(), []
    for step in range(1, a.steps + 1):
        for group in opt.param_groups:  # 100 warm-up steps, then constant: the plateau is not the schedule
            group["lr"] = a.lr * min(1.0, step / 100)
        clips = colour_grid_clips(
            a.batch_size, a.frames, size=c.image_size, patch=c.patch_size, generator=gen
        )
        loss = model(normalize(clips, prep.mean, prep.std))  # the targets undo it: pixels in [0, 1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % a.every == 0:
            took = time.perf_counter() - start
            print(f"step {step:6d}  loss {sum(losses) / len(losses):.4f}  {took:.0f} s", flush=True)
            losses = []


if __name__ == "__main__":
    main()
