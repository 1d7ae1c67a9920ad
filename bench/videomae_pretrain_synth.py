"""VideoMAE's data-efficiency claim (seed 000) on SynthMotion: 90% tube-masked pretraining on every
training video without labels, then fine-tuning on 10% of the labels, against the same ViT from
scratch on those labels; a linear probe of each encoder; the reconstruction of a test video.

The recipe that shows it: flat backgrounds, 4 frames at stride 4 (98 tokens), per-patch normalised
targets (VideoMAE's default, `norm_pix_loss`: a flat background patch has no variance, so the loss
is on the actor's patches) and 600 epochs. The clips are decoded once into memory (3600 videos of
16x64x64 are 177 MB) so that 600 epochs take about 75 min on 2 cores instead of hours of decoding;
the models, masks and loss are vidrec's (`videomae_small_synth_pretrain`, `videomae_small_synth`).
Pretraining saves a checkpoint every 25 epochs and resumes from it.

    vidrec synth data/synthmotion_flat --train 3600 --val 240 --test 480 --flat
    python bench/videomae_pretrain_synth.py --data data/synthmotion_flat [--epochs 600] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from vidrec.data.datasets import load_csv
from vidrec.io import open_video
from vidrec.models.videomae import videomae_small_synth
from vidrec.models.videomae_pretrain import videomae_small_synth_pretrain
from vidrec.recognize.reconstruct import reconstruct_video
from vidrec.train.config import ScheduleSection
from vidrec.train.optim import lr_at, set_lr
from vidrec.utils import atomic_write, atomic_write_text

FRAMES, STRIDE, CROP, CLASSES = 4, 4, 56, 12
FT_STD = 0.25  # the fine-tuning loops' input scale (pretraining takes the model's 0.225), as measured


def load_split(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every video of a split, decoded: uint8 `(N, 3, 16, H, W)` and labels `(N,)`."""
    records, _ = load_csv(os.path.join(data, f"{split}.csv"))
    clips = []
    for r in tqdm(records, desc=f"decoding {split}", leave=False):
        with open_video(r.path) as video:
            clips.append(video.get_frames(range(len(video))))
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).contiguous()
    return x, torch.tensor([r.label for r in records])


def prep(x: torch.Tensor, *, train: bool, std: float) -> torch.Tensor:
    """uint8 clips -> the model's input: FRAMES at STRIDE, a CROP (random or central), each clip
    minus its own mean (SynthMotion's `centering: clip`), over `std`."""
    i, j = np.random.randint(0, 9, 2) if train else (4, 4)
    x = x[:, :, ::STRIDE, i : i + CROP, j : j + CROP].float() / 255
    return (x - x.mean((2, 3, 4), keepdim=True)) / std


def cosine(step: int, *, lr: float, warm: int, total: int) -> float:
    """The engine's schedule with its defaults: linear warm-up from 0, then cosine to 0."""
    return lr_at(step, total=total, warmup=warm, peak=lr, s=ScheduleSection())


def adamw(model: torch.nn.Module, lr: float, **kw) -> torch.optim.AdamW:
    """AdamW with weight decay 0.05 on matrices only."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, **kw)


def pretrain(
    x: torch.Tensor, *, work: str, epochs: int, lr: float = 1.5e-3, batch: int = 16, every: int = 25
):
    """Masked pretraining (resumable); returns the pretraining model and its seconds in all runs."""
    torch.manual_seed(0)  # the same initial weights in every run
    model = videomae_small_synth_pretrain(
        norm_pix_loss=True, mask_ratio=0.9, masking="tube", num_frames=FRAMES
    )
    opt = adamw(model, lr, betas=(0.9, 0.95), fused=True)
    std = model.preprocessing.std[0]  # 0.225, as the recorded run
    per_epoch, ckpt, epoch, before = len(x) // batch, os.path.join(work, "pretrain.ckpt"), 0, 0.0
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False)  # our own file: RNG states are numpy objects
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        epoch, before = state["epoch"], state.get("seconds", 0.0)
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["np_rng"])
    else:
        np.random.seed(0)
    bar, t0 = tqdm(total=epochs, initial=epoch, desc="pretraining (epochs)"), time.time()
    while epoch < epochs:
        order, losses = torch.randperm(len(x)), []
        for k in range(per_epoch):
            set_lr(opt, cosine(epoch * per_epoch + k, lr=lr, warm=per_epoch, total=epochs * per_epoch))
            loss = model(prep(x[order[k * batch : (k + 1) * batch]], train=True, std=std))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        epoch += 1
        if epoch % every == 0 or epoch == epochs:
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch}
            state["seconds"] = before + time.time() - t0
            state |= {"torch_rng": torch.get_rng_state(), "np_rng": np.random.get_state()}
            atomic_write(ckpt, lambda tmp, s=state: torch.save(s, tmp))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        bar.update()
    bar.close()
    return model, before + time.time() - t0


def fine_tune(x, y, test, *, seed: int, init: dict | None, epochs: int, lr: float = 1e-3, batch: int = 16):
    """The classifier from scratch (`init` None) or from the pretrained weights; test top-1."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = videomae_small_synth(num_classes=CLASSES, num_frames=FRAMES)
    if init is not None:
        model.load_state_dict(init)
    opt = adamw(model, lr)
    per_epoch = len(x) // batch
    total = epochs * per_epoch
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(len(x))
        set_lr(opt, cosine(step, lr=lr, warm=per_epoch, total=total))
        idx = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        loss = F.cross_entropy(model(prep(x[idx], train=True, std=FT_STD)), y[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return top1(model, *test)


@torch.no_grad()
def run_central(fn, x: torch.Tensor) -> torch.Tensor:
    """`fn` (a model or its `forward_features`) on central crops of `x`, 64 clips at a time."""
    return torch.cat([fn(prep(x[k : k + 64], train=False, std=FT_STD)) for k in range(0, len(x), 64)])


def top1(model, x, y) -> float:
    """Test top-1 of a classifier on central crops."""
    model.eval()
    return (run_central(model, x).argmax(1) == y).float().mean().item()


@torch.no_grad()
def linear_probe(init: dict | None, x, y, test) -> float:
    """Test top-1 of a logistic regression (L-BFGS) on the encoder's standardised pooled features."""
    torch.manual_seed(0)
    model = videomae_small_synth(num_classes=CLASSES, num_frames=FRAMES).eval()
    if init is not None:
        model.load_state_dict(init)
    feats = [run_central(model.forward_features, v) for v in (x, test[0])]
    mu, sd = feats[0].mean(0), feats[0].std(0) + 1e-6
    f_train, f_test = ((f - mu) / sd for f in feats)
    w = torch.zeros(f_train.shape[1], CLASSES, requires_grad=True)
    b = torch.zeros(CLASSES, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(f_train @ w + b, y) + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return ((f_test @ w + b).argmax(1) == test[1]).float().mean().item()


def reconstruction(model, *, data: str, work: str) -> tuple[str, float]:
    """The first test video at 90% tube masking, drawn by `vidrec reconstruct`'s code, 4x."""
    model.preprocessing = dataclasses.replace(model.preprocessing, num_frames=FRAMES, sampling_rate=STRIDE)
    model_dir = os.path.join(work, "videomae_small_synth_pretrain")
    model.save_pretrained(model_dir)
    video = load_csv(os.path.join(data, "test.csv"))[0][0].path
    png = os.path.join(work, "reconstruction.png")
    shown = reconstruct_video(model_dir, video, png, mask_ratio=0.9, max_frames=FRAMES)
    image = Image.open(png)
    image = image.resize((image.width * 4, image.height * 4), Image.NEAREST)  # 56 px frames, drawn 4x
    atomic_write(png, lambda tmp: image.save(tmp, format="PNG"))
    return png, shown["masked_mse"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="data/synthmotion_flat", help="a SynthMotion folder (vidrec synth --flat)"
    )
    ap.add_argument("--work", default="runs/videomae_pretrain_synth", help="checkpoint, model and figures")
    ap.add_argument("--epochs", type=int, default=600, help="pretraining epochs")
    ap.add_argument("--labels", type=int, default=360, help="labelled training videos for fine-tuning")
    ap.add_argument("--ft-epochs", type=int, nargs="+", default=[18, 60])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    os.makedirs(args.work, exist_ok=True)
    x, labels = load_split(args.data, "train")
    test = load_split(args.data, "test")
    model, seconds = pretrain(x, work=args.work, epochs=args.epochs)
    minutes = seconds / 60
    init = model.to_classifier(CLASSES)[0].state_dict()
    png, mse = reconstruction(model, data=args.data, work=args.work)
    xl, yl = x[: args.labels], labels[: args.labels]
    arms = {"scratch": None, f"{args.epochs} epochs of 90% tube pretraining": init}
    rows = [
        f"Pretraining: {len(x)} unlabelled videos, {args.epochs} epochs ({minutes:.0f} min this run). "
        f"Fine-tuning: the first {args.labels} labelled videos, lr 1e-3, seeds {args.seeds}; "
        f"test: {len(test[1])} videos. "
        f"Reconstruction at 90% masking: {png} (masked-patch MSE {mse:.3f}).",
        "",
        "| start | linear probe | " + " | ".join(f"fine-tuned {e} epochs" for e in args.ft_epochs) + " |",
        "|---|---|" + "---|" * len(args.ft_epochs),
    ]
    for name, weights in arms.items():
        cells = [f"{100 * linear_probe(weights, xl, yl, test):.1f}"]
        for e in args.ft_epochs:
            acc = [100 * fine_tune(xl, yl, test, seed=s, init=weights, epochs=e) for s in args.seeds]
            cells.append(f"{np.mean(acc):.1f} ± {np.std(acc):.1f} ({', '.join(f'{a:.1f}' for a in acc)})")
            print(name, e, cells[-1], flush=True)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(rows) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
