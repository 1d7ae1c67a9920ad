"""From a run config to a model and its data: the architecture with its options, weights from any
`load_model` source (or a 2D network inflated to 3D), the data splits and their preprocessing."""

from __future__ import annotations

import dataclasses
import os

import torch
from tqdm import tqdm

from vidrec.data.datasets import load_annotations, split_file
from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, VidrecError
from vidrec.io import probe
from vidrec.models import inflate
from vidrec.models.base import DetectionModel, ModelBase, PretrainingModel, StreamingModel, VideoModel
from vidrec.models.convert import read_checkpoint
from vidrec.models.loader import load_model
from vidrec.models.registry import create_model
from vidrec.models.weights import weights_for
from vidrec.train.config import PREPROCESSING_FIELDS, RunConfig
from vidrec.train.optim import HEAD_PREFIX

# Keys a fine-tuning model may lack in its source: the classifier and the pooling norms.
_HEAD_PREFIXES = ("head.", "fc_norm.", "norm.")


def split_path(cfg: RunConfig, split: str) -> str | None:
    """data.val / data.test, or the split's file beside the training file when data.train is a
    dataset folder (val.csv, Kinetics' validate.csv, SSv2's validation.json; test.csv)."""
    explicit = getattr(cfg.data, split)
    if explicit or not (cfg.data.train and os.path.isdir(cfg.data.train)):
        return explicit
    return split_file(cfg.data.train, split)


def load_splits(cfg: RunConfig):
    """(train, val, test record lists, class names). `data.train` is an annotation file (CSV,
    Kinetics CSV, SSv2 JSON), a folder per class, or a dataset folder holding train.csv /
    train.json (then its val and test files are used when not set; see split_path)."""
    d = cfg.data
    if d.train is None:
        raise ConfigError("data.train is not set (a CSV, a folder per class, or a directory with train.csv)")
    if not os.path.exists(d.train):
        raise ConfigError(f"data.train: {d.train}: no such file or directory")
    train_file = split_file(d.train, "train") if os.path.isdir(d.train) else d.train
    train, classes = load_annotations(train_file or d.train, videos=d.videos)
    splits = []
    for name in ("val", "test"):
        path = split_path(cfg, name)
        if path and not os.path.exists(path):
            raise ConfigError(f"data.{name}: {path}: no such file")
        records = load_annotations(path, classes=classes, videos=d.videos)[0] if path else None
        if records and all(r.label < 0 for r in records):
            if getattr(d, name):
                raise ConfigError(f"data.{name}: {path} has no labels to score")
            records = None  # Kinetics' own test.csv: no labels, nothing to score
        splits.append(records)
    if not train:
        raise ConfigError(f"{d.train}: no training videos")
    return train, splits[0], splits[1], classes


def transfer_weights(model: ModelBase, source: dict[str, torch.Tensor], what: str) -> dict[str, list[str]]:
    """Load every source tensor whose name and shape fit; only the head and pooling norms may be
    left new. Returns {"loaded", "new", "dropped"} key lists."""
    target = model.state_dict()
    shared = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    new = sorted(set(target) - set(shared))
    body = [k for k in new if not k.startswith(_HEAD_PREFIXES)]
    if body:
        raise ConfigError(
            f"{what} does not fit {model.arch}: {len(body)} weights missing or of another shape, "
            f"e.g. {body[:3]}"
        )
    model.load_state_dict(shared, strict=False)
    return {"loaded": sorted(shared), "new": new, "dropped": sorted(set(source) - set(shared))}


def _inflated(cfg: RunConfig, path: str) -> dict[str, torch.Tensor]:
    builders = {
        "i3d_inception_rgb": (inflate.inflate_googlenet, read_checkpoint),  # torchvision state dicts
        "i3d_r50": (inflate.inflate_resnet50, read_checkpoint),
        "i3d_small": (inflate.inflate_tsn, load_model),  # a trained tsn_small (directory or tag)
    }
    if cfg.model.name not in builders:
        raise ConfigError(f"model.init inflate: works for {', '.join(builders)}, not {cfg.model.name}")
    build, read = builders[cfg.model.name]
    inflated, report = build(read(path), mode=cfg.model.inflation, **cfg.model.options)
    tqdm.write(f"inflated {len(report.inflated)} 2D kernels from {path} ({cfg.model.inflation})")
    return inflated.state_dict()


def build_model(
    cfg: RunConfig, *, num_classes: int | None, pretrain: bool = False, log=tqdm.write
) -> tuple[ModelBase, bool]:
    """The architecture of `model.name` with `model.options`, initialised from `model.init`: a
    `load_model` source (a pretraining model gives its encoder; another class count re-initialises
    the head) or `inflate:PATH`. Returns the model and whether its classifier is new (not loaded)."""
    m, options = cfg.model, dict(cfg.model.options)
    kwargs = {} if pretrain else {"num_classes": num_classes}
    report, new_head = None, True
    if m.init and not m.init.startswith("inflate:"):
        source = load_model(m.init)
        if isinstance(source, PretrainingModel) and not pretrain:
            model, report = source.to_classifier(num_classes, **options)
        elif m.name in (None, source.arch) and not options:
            model = source
            new_head = not pretrain and model.num_classes != num_classes
            if new_head:
                log(
                    f"re-initialising the classifier of {m.init}: "
                    f"{model.num_classes} -> {num_classes} classes"
                )
                model.reset_classifier(num_classes)
        else:
            model = create_model(m.name or source.arch, **kwargs, **options)
            state = source.state_dict()
            if isinstance(model, DetectionModel) and isinstance(source, VideoModel):
                # a classifier's weights (Kinetics, SynthMotion) start the detector's backbone; the
                # detector keeps its own preprocessing (whole frames, boxes)
                state = {f"backbone.{k}": v for k, v in state.items()}
            else:
                model.preprocessing = source.preprocessing
            report = transfer_weights(model, state, m.init)
    else:
        model = create_model(m.name, **kwargs, **options)
        tags = [w.name for w in weights_for(m.name)]
        if tags and not m.init:
            log(
                f"training {m.name} from scratch; to start from its pretrained weights, use --model {tags[0]}"
            )
        if m.init:
            report = transfer_weights(model, _inflated(cfg, m.init.removeprefix("inflate:")), m.init)
    if report is not None:
        new_head = any(k.startswith(HEAD_PREFIX) for k in report["new"])
        log(
            f"initialised from {m.init}: {len(report['loaded'])} tensors loaded"
            + (f"; new (re-initialised): {', '.join(report['new'])}" if report["new"] else "")
            + (
                f"; {len(report['dropped'])} dropped (e.g. {', '.join(report['dropped'][:3])})"
                if report["dropped"]
                else ""
            )
        )
    if pretrain != isinstance(model, PretrainingModel):
        raise ConfigError(
            f"{model.arch} is {'not ' if pretrain else ''}a pretraining model: use "
            f"{'a *_pretrain architecture with vidrec pretrain' if pretrain else 'vidrec pretrain'}"
        )
    if model.quant_grids is not None:  # they describe the imported weights, not the ones training makes
        log("dropping the int8 grids of the imported weights: training changes the weights they describe")
        model.quant_grids = None
    model.set_grad_checkpointing(m.gradient_checkpointing)
    model.preprocessing = preprocessing_for(model.preprocessing, cfg)
    if cfg.freeze != "none":
        log(f"model.freeze {cfg.freeze}: batch norms keep their running statistics")
    if cfg.freeze == "backbone":
        if not isinstance(model, (VideoModel, DetectionModel)):
            raise ConfigError(f"model.freeze backbone: {model.arch} has no classifier head to train alone")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(HEAD_PREFIX))
        learning, total = (
            sum(p.numel() for p in model.parameters() if all_ or p.requires_grad) for all_ in (0, 1)
        )
        log(f"frozen backbone: {learning:,} of {total:,} parameters learn (the head)")
    return model, new_head


def keep_norms_in_eval(model: torch.nn.Module) -> None:
    """Batch norms keep their running statistics (model.freeze norms / backbone; after `train()`)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def fit_clip_length(
    model: ModelBase, records: list, cfg: RunConfig, log=tqdm.write, sample: int = 32
) -> None:
    """Stream models take any number of frames: when `data.num_frames` is not set, a clip is as long
    as the typical training video at the model's rate, never padded with copies of the last frame
    (MoViNet asks for 50 frames at 5 fps: a 2.5 s clip would be 37 copies of its last frame)."""
    prep = model.preprocessing
    if not isinstance(model, StreamingModel) or cfg.data.num_frames is not None or not prep.target_fps:
        return
    durations = []
    for record in records[:: max(1, len(records) // sample)][:sample]:
        try:
            durations.append(probe(record.path).duration)
        except (VidrecError, OSError):
            continue  # broken videos are reported when training reaches them
    if not durations:
        return
    frames = max(1, int(sorted(durations)[len(durations) // 2] * prep.target_fps))
    if frames < prep.num_frames * prep.sampling_rate:
        model.preprocessing = dataclasses.replace(prep, num_frames=frames, sampling_rate=1)
        log(
            f"clips of {frames} frames at {prep.target_fps:g} fps: the median training video's length "
            f"(set data.num_frames to choose)"
        )


def preprocessing_for(prep: Preprocessing, cfg: RunConfig) -> Preprocessing:
    """The model's preprocessing with the data section's changes. What the user did not set follows
    what they did: a larger crop grows the resize, a new resize scales the model's test crop with it
    (SlowFast tests on the whole 256 short side: resize 64 tests on 64)."""
    d = cfg.data
    changes = {f.name: getattr(d, f.name) for f in PREPROCESSING_FIELDS if getattr(d, f.name) is not None}
    if "crop_size" in changes and "resize" not in changes:
        changes["resize"] = max(prep.resize, changes["crop_size"])
    if (
        "test_crop_size" not in changes
        and prep.test_crop_size is not None
        and changes.get("resize", prep.resize) != prep.resize
    ):
        scaled = round(prep.test_crop_size * changes["resize"] / prep.resize)
        changes["test_crop_size"] = max(
            changes.get("crop_size", prep.crop_size), min(scaled, changes["resize"])
        )
    for name in ("crop_size", "test_crop_size"):
        size = changes.get(name, getattr(prep, name))
        resize = changes.get("resize", prep.resize)
        if size is not None and size > resize:
            source = (
                f"data.{name}"
                if name in changes and getattr(d, name) is not None
                else f"{name} (the model's)"
            )
            raise ConfigError(
                f"{source} {size} is larger than data.resize {resize}: set data.{name} to at "
                f"most {resize} or raise data.resize"
            )
    return dataclasses.replace(prep, **changes)


__all__ = ["build_model", "load_splits", "preprocessing_for", "split_path", "transfer_weights"]
