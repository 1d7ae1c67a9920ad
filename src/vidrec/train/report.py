"""The record of a run: its metrics.jsonl (and TensorBoard scalars) as it trains, and pictures of
it, training curves and a confusion matrix, as PNG files (matplotlib, headless)."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vidrec.utils import atomic_write, atomic_write_text  # noqa: E402

METRICS_NAME = "metrics.jsonl"
TEST_REPORT_NAME = "test_report.json"  # the final multi-view test: metrics, per class, confusion matrix


class MetricsLog:
    """JSONL rows (and TensorBoard scalars) written by rank 0."""

    def __init__(self, out: str, *, writer: bool, tensorboard: bool):
        self.path, self.writer = os.path.join(out, METRICS_NAME), writer
        self.tb_dir = os.path.join(out, "tb") if writer and tensorboard else None
        self.tb, self.purge_step = None, None

    def write(self, row: dict, step: int) -> None:
        """Append `row` (rank 0 only), and its numbers to TensorBoard at `step` when asked for."""
        if not self.writer:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb_dir is not None:
            if self.tb is None:  # opened on the first row, once keep_until has said what to purge
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(self.tb_dir, purge_step=self.purge_step)
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, step)

    def keep_until(self, step: int) -> None:
        """Drop the rows logged after `step`: a run resumed there logs them again. TensorBoard's
        event files are append-only; its `purge_step` hides their events from `step + 1` on."""
        self.purge_step = step + 1
        if not self.writer or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            rows = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(rows))

    def close(self) -> None:
        """Close the TensorBoard writer, if one was opened."""
        if self.tb is not None:
            self.tb.close()


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
