"""The training engine behind `vidrec train` and `vidrec pretrain`.

One loop for every task (`vidrec.train.tasks`: classification, AVA action detection, VideoMAE
pretraining; fine-tuning is any of them from other weights), on one CPU or under
torchrun (DistributedDataParallel, or fully sharded with `run.strategy: fsdp`; gloo on CPU, nccl
on GPU). Every optimizer step is
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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

import vidrec.distributed as D
from vidrec.data.datasets import VideoClipDataset
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import config_dict
from vidrec.models.registry import create_model
from vidrec.train.checkpoint import (
    CheckpointManager,
    changed_settings,
    resumable_settings,
    rng_state,
    set_rng_state,
)
from vidrec.train.config import RunConfig
from vidrec.train.optim import build_optimizer, lr_at, set_lr
from vidrec.train.report import METRICS_NAME, MetricsLog, plot_curves
from vidrec.train.setup import build_model, keep_norms_in_eval
from vidrec.train.tasks import Task, task_for
from vidrec.utils import atomic_write_text, resolve_device

CONFIG_NAME = "config.yaml"


class Stopped(VidrecError):
    """SIGTERM: a checkpoint was saved; the run resumes with --resume auto."""


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@dataclass
class Position:
    """Where a run is; saved in every checkpoint, so a resumed run continues exactly there."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs done
    batch_in_epoch: int = 0  # batches of the current epoch done (a mid-epoch checkpoint resumes inside it)


@dataclass
class _Run:
    """Everything one training run holds while it goes."""

    cfg: RunConfig
    task: Task  # what is trained: its data, loss, validation and test
    d: D.Dist
    device: torch.device
    model: nn.Module  # the vidrec model (what is saved)
    net: nn.Module  # what runs forward: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    dataset: VideoClipDataset
    sampler: D.ShardedBatchSampler
    checkpoints: CheckpointManager
    metrics: MetricsLog
    total_steps: int
    warmup_steps: int
    progress: bool
    on_step: Callable[[int], None] | None = None
    new_head: bool = False  # the classifier was not loaded with the weights (fine-tuning on new labels)
    restored: bool = False  # resumed from a checkpoint
    pos: Position = field(default_factory=Position)
    stop_requested: bool = False  # SIGTERM: finish the step, save, exit
    # Wall time of the run across resumptions: what earlier sessions spent (None: a checkpoint from
    # before vidrec counted it) and when this one started.
    seconds_before: float | None = 0.0
    started: float = field(default_factory=time.perf_counter)
    unsharded: tuple[int, nn.Module] | None = None  # (step, whole copy) of a sharded model

    @property
    def fsdp(self) -> bool:
        """run.strategy fsdp: checkpoints through the whole-state API (vidrec.distributed)."""
        return self.cfg.run.strategy == "fsdp"

    @property
    def sharded(self) -> bool:
        """The model's parameters are sharded over several processes (FSDP under torchrun)."""
        return self.fsdp and self.d.enabled

    def seconds(self) -> float | None:
        """Wall time spent on this run so far, every session of it (None where unknown)."""
        if self.seconds_before is None:
            return None
        return self.seconds_before + time.perf_counter() - self.started

    @property
    def eval_model(self) -> nn.Module:
        """What is validated, tested and saved: the EMA, the model, or a whole copy of a sharded
        model (each process scores its own videos with it; a collective, on every rank)."""
        if self.ema is not None:
            return self.ema.module
        if not self.sharded:
            return self.model
        if self.unsharded is None or self.unsharded[0] != self.pos.step:
            model = self.model
            whole = create_model(model.arch, **config_dict(model.config))
            whole.preprocessing = model.preprocessing
            whole.set_labels(model.labels)
            whole.load_state_dict(D.model_state(model, fsdp=True))
            self.unsharded = (self.pos.step, whole.to(self.device))
        return self.unsharded[1]

    def log(self, text: str) -> None:
        if self.progress and self.d.main:
            tqdm.write(text)


def train(
    cfg: RunConfig,
    *,
    pretrain: bool = False,
    resume: str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train as `cfg` says; returns the final metrics. `resume`: None (refuse to overwrite an
    existing run), "auto" (newest valid checkpoint) or a checkpoint path. `on_step(step)` is
    called after each optimizer step (tests use it to stop a run)."""
    run = _set_up(cfg, pretrain=pretrain, resume=resume, progress=progress, on_step=on_step)
    if resume is not None:
        _restore(run, resume)
    if not run.restored and run.new_head and cfg.head_init == "probe":
        _probe(run)
    previous = (
        signal.signal(signal.SIGTERM, lambda *_: setattr(run, "stop_requested", True))
        if threading.current_thread() is threading.main_thread()
        else None
    )  # handlers: main thread only
    summary: dict = {}
    try:
        while run.pos.epoch < cfg.schedule.epochs:
            summary = _end_epoch(run, _train_epoch(run))
        summary = _finish(run, summary)
        summary["train_seconds"] = run.seconds()
    finally:
        run.metrics.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    D.barrier(run.d)
    return summary


def _set_up(cfg: RunConfig, *, pretrain: bool, resume: str | None, progress: bool, on_step) -> _Run:
    """Devices, data, model, optimizer; refuses to start over an existing run unless resuming.
    Bad data fails here, before anything is written."""
    device = resolve_device(cfg.run.device)
    d = D.init_distributed(device)
    device = D.device_for(device, d)
    out = cfg.run.out
    checkpoints = CheckpointManager(
        os.path.join(out, "checkpoints"), keep_last=cfg.run.keep_last, writer=d.main
    )
    if checkpoints.exists() and resume is None:
        raise ConfigError(
            f"{out} already holds a run; pass --resume auto to continue it, or choose another run.out"
        )
    if resume not in (None, "auto") and not os.path.isfile(resume):
        raise ConfigError(
            f"--resume {resume}: no such checkpoint file (use --resume auto for the newest in "
            f"{checkpoints.directory})"
        )
    if cfg.run.precision == "fp16" and device.type != "cuda":
        raise ConfigError("run.precision fp16 needs a GPU (use bf16 or fp32 on CPU)")
    log = tqdm.write if d.main else (lambda *_: None)
    task = task_for(cfg, pretrain=pretrain)
    task.load(cfg, log)
    if d.main:
        os.makedirs(out, exist_ok=True)
        atomic_write_text(os.path.join(out, CONFIG_NAME), cfg.to_yaml())
        if progress:
            tqdm.write("resolved config:\n" + cfg.to_yaml().rstrip())
    torch.manual_seed(cfg.run.seed)
    model, new_head = build_model(
        cfg,
        num_classes=None if task.classes is None else len(task.classes),
        pretrain=pretrain,
        log=log,
    )
    task.check_model(model, cfg, log)
    if task.classes is not None:
        model.set_labels(task.classes)
    if cfg.model.sync_bn and d.enabled:
        if device.type == "cpu":
            raise ConfigError(
                "model.sync_bn needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
                "set model.sync_bn=false to keep per-process batch statistics"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    sharded = d.enabled and cfg.run.strategy == "fsdp"
    if sharded:
        D.shard_model(model, model.shard_units())
        net = model
    elif d.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        net = model
    dataset = task.dataset(cfg, model)
    sampler = D.ShardedBatchSampler(len(dataset), batch_size=cfg.data.batch_size, d=d, seed=cfg.run.seed)
    steps_per_epoch = math.ceil(len(sampler) / cfg.optimizer.accumulate)
    ema = None
    if cfg.run.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.run.ema), use_buffers=True)
    return _Run(
        cfg=cfg,
        task=task,
        d=d,
        device=device,
        model=model,
        net=net,
        optimizer=build_optimizer(model, cfg.optimizer, fine_tuning=cfg.fine_tuning),
        scaler=torch.amp.GradScaler(device.type, enabled=cfg.run.precision == "fp16"),
        ema=ema,
        dataset=dataset,
        sampler=sampler,
        checkpoints=checkpoints,
        metrics=MetricsLog(out, writer=d.main, tensorboard=cfg.run.tensorboard),
        total_steps=steps_per_epoch * cfg.schedule.epochs,
        warmup_steps=round(cfg.schedule.warmup_epochs * steps_per_epoch),
        progress=progress,
        on_step=on_step,
        new_head=new_head,
    )


def _restore(run: _Run, resume: str) -> None:
    """Model, optimizer, scaler, EMA, position and RNG state from a checkpoint (the newest valid one
    for "auto"); the run's settings must be the checkpoint's. "auto" on a run with no checkpoint yet
    starts it, so one command both launches a run and continues it after a crash."""
    if resume == "auto":
        if not run.checkpoints.exists():
            tqdm.write(f"--resume auto: no checkpoint in {run.checkpoints.directory} yet; starting the run")
            run.metrics.keep_until(0)
            return
        found = run.checkpoints.latest()
    else:
        try:
            found = run.checkpoints.load(resume), resume
        except ValueError as e:
            raise ConfigError(f"--resume {resume}: {e}") from None
    if found is None:
        raise ConfigError(f"--resume {resume}: no usable checkpoint in {run.checkpoints.directory}")
    state, path = found
    changed = changed_settings(state["settings"], run.cfg)
    if changed:
        raise ConfigError(
            f"{path} was made with other settings ({', '.join(changed)} differ); "
            "resume with the same config or use another run.out"
        )
    D.load_model_state(run.model, state["model"], run.fsdp)
    D.load_optimizer_state(run.model, run.optimizer, state["optimizer"], run.fsdp)
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    run.pos = Position(state["step"], state["epoch"], state["batch_in_epoch"])
    run.restored = True
    run.metrics.keep_until(run.pos.step)
    run.seconds_before = state.get("seconds")
    set_rng_state(state["rng"][min(run.d.rank, len(state["rng"]) - 1)], run.device)
    if run.d.main:
        tqdm.write(f"resuming from {path} at epoch {run.pos.epoch + 1}, step {run.pos.step}")


def _save(run: _Run, metric: float | None = None) -> None:
    rng = D.gather_objects(rng_state(run.device), run.d)
    run.checkpoints.save(
        {
            "model": D.model_state(run.model, run.fsdp),
            "optimizer": D.optimizer_state(run.model, run.optimizer, run.fsdp),
            "scaler": run.scaler.state_dict(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "step": run.pos.step,
            "epoch": run.pos.epoch,
            "batch_in_epoch": run.pos.batch_in_epoch,
            "rng": rng,
            "settings": resumable_settings(run.cfg),
            "arch": run.model.arch,
            "seconds": run.seconds(),
        },
        step=run.pos.step,
        metric=metric,
    )


def _train_epoch(run: _Run) -> dict:
    """One epoch (or what is left of it): returns the sums its end-of-epoch summary is made of."""
    cfg, pos, d = run.cfg, run.pos, run.d
    run.dataset.set_epoch(pos.epoch)
    run.sampler.set_epoch(pos.epoch, pos.batch_in_epoch)
    batches = len(run.sampler) + run.sampler.start
    loader = DataLoader(
        run.dataset,
        batch_sampler=run.sampler,
        num_workers=cfg.data.workers,
        collate_fn=run.task.collate,
        generator=torch.Generator().manual_seed(cfg.run.seed),
        persistent_workers=False,
    )
    run.net.train()
    if cfg.freeze != "none":
        keep_norms_in_eval(run.model)
    acc = dict(loss=0.0, seen=0, correct=0, counted=0, failed=0)
    window = dict(loss=0.0, seen=0, t=time.perf_counter(), wait=0.0)  # since the last metrics row
    bar = tqdm(
        total=batches,
        initial=pos.batch_in_epoch,
        disable=not (run.progress and d.main),
        desc=f"epoch {pos.epoch + 1}/{cfg.schedule.epochs}",
        unit="batch",
    )
    t_data = time.perf_counter()
    for batch in loader:
        window["wait"] += time.perf_counter() - t_data
        acc["failed"] += len(batch["failed"])
        for f in batch["failed"]:
            tqdm.write(f"skipped broken video {f.path}: {f.reason}")
        pos.batch_in_epoch += 1
        boundary = pos.batch_in_epoch % cfg.optimizer.accumulate == 0 or pos.batch_in_epoch == batches
        if batch["video"] is not None:
            loss, n, correct = _forward_backward(run, batch, sync=boundary)
            for sums in (acc, window):
                sums["loss"] += loss * n
                sums["seen"] += n
            if correct is not None:
                acc["correct"] += correct
                acc["counted"] += n
        if boundary:
            lr = lr_at(
                pos.step,
                total=run.total_steps,
                warmup=run.warmup_steps,
                peak=cfg.optimizer.lr,
                s=cfg.schedule,
            )
            set_lr(run.optimizer, lr)
            _optimizer_step(run.model, run.optimizer, run.scaler, cfg)
            if run.ema is not None:
                run.ema.update_parameters(run.model)
            pos.step += 1
            if pos.step % cfg.run.log_every == 0:
                loss_sum, seen, wait = D.all_reduce_sum(
                    [window["loss"], window["seen"], window["wait"]], d, run.device
                )
                elapsed = time.perf_counter() - window["t"]
                row = {
                    "step": pos.step,
                    "epoch": pos.epoch + pos.batch_in_epoch / batches,
                    "loss": loss_sum / max(seen, 1),
                    "lr": lr,
                    "clips_per_s": seen / elapsed,
                    "data_wait_frac": wait / d.world / elapsed,
                }
                run.metrics.write(row, pos.step)
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.2e}")
                window = dict(loss=0.0, seen=0, t=time.perf_counter(), wait=0.0)
            if run.on_step is not None:
                run.on_step(pos.step)
            stopping = D.all_reduce_sum([float(run.stop_requested)], d, run.device)[0] > 0
            if stopping or (cfg.run.checkpoint_every and pos.step % cfg.run.checkpoint_every == 0):
                _save(run)
            if stopping:
                raise Stopped(
                    f"stopped by SIGTERM at step {pos.step}: checkpoint saved in "
                    f"{run.checkpoints.directory}; continue with --resume auto"
                )
        bar.update(1)
        t_data = time.perf_counter()
    bar.close()
    return acc


def _end_epoch(run: _Run, acc: dict) -> dict:
    """Reduce the epoch's sums across ranks, validate, log, checkpoint (best by val top-1)."""
    loss_sum, seen, correct, counted, failed = D.all_reduce_sum(
        [acc["loss"], acc["seen"], acc["correct"], acc["counted"], acc["failed"]], run.d, run.device
    )
    if seen == 0:
        raise VidrecError("no training video could be loaded in this epoch (all broken?)")
    run.pos.epoch += 1
    run.pos.batch_in_epoch = 0
    summary = {
        "epoch": run.pos.epoch,
        "step": run.pos.step,
        "train_loss": loss_sum / seen,
        "skipped_videos": int(failed),
    }
    if counted:
        summary["train_top1"] = 100.0 * correct / counted
    metric = None
    every = run.cfg.eval.every
    if every and run.pos.epoch % every == 0:
        val, metric = run.task.validate(run.eval_model, run.cfg, device=run.device, dist=run.d)
        summary.update(val)
    _record(run, summary, run.pos.step)
    _save(run, metric)
    return summary


def _record(run: _Run, summary: dict, step: int) -> None:
    """An epoch's summary (epoch 0: the probe) into metrics.jsonl, and printed."""
    run.metrics.write(summary, step)
    run.log(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))


def _probe(run: _Run) -> None:
    """Fit the new classifier on the frozen features before the first step (model.head_init
    probe); with keep_best, validate it and checkpoint it as the first candidate."""
    t0 = time.perf_counter()
    accuracy = run.task.init_head(run.model, run.cfg, device=run.device)
    if run.ema is not None:  # the average starts from the probed weights too
        run.ema.module.load_state_dict(run.model.state_dict())
    summary = {"epoch": 0, "step": 0, "probe_train_top1": accuracy}
    seconds = time.perf_counter() - t0
    run.log(f"linear probe on the frozen features: train top-1 {accuracy:.1f}% ({seconds:.0f} s)")
    metric = None
    if run.cfg.keep_best:
        val, metric = run.task.validate(run.eval_model, run.cfg, device=run.device, dist=run.d)
        summary.update(val)
    _record(run, summary, 0)
    if metric is not None:
        _save(run, metric)


def _keep_best(run: _Run) -> None:
    """With keep_best, the weights of the checkpoint with the best validation metric."""
    D.barrier(run.d)
    best = run.checkpoints.best()
    if best is None:
        return
    state, entry = best
    if entry["step"] != run.pos.step:
        D.load_model_state(run.model, state["model"], run.fsdp)
        run.unsharded = None
        if run.ema is not None:
            run.ema.load_state_dict(state["ema"])
        run.log(
            f"keeping the best checkpoint on val (run.keep_best): step {entry['step']}, "
            f"epoch {entry['epoch']}, val {entry['metric']:.2f}"
        )


def _finish(run: _Run, summary: dict) -> dict:
    """Save the final model (the best on val with keep_best); run the multi-view test (its report
    `test_report.json` and `confusion.png` beside the model, as `vidrec eval` writes them); draw the
    curves."""
    cfg, out = run.cfg, run.cfg.run.out
    if cfg.keep_best:
        _keep_best(run)
    model = run.eval_model
    if run.d.main:
        model.save_pretrained(out)
    test = run.task.test(model, cfg, out, device=run.device, dist=run.d, progress=run.progress and run.d.main)
    if test:
        summary = {**summary, **test}
        run.metrics.write({"step": run.pos.step, **test}, run.pos.step)
    if run.d.main:
        plot_curves(os.path.join(out, METRICS_NAME), os.path.join(out, "curves.png"))
    return summary


def _forward_backward(run: _Run, batch: dict, *, sync: bool) -> tuple[float, int, int | None]:
    """One micro-batch: loss, backward (gradients all-reduced only on the last micro-batch)."""
    cfg, net, model, device, step = run.cfg, run.net, run.model, run.device, run.pos.step
    scaler, accumulate = run.scaler, cfg.optimizer.accumulate
    x = batch["video"].to(device, non_blocking=True)
    rng = np.random.default_rng([cfg.run.seed, step, run.d.rank])
    if run.sharded:  # FSDP reduce-scatters the gradients of the last micro-batch only
        net.set_requires_gradient_sync(sync)
    context = (
        net.no_sync() if isinstance(net, DistributedDataParallel) and not sync else contextlib.nullcontext()
    )
    with context:
        with _autocast(device, cfg.run.precision):
            loss, correct = run.task.loss(net, model, batch, x, cfg, rng)
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
