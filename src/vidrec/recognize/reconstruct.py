"""`vidrec reconstruct`: one clip through a VideoMAE pretraining model, drawn as three rows of
frames (original, what the encoder saw, the reconstruction) so a user can see what pretraining
learned. With `norm_pix_loss` the decoder predicts per-patch normalised pixels; they are shown
with each patch's true mean and spread restored, as VideoMAE's own visualisation does, and in a
fourth row as the decoder gave them (grey where nothing was predicted), since the true statistics
alone already draw where the actor is."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from vidrec.data.datasets import Failed, VideoClipDataset, VideoRecord
from vidrec.data.transforms import remove_own_mean
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import PretrainingModel
from vidrec.models.loader import load_model
from vidrec.models.videomae_pretrain import patchify
from vidrec.utils import atomic_write


@torch.no_grad()
def reconstruct_video(
    model_source: str,
    video: str,
    png: str,
    *,
    mask_ratio: float | None = None,
    seed: int = 0,
    max_frames: int = 8,
    device: str | torch.device = "cpu",
) -> dict:
    """Draw `video`'s first clip, what the encoder saw and the reconstruction into `png`; returns
    the settings and the masked-token MSE."""
    model = load_model(model_source, device=device)
    if not isinstance(model, PretrainingModel):
        raise ConfigError(f"{model_source} is a {model.arch}, not a VideoMAE pretraining model")
    c = model.config
    if mask_ratio is not None:
        model.config = c = dataclasses.replace(c, mask_ratio=mask_ratio)
    p = model.preprocessing
    # Read once with dataset centering: that clip is the picture (a clip- or frame-centred model
    # sees every clip in the dataset's average colour), and the model's input follows from it.
    item = VideoClipDataset(
        [VideoRecord(video, -1)], prep=dataclasses.replace(p, centering="dataset"), train=False
    )[0]
    if isinstance(item, Failed):
        raise VidrecError(f"{video}: {item.reason}")
    seen = item["video"][:1].to(device)  # (1, C, T, H, W), normalised with the dataset mean
    x = seen if p.centering == "dataset" else remove_own_mean(seen, p.centering)
    mask, _ = model.draw_masks(x, torch.Generator().manual_seed(seed))
    pred, predict = model.reconstruct(x, mask)  # (1, N_pred, P*C); the decoder predicts every hidden token
    mean = torch.tensor(p.mean, device=x.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(p.std, device=x.device).view(1, -1, 1, 1, 1)
    pixels = x * std + mean  # (1, C, T, H, W): what the targets are made of
    patches = patchify(pixels, c.tubelet_size, c.patch_size)  # (1, N, P, C)
    shown = patchify(seen * std + mean, c.tubelet_size, c.patch_size)  # as a person sees the clip
    guess = pred.reshape(1, -1, patches.shape[2], patches.shape[3])
    loss = torch.mean((guess - model.targets(x)[predict].reshape(guess.shape)) ** 2).item()
    raw = None
    if c.norm_pix_loss:
        # Un-normalising takes each hidden patch's true mean and spread, which alone draws where the
        # actor is; the decoder's own output (grey = 0, +-2.5 std to black/white) shows what it knows.
        raw = torch.full_like(shown, 0.5)
        raw[predict] = (
            (0.5 + guess.reshape(-1, *guess.shape[2:]) / 5)
            .mean(-1, keepdim=True)
            .expand(-1, -1, shown.shape[-1])
        )
        truth = patches[predict].reshape(guess.shape)
        guess = guess * truth.var(dim=-2, unbiased=True, keepdim=True).sqrt() + truth.mean(
            dim=-2, keepdim=True
        )
    recon, masked = shown.clone(), shown.clone()
    # The same colour shift as the original row (none under dataset centering).
    recon[predict] = guess.reshape(-1, *guess.shape[2:]) + (shown - patches)[predict]
    masked[mask] = 0.5  # hidden tubelets in grey
    grid = model.encoder.grid(x)

    def frames(tokens: torch.Tensor) -> np.ndarray:
        video_ = rearrange(
            tokens,
            "b (t h w) (p0 p1 p2) c -> b (t p0) (h p1) (w p2) c",
            t=grid[0],
            h=grid[1],
            w=grid[2],
            p0=c.tubelet_size,
            p1=c.patch_size,
            p2=c.patch_size,
        )[0]
        step = max(1, video_.shape[0] // max_frames)
        chosen = video_[::step][:max_frames].clamp(0, 1)
        return (
            (torch.cat(list(chosen), dim=1).cpu().numpy() * 255).round().astype(np.uint8)
        )  # (H, frames*W, C)

    rows = [frames(shown), frames(masked), frames(recon)] + ([frames(raw)] if raw is not None else [])
    image = Image.fromarray(np.concatenate(rows, axis=0))
    atomic_write(png, lambda tmp: image.save(tmp, format="PNG"))
    return {
        "out": png,
        "mask_ratio": c.mask_ratio,
        "hidden_tokens": int(mask.sum()),
        "masked_mse": loss,
        "rows": ["original", "masked", "reconstruction"] + (["decoder output"] if raw is not None else []),
    }
