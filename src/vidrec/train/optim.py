"""Optimizers and schedules as the papers use them: SGD with momentum (I3D, SlowFast) or AdamW
(VideoMAE); no weight decay on norms, biases and tokens; layer-wise lr decay for ViTs; linear
warmup then cosine (or steps), set every optimizer step."""

from __future__ import annotations

import math

import torch

from vidrec.errors import ConfigError
from vidrec.models.base import ModelBase
from vidrec.train.config import OptimizerSection, ScheduleSection

HEAD_PREFIX = "head."  # the classifier of every VideoModel (vidrec.models.base)


def param_groups(
    model: ModelBase, *, weight_decay: float, layer_decay: float | None = None, backbone_lr_scale: float = 1.0
) -> list[dict]:
    """Parameter groups: decay / no decay (1-D tensors and the model's `no_weight_decay()`), each
    split by layer with `lr_scale = layer_decay ** (num_layers + 1 - layer)` when asked, and
    everything but the classifier head scaled by `backbone_lr_scale`."""
    skip = model.no_weight_decay()
    if layer_decay is not None and model.num_layers is None:
        raise ConfigError(f"optimizer.layer_decay needs a layered model (ViT); {model.arch} is not")
    groups: dict[tuple[bool, int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name in skip
        layer = model.layer_id(name) if layer_decay is not None else 0
        head = name.startswith(HEAD_PREFIX)
        scale = layer_decay ** (model.num_layers + 1 - layer) if layer_decay is not None else 1.0
        group = groups.setdefault(
            (no_decay, layer, head),
            {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale * (1.0 if head else backbone_lr_scale),
            },
        )
        group["params"].append(p)
    return list(groups.values())


def build_optimizer(
    model: ModelBase, o: OptimizerSection, *, fine_tuning: bool = False
) -> torch.optim.Optimizer:
    """SGD or AdamW over `param_groups`, each group's lr scaled by its `lr_scale`; the backbone's
    scale is `o.backbone_lr_scale`, or 0.1 when `fine_tuning` and 1.0 otherwise when unset."""
    scale = o.backbone_lr_scale if o.backbone_lr_scale is not None else (0.1 if fine_tuning else 1.0)
    groups = param_groups(
        model, weight_decay=o.weight_decay, layer_decay=o.layer_decay, backbone_lr_scale=scale
    )
    for g in groups:
        g["lr"] = o.lr * g["lr_scale"]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)


def lr_at(step: int, *, total: int, warmup: int, peak: float, s: ScheduleSection) -> float:
    """Linear warmup from `warmup_start_lr` to `peak`, then half a cosine down to `min_lr` or, with
    `policy: steps`, `peak * lrs[i]` from epoch `steps[i]` on (`total` steps make `s.epochs`)."""
    if step < warmup:
        return s.warmup_start_lr + (peak - s.warmup_start_lr) * (step + 1) / warmup
    if s.policy == "steps":
        epoch = step * s.epochs / max(1, total)
        passed = [factor for at, factor in zip(s.steps, s.lrs) if epoch >= at]
        return peak * (passed[-1] if passed else 1.0)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return s.min_lr + (peak - s.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to `lr` times its `lr_scale`."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
