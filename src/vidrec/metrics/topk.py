"""The top-k list every prediction reports, and how the CLI prints it."""

from __future__ import annotations

import torch

from vidrec.models.base import ModelBase


def top_predictions(probs: torch.Tensor, model: ModelBase, k: int) -> list[dict]:
    """`[{"label", "score"}, ...]`: the `k` most probable classes of `probs` (classes,), best first."""
    labels = model.class_names
    top = probs.topk(min(k, probs.numel()))
    return [{"label": labels[i], "score": round(float(s), 6)} for s, i in zip(top.values, top.indices)]


def format_predictions(predictions: list[dict]) -> str:
    """`label 0.982, label 0.003, ...`: how the CLI and the demo print a top-k."""
    return ", ".join(f"{p['label']} {p['score']:.3f}" for p in predictions)
