"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) for clips, with label smoothing: one
mixing coefficient per batch, the batch mixed with its reverse; CutMix pastes one box into every
frame, so motion inside the box stays intact. Randomness comes from a generator the caller seeds
per step (resumable runs draw the same mixes)."""

from __future__ import annotations

import numpy as np
import torch

from vidrec.train.config import AugmentSection


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets with `smoothing` spread evenly over all classes `(B, num_classes)`."""
    off = smoothing / num_classes
    return torch.full((len(labels), num_classes), off, device=labels.device).scatter_(
        1, labels[:, None], 1.0 - smoothing + off
    )


def mix_batch(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int, a: AugmentSection, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """`(B, C, T, H, W)`, labels -> clips, soft targets `(B, num_classes)`, whether it mixed."""
    targets = soft_targets(labels, num_classes, a.label_smoothing)
    if (a.mixup <= 0 and a.cutmix <= 0) or rng.random() >= a.mix_prob or len(x) < 2:
        return x, targets, False
    use_cutmix = a.cutmix > 0 and (a.mixup <= 0 or rng.random() < a.switch_prob)
    lam = float(rng.beta(a.cutmix, a.cutmix) if use_cutmix else rng.beta(a.mixup, a.mixup))
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = (1.0 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        x = lam * x + (1.0 - lam) * x.flip(0)
    return x, lam * targets + (1.0 - lam) * targets.flip(0), True
