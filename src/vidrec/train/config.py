"""Run configuration: one YAML file maps onto the dataclasses below, strictly.

    model:     {name: slowfast_r50_8x8, options: {drop_path: 0.1}, init: runs/pt}
    data:      {train: k400/train.csv, val: k400/val.csv, num_frames: 32, batch_size: 8}
    optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1e-4}
    schedule:  {epochs: 196, warmup_epochs: 34}
    augment:   {mixup: 0.8, cutmix: 1.0, label_smoothing: 0.1}
    eval:      {num_clips: 10, num_crops: 3}
    run:       {out: runs/slowfast, precision: bf16, checkpoint_every: 500}
    task: detection, detection: {videos: ava/videos, labels: ava/labels.pbtxt}   (AVA-style boxes)

An unknown key is an error naming the closest valid one; a value of the wrong type names its
field. `--set a.b=value` overrides on the command line (values are read as YAML). The resolved
config is printed and saved beside the checkpoints (`config.yaml`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

import yaml

from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, unknown_name_message

FREEZE_MODES = ("none", "norms", "backbone")  # model.freeze
HEAD_INITS = ("random", "probe")  # model.head_init
TASKS = ("classification", "detection", "spotting")
STRATEGIES = ("ddp", "fsdp")  # run.strategy


@dataclass
class ModelSection:
    """The `model:` section: which architecture, with which options, from which weights."""

    name: str | None = None  # registered architecture (see `vidrec models`); None: init's architecture
    options: dict = field(default_factory=dict)  # architecture config overrides (drop_path, dropout, ...)
    # Weights to start from: any `vidrec.load_model` source (vidrec or transformers directory,
    # official checkpoint, hub id, a `vidrec pretrain` run) or `inflate:PATH`: 2D weights inflated
    # into this 3D architecture (a torchvision GoogLeNet / ResNet-50 state dict for
    # i3d_inception_rgb / i3d_r50, a trained tsn_small model for i3d_small).
    init: str | None = None
    # How `inflate:` spreads a 2D kernel over time: "replicate" (copied to every frame and divided by
    # their number, the I3D paper's) or "centre" (on the middle frame only, zeros elsewhere).
    inflation: str = "replicate"
    gradient_checkpointing: bool = False  # recompute activations in backward to save memory
    sync_bn: bool = False  # synchronise batch-norm statistics across processes (distributed runs)
    # "none": train everything; "norms": batch norms keep their running statistics (eval mode; their
    # affine weights still learn), as MMAction2's norm_eval: small fine-tuning batches would otherwise
    # overwrite the pretrained statistics; "backbone": only the classifier `head.*` learns (a linear
    # probe). None: "norms" when fine-tuning from model.init, "none" from scratch.
    freeze: str | None = None
    # A new classifier (fine-tuning on other labels) starts "random" (the family's init) or as
    # "probe": a logistic regression fitted on the frozen features of the training videos before
    # any step (LP-FT; vidrec.train.probe). None: "probe" when fine-tuning a classifier from
    # model.init, "random" otherwise.
    head_init: str | None = None


@dataclass
class DataFiles:
    """The `data:` section's files and loading settings (the preprocessing fields are added to it)."""

    # CSV (path,label), Kinetics' CSV, SSv2 JSON split, folder per class, or a dataset folder
    # holding train.csv / train.json (and val / test files: vidrec.data.datasets.SPLIT_FILES)
    train: str | None = None
    val: str | None = None  # evaluated after each epoch (default: train.csv's directory/val.csv)
    test: str | None = None  # evaluated with the full multi-view protocol at the end
    # Where a Kinetics CSV's videos (YOUTUBEID_START_END.mp4, searched recursively) or an SSv2
    # split's (ID.webm) are. None: beside the annotation file (SSv2: its 20bn-something-something-v2/
    # or videos/ folder when there).
    videos: str | None = None
    batch_size: int = 8  # per process
    workers: int = 2  # DataLoader processes per training process
    # A folder for the training videos' decoded frames (vidrec.io.cache): the first epoch decodes
    # each video once and stores its frames (uint8 .npy, memory-mapped after), later epochs read
    # them. For many epochs over small videos (masked pretraining); None: decode every time.
    cache: str | None = None


# The one list of preprocessing settings: each field of vidrec.data.preprocessing.Preprocessing is a
# `data:` key (None: the model's own value) and a `vidrec train` flag, with the field's help text.
PREPROCESSING_FIELDS = tuple(dataclasses.fields(Preprocessing))
PREPROCESSING_TYPES = typing.get_type_hints(Preprocessing)  # field name -> its type
DataSection = dataclasses.make_dataclass(
    "DataSection",
    [
        (f.name, PREPROCESSING_TYPES[f.name] | None, field(default=None, metadata=f.metadata))
        for f in PREPROCESSING_FIELDS
    ],
    bases=(DataFiles,),
)
DataSection.__doc__ = (
    "The `data:` section: files and loading (DataFiles), then every preprocessing field "
    "of the model, changed where set (see Preprocessing for each one's meaning)."
)
DataSection.__module__ = __name__


@dataclass
class OptimizerSection:
    """The `optimizer:` section."""

    name: str = "adamw"  # "sgd" (momentum) or "adamw"
    lr: float = 1e-3  # peak learning rate (after warmup) for the whole batch across processes
    weight_decay: float = 0.05  # not applied to norms, biases and position/mask tokens
    momentum: float = 0.9  # SGD
    nesterov: bool = False  # SGD
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    layer_decay: float | None = None  # ViTs: lr scaled by decay^(depth + 1 - layer) (None: off)
    # lr of everything but the classifier head, as a share of lr. None: 0.1 when fine-tuning from
    # model.init (pretrained features change slowly, the new head fast, as timm/transformers
    # recipes do), 1.0 from scratch.
    backbone_lr_scale: float | None = None
    grad_clip: float | None = None  # max global gradient norm (None: off)
    accumulate: int = 1  # batches per optimizer step


@dataclass
class ScheduleSection:
    """The `schedule:` section: epochs, warmup, then a cosine or steps."""

    epochs: int = 10
    warmup_epochs: float = 0.0  # linear warmup from warmup_start_lr
    warmup_start_lr: float = 0.0
    min_lr: float = 0.0  # floor of the cosine
    # "cosine" (half a cosine from the peak to min_lr), or "steps": the peak times lrs[i] from
    # epoch steps[i] on (PySlowFast's steps_with_relative_lrs; SSv2: steps [14, 18], lrs [0.1, 0.01])
    policy: str = "cosine"
    steps: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)


@dataclass
class AugmentSection:
    """The `augment:` section: label smoothing, mixup, cutmix."""

    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of clips and labels (0: off)
    cutmix: float = 0.0  # Beta(alpha, alpha) box pasted into every frame (0: off)
    mix_prob: float = 1.0  # probability a batch is mixed at all
    switch_prob: float = 0.5  # when both are on: probability of cutmix instead of mixup


@dataclass
class EvalSection:
    """The `eval:` section: test views and validation frequency."""

    num_clips: int = 1  # temporal clips per video at test time (SlowFast 10, VideoMAE 5)
    num_crops: int = 1  # spatial crops per clip (1 or 3)
    batch_size: int = 4  # videos per batch
    every: int = 1  # validate every N epochs (0: never during training)


@dataclass
class DetectionSection:
    """The `detection:` section (with `task: detection`): AVA-style data. data.train / val / test
    are ground-truth box CSVs (video_id, sec, x1, y1, x2, y2, action_id, person_id)."""

    videos: str | None = None  # folder searched (recursively) for VIDEO_ID.mp4 / .mkv / ...
    labels: str | None = None  # label map .pbtxt: the model predicts ids 1..max id
    eval_labels: str | None = None  # the classes scored (AVA: the 60-class list); None: labels
    excluded: str | None = None  # excluded-timestamps CSV (left out of training and scoring)
    train_boxes: list[str] = field(default_factory=list)  # person boxes (CSV, proposal .pkl), labelled by IoU
    train_gt_boxes: bool = True  # train on the ground-truth boxes too
    test_boxes: str = "gt"  # "gt", or person boxes (CSV or .pkl) scored at val/test (a detector's)
    score_thresh: float = 0.8  # person boxes scored below are dropped (PySlowFast 0.8, Slow 0.9)
    label_iou: float = 0.9  # a person box takes the actions of the ground truth it overlaps this much
    fps: float | None = None  # frames per second of the keyframe clock (None: each video's own)
    start_sec: float = 0.0  # the time of frame 0 (AVA's cut videos: 900)


@dataclass
class SpottingSection:
    """The `spotting:` section (with `task: spotting`): an event spotter trained on a frozen
    model's features. data.train / val / test are event CSVs (video,time,label; videos relative to
    the CSV's folder), or a directory holding train.csv, val.csv, test.csv (and classes.txt)."""

    # Where the features are (`vidrec extract --rate` shards); the videos not in it yet are
    # extracted into it with `extractor` first (resumable), so they are computed once.
    features: str | None = None
    extractor: str | None = None  # any `load_model` source (a stream model: MoViNet), or a tag
    rate: float = 5.0  # feature steps per second
    # clip extractors: clips end at each step instead of centred on it (None: as the spotter is causal)
    causal_features: bool | None = None
    window: float = 30.0  # seconds of features per training sample
    label_radius: int = 1  # steps on each side of an event that are labelled with it
    fg_weight: float = 5.0  # loss weight of event steps against "no event" steps (E2E-Spot's idea)
    nms: float = 1.0  # seconds: peaks of a class closer than nms/2 to a stronger one are dropped
    threshold: float = 0.01  # events below this probability are not reported
    metric: str = "tight"  # what val scores (average-mAP: tight, loose or a tolerance in seconds)


@dataclass
class DistillSection:
    """The `distill:` section (classification): a trained teacher's predictions taught to the
    model being trained (vidrec.train.distill; VideoMAE V2 makes ViT-S and ViT-B from ViT-g so)."""

    teacher: str | None = None  # any `load_model` source with the data's classes and clips; None: off
    alpha: float = 0.5  # weight of the teacher's term; the labels' cross-entropy takes 1 - alpha
    temperature: float = 1.0  # both distributions softened by it (the term scaled by its square)


@dataclass
class RunSection:
    """The `run:` section: where outputs go, seed, device, precision, EMA, checkpoints, logging."""

    out: str = "runs/run"  # checkpoints, metrics, config.yaml, the final model
    seed: int = 0
    device: str = "auto"  # cpu, cuda, cuda:1, auto
    precision: str = "fp32"  # fp32, bf16 (autocast), fp16 (autocast + grad scaler, GPU only)
    # Under torchrun: "ddp" (every process holds the whole model; gradients all-reduced) or "fsdp"
    # (fully sharded: each holds 1/world of the parameters, gradients and optimizer state, a
    # transformer gathered block by block; for models too large for one process). Checkpoints
    # hold the whole state either way.
    strategy: str = "ddp"
    ema: float | None = None  # decay of an exponential moving average of the weights (None: off)
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: each epoch only)
    keep_last: int = 3  # checkpoints kept, besides the best
    log_every: int = 10  # steps between metric rows
    tensorboard: bool = True  # also write TensorBoard event files under out/tb
    # The saved model is the checkpoint with the best val top-1 (or mAP) instead of the last one;
    # with a probed head the probe itself, validated before the first step, is a candidate. None:
    # on when fine-tuning from model.init (few videos: the last epoch is often not the best).
    keep_best: bool | None = None


@dataclass
class RunConfig:
    """A whole run: one YAML file, section by section (unknown keys and wrong types are errors)."""

    # or "detection" (AVA-style boxes: the `detection:` section), or "spotting" (events in time on
    # a frozen model's features: the `spotting:` section)
    task: str = "classification"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    eval: EvalSection = field(default_factory=EvalSection)
    detection: DetectionSection = field(default_factory=DetectionSection)
    spotting: SpottingSection = field(default_factory=SpottingSection)
    distill: DistillSection = field(default_factory=DistillSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self):
        choices = {
            "task": (self.task, TASKS),
            "model.freeze": (self.model.freeze or "none", FREEZE_MODES),
            "model.head_init": (self.model.head_init or "random", HEAD_INITS),
            "optimizer.name": (self.optimizer.name, ("sgd", "adamw")),
            "run.precision": (self.run.precision, ("fp32", "bf16", "fp16")),
            "run.strategy": (self.run.strategy, STRATEGIES),
            "schedule.policy": (self.schedule.policy, ("cosine", "steps")),
        }
        for key, (value, valid) in choices.items():
            if value not in valid:
                raise ConfigError(unknown_name_message(key, value, valid))
        if self.eval.num_crops not in (1, 3):
            raise ConfigError(f"eval.num_crops must be 1 or 3, got {self.eval.num_crops}")
        for key, value in (
            ("schedule.epochs", self.schedule.epochs),
            ("data.batch_size", self.data.batch_size),
            ("optimizer.accumulate", self.optimizer.accumulate),
            ("eval.num_clips", self.eval.num_clips),
        ):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        if self.task == "spotting" and self.model.name is None and self.model.init is None:
            self.model.name = "spotter_conv"
        if self.model.name is None and self.model.init is None:
            raise ConfigError(
                "set model.name (an architecture, see `vidrec models`) or model.init (weights to start from)"
            )
        if self.optimizer.lr <= 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.optimizer.lr}")
        if self.task == "detection":
            if self.model.head_init == "probe":
                raise ConfigError("model.head_init probe fits a classifier: it is not for task detection")
            if self.augment.mixup or self.augment.cutmix or self.augment.label_smoothing:
                raise ConfigError(
                    "augment mixup / cutmix / label_smoothing are for classification, not detection"
                )
            for key in ("videos", "labels"):
                if getattr(self.detection, key) is None:
                    raise ConfigError(f"task detection needs detection.{key}")
        sched = self.schedule
        if sched.policy == "steps" and (
            len(sched.steps) != len(sched.lrs) or not sched.steps or sorted(sched.steps) != list(sched.steps)
        ):
            raise ConfigError(
                "schedule.policy steps needs schedule.steps (epochs, increasing) and one schedule.lrs "
                f"factor for each; got steps {sched.steps}, lrs {sched.lrs}"
            )
        if self.distill.teacher is not None and self.task != "classification":
            raise ConfigError(f"distill.teacher teaches a classifier: it is not for task {self.task}")
        if self.run.strategy == "fsdp":
            if self.run.ema:
                raise ConfigError(
                    "run.ema is not available with run.strategy fsdp (the average would be unsharded)"
                )
            if self.model.head_init == "probe":
                raise ConfigError(
                    "model.head_init probe fits the head on an unsharded model: use head_init random "
                    "with run.strategy fsdp"
                )
            if self.model.sync_bn:
                raise ConfigError("model.sync_bn is for run.strategy ddp")
        if self.task == "spotting":
            if self.model.head_init == "probe":
                raise ConfigError("model.head_init probe fits a classifier: it is not for task spotting")
            if self.spotting.features is None:
                raise ConfigError("task spotting needs spotting.features (a folder for the cached features)")
            if not (self.spotting.rate > 0 and self.spotting.window > 0 and self.spotting.label_radius >= 0):
                raise ConfigError("spotting.rate and spotting.window must be > 0, spotting.label_radius >= 0")

    @property
    def freeze(self) -> str:
        """model.freeze, resolved: "norms" when fine-tuning from model.init unless set."""
        return self.model.freeze or ("norms" if self.model.init else "none")

    @property
    def fine_tuning(self) -> bool:
        """Starting from other weights (model.init: pretrained, a run, inflated 2D kernels)."""
        return self.model.init is not None

    @property
    def head_init(self) -> str:
        """model.head_init, resolved: "probe" when fine-tuning a classifier (unsharded), else "random"."""
        probe = self.fine_tuning and self.task == "classification" and self.run.strategy != "fsdp"
        default = "probe" if probe else "random"
        return self.model.head_init or default

    @property
    def keep_best(self) -> bool:
        """run.keep_best, resolved: on when fine-tuning."""
        return self.run.keep_best if self.run.keep_best is not None else self.fine_tuning

    def to_dict(self) -> dict:
        """The config as nested plain dicts."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML, as saved beside a run."""
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)


def _plain(value):
    """Tuples as lists, so the YAML is plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value, hint, where: str):
    """`value` as the annotated type, or a ConfigError naming the field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is list or origin is list:
        if isinstance(value, str):  # one item given on its own
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else None
        return [_coerce(v, item, f"{where}[{i}]") if item else v for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, str, bool) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(unknown_name_message(f"config key in {where or 'the top level'}", key, names))
        hint = hints[key]
        values[key] = (
            _build(hint, value, path) if dataclasses.is_dataclass(hint) else _coerce(value, hint, path)
        )
    return cls(**values)


def _set(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
    node[leaf] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, object]]:
    """`["a.b=1", "c.d=[1, 2]"]` -> `[("a.b", 1), ("c.d", [1, 2])]` (values read as YAML)."""
    out = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        out.append((key.strip(), value))
    return out


def config_from_dict(tree: dict, overrides: list[str] = ()) -> RunConfig:
    """A RunConfig from nested dicts and `key=value` overrides (strict keys and types)."""
    tree = dict(tree or {})
    for key, value in parse_overrides(list(overrides)):
        if "." not in key and key != "task":  # a key without a section is a model option (width=16)
            key = f"model.options.{key}"
        if key.startswith("model.options."):  # free-form: the architecture checks its own options
            tree.setdefault("model", {}).setdefault("options", {})[key.removeprefix("model.options.")] = value
        else:
            _set(tree, key, value)
    return _build(RunConfig, tree, "")


def load_config(path: str, overrides: list[str] = ()) -> RunConfig:
    """A RunConfig from a YAML file and `key=value` overrides."""
    try:
        with open(path) as f:
            tree = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    try:
        return config_from_dict(tree or {}, overrides)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


__all__ = ["RunConfig", "config_from_dict", "load_config", "parse_overrides"]
