"""The training engine behind `vidrec train` and `vidrec pretrain`.

One loop for supervised training, fine-tuning and VideoMAE pretraining, on one CPU or under
torchrun (DistributedDataParallel, gloo on CPU, nccl on GPU). Every optimizer step is
reproducible from (seed, epoch, step): clips are drawn per (seed, epoch, index), mixes and masks
per (seed, step, rank), and the global RNG state travels in the checkpoint, so a killed run
resumed from its last checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrec.config import RunConfig
from vidrec.data.datasets import VideoClipDataset, collate_clips
from vidrec.engine import distributed as D
from vidrec.engine.checkpoint import CheckpointManager
from vidrec.engine.evaluate import evaluate
from vidrec.engine.mix import mix_batch
from vidrec.engine.optim import build_optimizer, lr_at, set_lr
from vidrec.engine.setup import build_model, load_splits
from vidrec.errors import ConfigError, VidrecError
from vidrec.utils import atomic_write_text, resolve_device

METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.yaml"


class Stopped(VidrecError):
    """SIGTERM: a checkpoint was saved; the run resumes with --resume auto."""


class _Metrics:
    """JSONL rows (and TensorBoard scalars) written by rank 0."""

    def __init__(self, out: str, *, writer: bool, tensorboard: bool):
        self.path, self.writer, self.tb = os.path.join(out, METRICS_NAME), writer, None
        if writer and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(out, "tb"))

    def write(self, row: dict, step: int) -> None:
        if not self.writer:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _resumable_settings(cfg: RunConfig) -> dict:
    """What must not change between a run and its resumption (epochs, logging and eval may)."""
    d = cfg.to_dict()
    d["schedule"].pop("epochs")
    d["data"].pop("workers")
    d["data"].pop("val")
    d["data"].pop("test")
    for key in ("log_every", "checkpoint_every", "keep_last", "tensorboard", "device", "out"):
        d["run"].pop(key)
    d.pop("eval")
    return json.loads(json.dumps(d))  # tuples as lists, as they come back from a checkpoint


def train(cfg: RunConfig, *, pretrain: bool = False, resume: str | None = None, progress: bool = True,
          on_step=None) -> dict:
    """Train as `cfg` says; returns the final metrics. `resume`: None (refuse to overwrite an
    existing run), "auto" (newest valid checkpoint) or a checkpoint path. `on_step(step)` is
    called after each optimizer step (tests use it to stop a run)."""
    device = resolve_device(cfg.run.device)
    d = D.init_distributed(device)
    device = D.device_for(device, d)
    out = cfg.run.out
    ckpts = CheckpointManager(os.path.join(out, "checkpoints"), keep_last=cfg.run.keep_last, writer=d.main)
    if ckpts.exists() and resume is None:
        raise ConfigError(f"{out} already holds a run; pass --resume auto to continue it, or choose another run.out")
    if cfg.run.precision == "fp16" and device.type != "cuda":
        raise ConfigError("run.precision fp16 needs a GPU (use bf16 or fp32 on CPU)")
    train_records, val_records, test_records, classes = load_splits(cfg)  # bad data fails before any write
    if d.main:
        os.makedirs(out, exist_ok=True)
        atomic_write_text(os.path.join(out, CONFIG_NAME), cfg.to_yaml())
        if progress:
            tqdm.write("resolved config:\n" + cfg.to_yaml().rstrip())
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg, num_classes=None if pretrain else len(classes), pretrain=pretrain,
                        log=tqdm.write if d.main else (lambda *_: None))
    if not pretrain:
        model.set_labels(classes)
    if cfg.model.sync_bn and d.enabled:
        if device.type == "cpu":
            raise ConfigError("model.sync_bn needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
                              "set model.sync_bn=false to keep per-process batch statistics")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if d.enabled else model

    dataset = VideoClipDataset(train_records, prep=model.preprocessing, train=True, seed=cfg.run.seed)
    sampler = D.ShardedBatchSampler(len(dataset), batch_size=cfg.data.batch_size, d=d, seed=cfg.run.seed)
    accumulate = cfg.optimizer.accumulate
    steps_per_epoch = math.ceil((len(sampler)) / accumulate)
    total_steps = steps_per_epoch * cfg.schedule.epochs
    warmup_steps = round(cfg.schedule.warmup_epochs * steps_per_epoch)
    optimizer = build_optimizer(model, cfg.optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.precision == "fp16")
    ema = None
    if cfg.run.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.run.ema), use_buffers=True)

    step, epoch, batch_in_epoch = 0, 0, 0
    if resume is not None:
        found = ckpts.latest() if resume == "auto" else (ckpts.load(resume), resume)
        if found is None:
            raise ConfigError(f"--resume {resume}: no usable checkpoint in {ckpts.directory}")
        state, path = found
        if state["settings"] != _resumable_settings(cfg):
            raise ConfigError(f"{path} was made with other settings; resume with the same config or use another run.out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        _set_rng_state(state["rng"][min(d.rank, len(state["rng"]) - 1)], device)
        if d.main:
            tqdm.write(f"resuming from {path} at epoch {epoch + 1}, step {step}")

    def save(metric: float | None = None) -> None:
        rng = D.gather_objects(_rng_state(device), d)
        ckpts.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None, "step": step, "epoch": epoch,
                    "batch_in_epoch": batch_in_epoch, "rng": rng, "settings": _resumable_settings(cfg),
                    "arch": model.arch}, step=step, metric=metric)

    stop = {"flag": False}  # SIGTERM: finish the step, save, exit (handlers only in the main thread)
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True)) \
        if threading.current_thread() is threading.main_thread() else None
    metrics_log = _Metrics(out, writer=d.main, tensorboard=cfg.run.tensorboard)
    eval_model = ema.module if ema is not None else model
    summary: dict = {}
    try:
        while epoch < cfg.schedule.epochs:
            dataset.set_epoch(epoch)
            sampler.set_epoch(epoch, batch_in_epoch)
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.workers,
                                collate_fn=collate_clips, generator=torch.Generator().manual_seed(cfg.run.seed),
                                persistent_workers=False)
            net.train()
            acc = dict(loss=0.0, seen=0, correct=0, counted=0, failed=0)
            window = dict(loss=0.0, seen=0, t=time.perf_counter(), wait=0.0)
            bar = tqdm(total=len(sampler) + batch_in_epoch, initial=batch_in_epoch, disable=not (progress and d.main),
                       desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}", unit="batch")
            t_data = time.perf_counter()
            for batch in loader:
                window["wait"] += time.perf_counter() - t_data
                acc["failed"] += len(batch["failed"])
                for f in batch["failed"]:
                    tqdm.write(f"skipped broken video {f.path}: {f.reason}")
                batch_in_epoch += 1
                boundary = batch_in_epoch % accumulate == 0 or batch_in_epoch == len(sampler) + sampler.start
                if batch["video"] is not None:
                    loss, n, correct = _forward_backward(net, model, batch, cfg, device, step, d, pretrain, scaler,
                                                         accumulate, sync=boundary)
                    acc["loss"] += loss * n
                    acc["seen"] += n
                    window["loss"] += loss * n
                    window["seen"] += n
                    if correct is not None:
                        acc["correct"] += correct
                        acc["counted"] += n
                if boundary:
                    lr = lr_at(step, total=total_steps, warmup=warmup_steps, peak=cfg.optimizer.lr, s=cfg.schedule)
                    set_lr(optimizer, lr)
                    _optimizer_step(model, optimizer, scaler, cfg)
                    if ema is not None:
                        ema.update_parameters(model)
                    step += 1
                    if step % cfg.run.log_every == 0:
                        loss_sum, seen, wait = D.all_reduce_sum([window["loss"], window["seen"], window["wait"]], d, device)
                        elapsed = time.perf_counter() - window["t"]
                        row = {"step": step, "epoch": epoch + batch_in_epoch / (len(sampler) + sampler.start),
                               "loss": loss_sum / max(seen, 1), "lr": lr, "clips_per_s": seen / elapsed,
                               "data_wait_frac": wait / d.world / elapsed}
                        metrics_log.write(row, step)
                        bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}")
                        window = dict(loss=0.0, seen=0, t=time.perf_counter(), wait=0.0)
                    if on_step is not None:
                        on_step(step)
                    stopping = D.all_reduce_sum([float(stop["flag"])], d, device)[0] > 0
                    if stopping or (cfg.run.checkpoint_every and step % cfg.run.checkpoint_every == 0):
                        save()
                    if stopping:
                        raise Stopped(f"stopped by SIGTERM at step {step}: checkpoint saved in {ckpts.directory}; "
                                      f"continue with --resume auto")
                bar.update(1)
                t_data = time.perf_counter()
            bar.close()
            loss_sum, seen, correct, counted, failed = D.all_reduce_sum(
                [acc["loss"], acc["seen"], acc["correct"], acc["counted"], acc["failed"]], d, device)
            if seen == 0:
                raise VidrecError("no training video could be loaded in this epoch (all broken?)")
            epoch += 1
            batch_in_epoch = 0
            summary = {"epoch": epoch, "step": step, "train_loss": loss_sum / seen, "skipped_videos": int(failed)}
            if counted:
                summary["train_top1"] = 100.0 * correct / counted
            metric = None
            if val_records and not pretrain and cfg.eval.every and epoch % cfg.eval.every == 0:
                val = evaluate(eval_model, val_records, num_clips=1, batch_size=cfg.eval.batch_size,
                               workers=cfg.data.workers, device=device, progress=False, desc="val", dist=d)
                summary.update({f"val_{k}": val[k] for k in ("top1", "top5", "mean_class_acc")})
                metric = val["top1"]
            metrics_log.write(summary, step)
            if progress and d.main:
                tqdm.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))
            save(metric)
        if d.main:
            eval_model.save_pretrained(out)
        if test_records and not pretrain:
            test = evaluate(eval_model, test_records, num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops,
                            batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device,
                            progress=progress and d.main, desc="test", dist=d)
            summary.update({f"test_{k}": test[k] for k in ("top1", "top5", "mean_class_acc")})
            metrics_log.write({"step": step, **{k: v for k, v in summary.items() if k.startswith("test_")}}, step)
        if d.main:
            from vidrec.engine.report import plot_curves

            plot_curves(os.path.join(out, METRICS_NAME), os.path.join(out, "curves.png"))
    finally:
        metrics_log.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    D.barrier(d)
    return summary


def _forward_backward(net, model, batch, cfg: RunConfig, device, step: int, d: D.Dist, pretrain: bool, scaler,
                      accumulate: int, *, sync: bool) -> tuple[float, int, int | None]:
    """One micro-batch: loss, backward (gradients all-reduced only on the last micro-batch)."""
    x = batch["video"].to(device, non_blocking=True)
    rng = np.random.default_rng([cfg.run.seed, step, d.rank])
    context = net.no_sync() if isinstance(net, DistributedDataParallel) and not sync else contextlib.nullcontext()
    correct = None
    with context:
        with _autocast(device, cfg.run.precision):
            if pretrain:
                generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
                loss = net(x, generator=generator)
            else:
                y = batch["label"].to(device)
                x, targets, mixed = mix_batch(x, y, model.num_classes, cfg.augment, rng)
                logits = net(x)
                loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
                if not mixed:
                    correct = int((logits.argmax(-1) == y).sum())
        if not torch.isfinite(loss):
            raise VidrecError(f"loss is {loss.item()} at step {step}: lower optimizer.lr or check the data")
        scaler.scale(loss / accumulate).backward()
    return loss.item(), len(x), correct


def _optimizer_step(model, optimizer, scaler, cfg: RunConfig) -> None:
    if cfg.optimizer.grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
