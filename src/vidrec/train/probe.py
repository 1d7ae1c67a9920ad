"""Linear probe, then fine-tune (LP-FT, Kumar et al., ICLR 2022): before fine-tuning pretrained
weights on new labels, the new classifier is fitted as a multinomial logistic regression on the
frozen features of the training videos (one centre view each, the test preprocessing), so that
fine-tuning starts from a head that already separates the classes instead of a random one, which
on a few dozen videos distorts the pretrained features while the head is still wrong.

The fit is scikit-learn's `LogisticRegression()` with its defaults (L2, C = 1, no feature scaling):
`C * sum(cross-entropy) + ||W||^2 / 2`, minimised by L-BFGS in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vidrec.data.datasets import VideoRecord, collate_clips
from vidrec.recognize.batch_work import model_features
from vidrec.recognize.evaluate import eval_dataset, per_view


@torch.no_grad()
def frozen_features(
    model: nn.Module, records: list[VideoRecord], *, batch_size: int, workers: int, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), labels (N,)) of the videos that load: the vector the classifier reads."""
    was_training = model.training
    model.eval()
    loader = DataLoader(
        eval_dataset(model, records), batch_size=batch_size, num_workers=workers, collate_fn=collate_clips
    )
    feats, labels = [], []
    for batch in loader:
        if batch["video"] is None:
            continue
        views = batch["video"].to(device)
        feats.append(per_view(lambda clip: model_features(model, clip), views).mean(1).cpu())
        labels += [records[i].label for i in batch["index"].tolist()]
    model.train(was_training)
    return torch.cat(feats).double(), torch.tensor(labels, dtype=torch.long)


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, c: float = 1.0, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression with scikit-learn's objective and defaults: weight (K, D)
    and bias (K,) minimising `c * sum(CE) + ||weight||^2 / 2` (the bias is not penalised)."""
    x = x.double()
    w = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def objective():
        opt.zero_grad()
        loss = c * F.cross_entropy(x @ w.T + b, y, reduction="sum") + 0.5 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(objective)
    return w.detach(), b.detach()


def probe_head(
    model: nn.Module, records: list[VideoRecord], *, batch_size: int, workers: int, device
) -> float:
    """Fit `model.head` (a linear layer or a 1x1x1 convolution) as a logistic regression on the
    frozen features of `records`; returns the probe's accuracy on them (%)."""
    x, y = frozen_features(model, records, batch_size=batch_size, workers=workers, device=device)
    weight, bias = fit_logistic(x, y, model.num_classes)
    head = model.head
    with torch.no_grad():
        head.weight.copy_(weight.view_as(head.weight).to(head.weight))
        head.bias.copy_(bias.to(head.bias))
    return 100.0 * float(((x @ weight.T + bias).argmax(1) == y).double().mean())


__all__ = ["fit_logistic", "frozen_features", "probe_head"]
