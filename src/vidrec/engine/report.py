"""Pictures of a run: training curves from metrics.jsonl and a confusion matrix, as PNG files
(matplotlib, headless)."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vidrec.utils import atomic_write  # noqa: E402


def _save(fig, path: str) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def plot_curves(metrics_path: str, png: str) -> bool:
    """Loss and learning rate by step, and per-epoch accuracies; False when there is nothing."""
    if not os.path.exists(metrics_path):
        return False
    with open(metrics_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    steps = [r for r in rows if "loss" in r]
    epochs = [r for r in rows if "train_loss" in r]
    if not steps and not epochs:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if steps:
        axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps], label="loss (per log interval)")
        axes[1].plot([r["step"] for r in steps], [r["lr"] for r in steps])
    if epochs:
        axes[0].plot(
            [r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="train loss (epoch)"
        )
        for key in ("train_top1", "val_top1", "val_top5"):
            points = [(r["epoch"], r[key]) for r in epochs if key in r]
            if points:
                axes[2].plot(*zip(*points), "o-", label=key)
    axes[0].set(xlabel="step", title="loss")
    axes[0].legend()
    axes[1].set(xlabel="step", title="learning rate")
    axes[2].set(xlabel="epoch", ylabel="%", title="accuracy")
    if axes[2].lines:
        axes[2].legend()
    _save(fig, png)
    return True


def plot_confusion(matrix: list[list[int]], labels: list[str], png: str) -> None:
    """Row-normalised confusion matrix (true class by row); names shown up to 60 classes."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(labels)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, png)
