"""A simple, honest supervised loop: AdamW, cosine schedule with warmup, progress bar, a
checkpoint each epoch (resumed automatically), metrics to JSONL, `save_pretrained` at the end."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrec.data.datasets import VideoClipDataset, VideoRecord, collate_clips
from vidrec.engine.evaluate import evaluate
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import VideoModel
from vidrec.utils import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainSettings:
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3  # peak learning rate after warmup
    weight_decay: float = 0.05  # not applied to norms and biases
    warmup_epochs: float = 1.0  # linear warmup from 0, then cosine to 0
    grad_clip: float | None = 1.0  # max global grad norm (None: off)
    label_smoothing: float = 0.0
    workers: int = 2  # DataLoader worker processes
    seed: int = 0
    eval_clips: int = 1  # views per validation video (temporal clips)
    log_every: int = 10  # steps between progress-bar updates of the loss

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def param_groups(model: VideoModel, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norm weights (1-D) and the model's own exclusions."""
    skip = model.no_weight_decay()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _save_checkpoint(path: str, **state) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _append_jsonl(path: str, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def train(model: VideoModel, train_records: list[VideoRecord], *, classes: list[str], out: str,
          settings: TrainSettings = TrainSettings(), val_records: list[VideoRecord] | None = None,
          device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """Train `model` and save it to `out`; returns the last epoch's metrics. Resumes from
    `out/checkpoint.pt` when it exists (same model and settings)."""
    if model.num_classes != len(classes):
        raise ConfigError(f"model has {model.num_classes} outputs but the data has {len(classes)} classes")
    if not train_records:
        raise ConfigError("no training videos")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(settings.seed)
    model.set_labels(classes)
    model.to(device)
    dataset = VideoClipDataset(train_records, prep=model.preprocessing, train=True, seed=settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, drop_last=len(dataset) > settings.batch_size,
                        num_workers=settings.workers, collate_fn=collate_clips,
                        generator=torch.Generator().manual_seed(settings.seed))
    steps_per_epoch = len(loader)
    optimizer = torch.optim.AdamW(param_groups(model, settings.weight_decay), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(
        settings.epochs * steps_per_epoch, round(settings.warmup_epochs * steps_per_epoch)))
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    start_epoch = _maybe_resume(os.path.join(out, CHECKPOINT_NAME), model, optimizer, scheduler, settings, loader)
    metrics: dict = {}
    for epoch in range(start_epoch, settings.epochs):
        dataset.set_epoch(epoch)
        model.train()
        seen = correct = 0
        loss_sum, failed, t0, wait = 0.0, [], time.perf_counter(), 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not progress)
        t_data = time.perf_counter()
        for step, batch in enumerate(bar):
            wait += time.perf_counter() - t_data
            failed += batch["failed"]
            if batch["video"] is not None:
                x, y = batch["video"].to(device), batch["label"].to(device)
                logits = model(x)
                loss = criterion(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(-1) == y).sum().item()
                seen += len(y)
                if step % settings.log_every == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            scheduler.step()  # by step, also for all-broken batches, so the schedule stays on time
            t_data = time.perf_counter()
        elapsed = time.perf_counter() - t0
        metrics = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_top1": 100.0 * correct / max(seen, 1),
                   "lr": scheduler.get_last_lr()[0], "clips_per_s": seen / elapsed, "data_wait_s": wait,
                   "epoch_time_s": elapsed, "skipped_videos": len(failed)}
        if failed:
            listed = "; ".join(f"{f.path}: {f.reason}" for f in failed[:5])
            tqdm.write(f"epoch {epoch + 1}: skipped {len(failed)} broken video(s): {listed}")
        if seen == 0:
            raise VidrecError("no training video could be loaded in this epoch (all broken?)")
        if val_records:
            val = evaluate(model, val_records, num_clips=settings.eval_clips, batch_size=settings.batch_size,
                           workers=settings.workers, device=device, progress=progress, desc="val")
            metrics.update({f"val_{k}": v for k, v in val.items() if k in ("top1", "top5", "mean_class_acc")})
        _append_jsonl(os.path.join(out, METRICS_NAME), metrics)
        _save_checkpoint(os.path.join(out, CHECKPOINT_NAME), model=model.state_dict(), optimizer=optimizer.state_dict(),
                         scheduler=scheduler.state_dict(), epoch=epoch + 1, settings=asdict(settings),
                         arch=model.arch)
        if progress:
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in metrics.items()}
            tqdm.write(json.dumps(shown))
    model.save_pretrained(out)
    return metrics


def _maybe_resume(path: str, model, optimizer, scheduler, settings: TrainSettings, loader) -> int:
    if not os.path.exists(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("arch") != model.arch:
        raise ConfigError(f"{path} is a checkpoint of {state.get('arch')}, not {model.arch}; use another --out")
    saved = dict(state.get("settings", {}))
    for key in ("epochs", "workers", "log_every", "eval_clips"):  # may change between runs
        saved.pop(key, None)
    current = {k: v for k, v in asdict(settings).items() if k in saved}
    if saved != current:
        raise ConfigError(f"{path} was trained with other settings {saved}; use another --out to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    tqdm.write(f"resuming from {path} after epoch {state['epoch']}")
    return int(state["epoch"])
