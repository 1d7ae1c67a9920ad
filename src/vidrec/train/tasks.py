"""One `Task` per training mode, so the loop (`vidrec.train.loop`) never asks which mode it runs
(as Ultralytics' task map gives each task its trainer and validator):

    ClassifyTask    labelled videos -> clips; soft-target cross-entropy (mixup/cutmix); top-1
                    on val; the multi-view test with its report and confusion matrix
    AvaTask         AVA-style keyframes and boxes; per-box sigmoid loss; frame-mAP on val and test
    PretrainTask    unlabelled videos -> clips; the model's own masked-reconstruction loss
    SpotTask        events in time on a frozen model's features (cached once); windows of
                    per-step targets; average-mAP (SoccerNet's) on val and test

Each says what data it trains on (`load`), which model fits it (`check_model`), its dataset and
collate function, its loss on a batch, and how it validates and tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.data.datasets import VideoClipDataset, collate_clips
from vidrec.data.mirror import describe_mirror, mirror_labels
from vidrec.distributed import Dist
from vidrec.errors import ConfigError
from vidrec.models.base import DetectionModel, PretrainingModel, SpottingModel
from vidrec.recognize.evaluate import evaluate
from vidrec.train.ava import (
    DetectionData,
    collate_keyframes,
    detection_loss,
    evaluate_detection,
    keyframe_dataset,
    load_detection_data,
)
from vidrec.train.config import RunConfig
from vidrec.train.distill import Teacher
from vidrec.train.mix import mix_batch
from vidrec.train.probe import probe_head
from vidrec.train.report import TEST_REPORT_NAME, plot_confusion
from vidrec.train.setup import fit_clip_length, load_splits
from vidrec.train.spotting import (
    SpotWindows,
    collate_windows,
    ensure_features,
    load_spot_splits,
    reads_causal_features,
    score_split,
    spot_loss,
    spot_split,
    write_test_report,
)
from vidrec.utils import atomic_write_text, resolve_device


class Task:
    """What a training mode gives the loop. `classes` names the outputs (None: pretraining)."""

    name = ""
    classes: list[str] | None = None

    def load(self, cfg: RunConfig, log: Callable[[str], None]) -> None:
        """Read the run's data (bad data fails here, before anything is written)."""
        raise NotImplementedError

    def check_model(self, model: nn.Module, cfg: RunConfig, log: Callable[[str], None]) -> None:
        """Refuse a model that cannot do this task; fit it to the data where the recipe says."""

    def dataset(self, cfg: RunConfig, model: nn.Module):
        """The training dataset (items with "video", and what `loss` reads)."""
        raise NotImplementedError

    collate = staticmethod(collate_clips)

    def loss(
        self, net: nn.Module, model: nn.Module, batch: dict, x: torch.Tensor, cfg: RunConfig, rng
    ) -> tuple[torch.Tensor, int | None]:
        """The batch's loss, and how many clips it classified correctly (None: not counted)."""
        raise NotImplementedError

    def init_head(self, model: nn.Module, cfg: RunConfig, *, device) -> float:
        """Fit the new classifier on frozen features before training (model.head_init probe);
        returns the fit's training accuracy (%)."""
        raise ConfigError(f"model.head_init probe is for classification, not task {self.name}")

    def validate(self, model: nn.Module, cfg: RunConfig, *, device, dist: Dist) -> tuple[dict, float | None]:
        """The validation summary (`val_*` keys) and the metric that picks the best checkpoint."""
        return {}, None

    def test(self, model: nn.Module, cfg: RunConfig, out: str, *, device, dist: Dist, progress: bool) -> dict:
        """The test summary (`test_*` keys), with its reports written into `out`."""
        return {}


class ClassifyTask(Task):
    """Action classification from labelled videos (train/val/test CSVs or folders)."""

    name = "classify"

    def load(self, cfg, log):
        self.train_records, self.val_records, self.test_records, self.classes = load_splits(cfg)
        self.mirror = mirror_labels(self.classes)
        d = cfg.distill
        self.teacher = Teacher(d.teacher, alpha=d.alpha, temperature=d.temperature) if d.teacher else None

    def check_model(self, model, cfg, log):
        if isinstance(model, DetectionModel):
            raise ConfigError(f"{model.arch} is an action detector: set task: detection")
        fit_clip_length(model, self.train_records, cfg, log=log)
        if self.teacher is not None:
            self.teacher.check(model, self.classes)
            log(
                f"distilling from {cfg.distill.teacher} "
                f"(alpha {cfg.distill.alpha}, temperature {cfg.distill.temperature})"
            )
        flips = describe_mirror(self.classes, self.mirror) if model.preprocessing.flip else None
        if flips:
            log(flips)

    def dataset(self, cfg, model):
        return VideoClipDataset(
            self.train_records,
            prep=model.preprocessing,
            train=True,
            seed=cfg.run.seed,
            cache=cfg.data.cache,
            mirror=self.mirror,
        )

    def loss(self, net, model, batch, x, cfg, rng):
        y = batch["label"].to(x.device)
        x, targets, mixed = mix_batch(x, y, model.num_classes, cfg.augment, rng)
        logits = net(x)
        loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        if self.teacher is not None:
            loss = self.teacher.loss(logits, x, loss)
        return loss, None if mixed else int((logits.argmax(-1) == y).sum())

    def init_head(self, model, cfg, *, device):
        return probe_head(
            model, self.train_records, batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device
        )

    def validate(self, model, cfg, *, device, dist):
        if not self.val_records:
            return {}, None
        val = evaluate(
            model, self.val_records, num_clips=1, batch_size=cfg.eval.batch_size,
            workers=cfg.data.workers, device=device, progress=False, desc="val", dist=dist,
        )  # fmt: skip
        return {f"val_{k}": val[k] for k in ("top1", "top5", "mean_class_acc")}, val["top1"]

    def test(self, model, cfg, out, *, device, dist, progress):
        if not self.test_records:
            return {}
        test = evaluate(
            model, self.test_records, num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops,
            batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device,
            progress=progress, desc="test", dist=dist, details=True,
        )  # fmt: skip
        if dist.main and "confusion_matrix" in test:
            atomic_write_text(os.path.join(out, TEST_REPORT_NAME), json.dumps(test, indent=1) + "\n")
            plot_confusion(test["confusion_matrix"], test["labels"], os.path.join(out, "confusion.png"))
        return {f"test_{k}": test[k] for k in ("top1", "top5", "mean_class_acc")}


class AvaTask(Task):
    """Spatio-temporal action detection (`task: detection`): AVA-style keyframes, person boxes and
    multi-label actions; scored by the official frame-mAP."""

    name = "detection"
    data: DetectionData

    def load(self, cfg, log):
        self.data = load_detection_data(cfg, log=log)
        self.classes = self.data.class_names

    def check_model(self, model, cfg, log):
        if not isinstance(model, DetectionModel):
            raise ConfigError(
                f"{model.arch} is not an action detector: task detection needs a *_ava architecture"
            )

    def dataset(self, cfg, model):
        return keyframe_dataset(cfg, self.data.train, model.preprocessing, train=True)

    collate = staticmethod(collate_keyframes)

    def loss(self, net, model, batch, x, cfg, rng):
        return detection_loss(net, batch, x.device)[0], None

    def _score(self, model, cfg, split: str, *, device, dist, out=None, progress=False) -> dict:
        keyframes = self.data.splits[split][0]
        return evaluate_detection(
            model, self.data, split, keyframe_dataset(cfg, keyframes, model.preprocessing, train=False),
            out=out, batch_size=cfg.eval.batch_size, workers=cfg.data.workers, device=device,
            dist=dist, progress=progress, desc=split,
        )  # fmt: skip

    def validate(self, model, cfg, *, device, dist):
        if "val" not in self.data.splits:
            return {}, None
        metric = 100.0 * self._score(model, cfg, "val", device=device, dist=dist)["mAP"]
        return {"val_mAP": metric}, metric

    def test(self, model, cfg, out, *, device, dist, progress):
        if "test" not in self.data.splits:
            return {}
        test = self._score(model, cfg, "test", device=device, dist=dist, out=out, progress=progress)
        return {"test_mAP": 100.0 * test["mAP"]}


class PretrainTask(Task):
    """Self-supervised pretraining (VideoMAE): clips of the training videos, labels unused; the
    model draws its masks and returns its loss."""

    name = "pretrain"

    def load(self, cfg, log):
        if cfg.task == "detection":
            raise ConfigError("vidrec pretrain is for masked pretraining, not task detection")
        self.train_records = load_splits(cfg)[0]

    def check_model(self, model, cfg, log):
        if not isinstance(model, PretrainingModel):
            raise ConfigError(f"{model.arch} is not a pretraining model (e.g. videomae_b_pretrain)")

    def dataset(self, cfg, model):
        return VideoClipDataset(
            self.train_records, prep=model.preprocessing, train=True, seed=cfg.run.seed, cache=cfg.data.cache
        )

    def loss(self, net, model, batch, x, cfg, rng):
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return net(x, generator=generator), None


class SpotTask(Task):
    """Event spotting (`task: spotting`): a temporal network on a frozen extractor's features,
    which are computed once into `spotting.features`; scored by SoccerNet's average-mAP."""

    name = "spotting"

    def load(self, cfg, log):
        self.splits, self.classes = load_spot_splits(cfg)
        options = cfg.model.options
        causal = reads_causal_features(cfg)
        videos = [v for split in self.splits.values() for v in split.videos]
        timelines = ensure_features(
            cfg, videos, causal=causal, device=resolve_device(cfg.run.device), log=log
        )
        for split in self.splits.values():
            split.timelines = {v: timelines[v] for v in split.videos}
        width = next(iter(timelines.values()))[1].shape[1]
        if cfg.model.init is None:  # what the spotter is built for, recorded in its config
            given = {"in_features": width, "rate": cfg.spotting.rate, "causal_features": causal}
            cfg.model.options = {**given, "extractor": cfg.spotting.extractor, **options}
        self.width = width

    def check_model(self, model, cfg, log):
        if not isinstance(model, SpottingModel):
            raise ConfigError(
                f"{model.arch} is not an event spotter: task spotting needs spotter_conv(_causal)"
            )
        if model.in_features != self.width:
            raise ConfigError(
                f"{model.arch} reads {model.in_features} features per step; these have {self.width}"
            )

    def dataset(self, cfg, model):
        steps = max(1, round(cfg.spotting.window * cfg.spotting.rate))
        return SpotWindows(
            self.splits["train"],
            self.classes,
            steps=steps,
            radius=cfg.spotting.label_radius,
            seed=cfg.run.seed,
        )

    collate = staticmethod(collate_windows)

    def loss(self, net, model, batch, x, cfg, rng):
        return spot_loss(net(x), batch["label"].to(x.device), cfg.spotting.fg_weight), None

    def validate(self, model, cfg, *, device, dist):
        if "val" not in self.splits:
            return {}, None
        metric = cfg.spotting.metric
        value = score_split(model, self.splits["val"], cfg, metric=metric)
        return {f"val_{metric}_a_mAP": value}, value

    def test(self, model, cfg, out, *, device, dist, progress):
        if "test" not in self.splits:
            return {}
        found = spot_split(model, self.splits["test"], cfg)
        return write_test_report(out, self.splits["test"], found, model.class_names) if dist.main else {}


def task_for(cfg: RunConfig, *, pretrain: bool) -> Task:
    """The task a run config (and `vidrec pretrain`) asks for."""
    if pretrain:
        return PretrainTask()
    return {"detection": AvaTask, "spotting": SpotTask}.get(cfg.task, ClassifyTask)()


__all__ = ["AvaTask", "ClassifyTask", "PretrainTask", "SpotTask", "Task", "task_for"]
