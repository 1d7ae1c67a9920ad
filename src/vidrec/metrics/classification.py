"""Video-level classification metrics: top-1, top-5 and mean per-class accuracy, and the
confusion matrix, from video scores and true labels."""

from __future__ import annotations

import torch


def accuracy_metrics(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1, top-5 (or top-k for fewer classes) and mean per-class accuracy, in percent."""
    if len(labels) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_class_acc": float("nan")}
    k = min(5, num_classes)
    topk = scores.topk(k, dim=-1).indices
    correct1 = topk[:, 0] == labels
    per_class = [
        correct1[labels == c].float().mean().item() for c in range(num_classes) if (labels == c).any()
    ]
    return {
        "top1": 100.0 * correct1.float().mean().item(),
        "top5": 100.0 * (topk == labels[:, None]).any(-1).float().mean().item(),
        "mean_class_acc": 100.0 * sum(per_class) / len(per_class),
    }


def confusion_matrix(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`(num_classes, num_classes)` counts: row = true class, column = predicted class."""
    flat = labels * num_classes + scores.argmax(-1)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


__all__ = ["accuracy_metrics", "confusion_matrix"]
