"""The model contract every vidrec architecture keeps, and what every model carries and saves.

Seven kinds of model, each a base class (never probed with `hasattr`, never recognised by its
concrete class outside its own module):

- `VideoModel`, a classifier (as timm's models):
      forward(x)                      (B, C, T, H, W) -> logits (B, num_classes)
      forward_features(x)             -> pooled features (B, num_features)
      forward_head(f, pre_logits=F)   pooled features -> logits (or the vector before the classifier)
      num_features, num_classes, reset_classifier(n), set_grad_checkpointing(on), no_weight_decay(),
      num_layers / layer_id(name) for layer-wise lr decay (num_layers is None where it does not apply)
- `StreamingModel`, a classifier that can also watch a stream: `init_state(B)` and
  `step(frames, state) -> (logits, state)`; `forward` on a clip equals streaming it.
- `PretrainingModel`: `forward(x, generator=None)` -> a scalar loss, masks drawn inside;
  `to_classifier(num_classes)` -> the classifier its encoder initialises.
- `DetectionModel`, an action detector (AVA): `forward(x, boxes)` with boxes `(K, 5)` (batch
  index, x1, y1, x2, y2 in input pixels) -> per-box multi-label logits `(K, num_classes)`.
  Classifiers that can be its backbone give `feature_maps(x)`, `feature_dims`, `feature_stride`.
- `TwoStreamModel`: late fusion of an RGB and an optical-flow classifier, `forward((rgb, flow))`
  -> fused log-probabilities; its inputs need optical flow beside the frames.
- `SpottingModel`, an event spotter: `forward(features (B, T, D))` -> per-step logits
  `(B, T, 1 + num_classes)` over a frozen extractor's features (index 0: no event).
- `ImageDetector`, finding things in single frames (the SSD person detector): `detect_frames`
  takes uint8 frames `(N, H, W, 3)` and gives boxes, classes and scores per frame.

All of them carry `arch`, `labels` (`class_names` names every output, labelled or not),
`preprocessing` and `backend` (who runs them: "pytorch", or the runtime of a
`vidrec.runtime` model), and `save_pretrained(dir)` writes
`config.json` + `model.safetensors` (`vidrec.load_model` reads it back).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidrec._version import __version__
from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.utils import atomic_write_text, write_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
QUANT_GRIDS_NAME = "quant_grids.json"
LEGACY_GRIDS_NAME = "int8_grids.json"  # what vidrec 0.1 directories call it
FORMAT_VERSION = "0.2.0"  # written into config.json; the layout of the directory, not the package


def build_config(config_cls: type, defaults: dict, overrides: dict):
    """`config_cls(**defaults, **overrides)`, naming any override the config does not have."""
    valid = [f.name for f in dataclasses.fields(config_cls)]
    for key in overrides:
        if key not in valid:
            raise ConfigError(unknown_name_message(f"option for {config_cls.__name__}", key, valid))
    # JSON has no tuples: a config read back from config.json gives lists.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in {**defaults, **overrides}.items()}
    return config_cls(**values)


def build_model(
    model_cls: type,
    config_cls: type,
    *,
    arch: str,
    defaults: dict,
    overrides: dict,
    preprocessing: Preprocessing,
):
    """What every builder does: config from defaults + overrides, then name and input settings."""
    model = model_cls(build_config(config_cls, defaults, overrides))
    model.arch, model.preprocessing = arch, preprocessing
    return model


def linear_head(in_features: int, num_classes: int, *, std: float | None = 0.01) -> nn.Linear:
    """Classifier initialised as PySlowFast's heads (`MODEL.FC_INIT_STD`): normal(std) weights,
    zero bias; `std=None` keeps PyTorch's default (uniform, +-1/sqrt(in_features))."""
    head = nn.Linear(in_features, num_classes)
    if std is not None:
        nn.init.normal_(head.weight, std=std)
        nn.init.zeros_(head.bias)
    return head


def config_dict(config) -> dict:
    """A config dataclass as plain JSON values (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


class ModelBase(nn.Module):
    """What every vidrec model carries besides its weights, and how it is saved."""

    arch: str = ""  # registry name, set by the builder
    labels: list[str] | None = None  # class names in logit order, when known
    preprocessing: Preprocessing = Preprocessing()
    # {point: (scale, zero_point, ...)}: the activation grids of the quantized file the weights came
    # from (int8 MoViNet: vidrec.deploy.to_int8 reproduces that runtime; uint8 SSD:
    # vidrec.deploy.on_uint8_grids); saved beside the weights, not in the config.
    quant_grids: dict | None = None
    grad_checkpointing: bool = False  # recompute activations in backward (set_grad_checkpointing)
    backend: str = "pytorch"  # who runs forward/step: "pytorch", "onnxruntime" or "litert"
    # deployable forms the architecture has beyond every model's (fused, channels-last, oneDNN,
    # bf16, ONNX): "int8" (vidrec.deploy.to_int8), "tflite" (its stream step as a TFLite graph)
    forms: frozenset[str] = frozenset()

    def check_input(self, x: torch.Tensor) -> None:
        """One clear error for the most common mistake: a wrong layout or channel count."""
        channels = getattr(self.config, "in_channels", 3)
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(f"{self.arch} expects input (B, {channels}, T, H, W), got {shape}")

    def set_labels(self, labels: list[str] | None) -> None:
        """Class names in logit order (None: unknown); their number must be the class count."""
        if labels is not None and len(labels) != self.num_classes:
            raise ConfigError(f"{len(labels)} labels given for a model with {self.num_classes} classes")
        self.labels = list(labels) if labels is not None else None

    @property
    def num_classes(self) -> int:
        """Classifier outputs."""
        return self.config.num_classes

    @property
    def device(self) -> torch.device:
        """Where the model's inputs go (its weights' device; CPU for a model without weights)."""
        return next(self.parameters(), torch.zeros(())).device

    @property
    def class_names(self) -> list[str]:
        """A name per output in logit order: the labels, else `class_0`, `class_1`, ..."""
        return list(self.labels) if self.labels else [f"class_{i}" for i in range(self.num_classes)]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of storing them."""
        self.grad_checkpointing = enable

    def checkpointed(self, module: nn.Module, *args):
        """`module(*args)`, recomputed in backward when gradient checkpointing is on and training."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def shard_units(self) -> list[nn.Module]:
        """The submodules fully sharded data parallel gathers one at a time (`run.strategy: fsdp`):
        a transformer's blocks. Empty: the model is one unit, gathered whole for each step."""
        return []

    @property
    def num_layers(self) -> int | None:
        """Depth for layer-wise lr decay (ViTs); None: the model is not layered that way."""
        return None

    def layer_id(self, name: str) -> int:
        """Depth of parameter `name`, 0 (embedding) .. num_layers + 1 (head), for layer decay."""
        raise ConfigError(f"{self.arch} has no layer-wise depths (layer decay is for ViTs)")

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (besides 1-D tensors: norms and biases)."""
        return set()

    def config_json(self) -> dict:
        """What `config.json` holds: enough to rebuild the model before loading its weights."""
        return {
            "vidrec_version": __version__,
            "format_version": FORMAT_VERSION,
            "architecture": self.arch,
            "config": config_dict(self.config),
            "labels": self.labels,
            "preprocessing": self.preprocessing.to_dict(),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write `config.json` and `model.safetensors` (and `quant_grids.json` when the model has
        them). The config is written last, so a directory with a config always has its weights."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_safetensors(os.path.join(directory, WEIGHTS_NAME), state, {"format": "pt"})
        if self.quant_grids:
            atomic_write_text(os.path.join(directory, QUANT_GRIDS_NAME), json.dumps(self.quant_grids) + "\n")
        atomic_write_text(
            os.path.join(directory, CONFIG_NAME), json.dumps(self.config_json(), indent=2) + "\n"
        )


class _WithClassifier(ModelBase):
    """A model whose last layer, `self.head`, classifies (clips or boxes) and can be replaced."""

    def make_head(self, num_classes: int) -> nn.Module:
        """A new classifier for `num_classes` (initialised as the family's recipe says)."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for `num_classes` (fine-tuning on other labels); labels are dropped."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.head = self.make_head(num_classes).to(next(self.parameters()).device)
        self.labels = None


class VideoModel(_WithClassifier):
    """A classifier: `(B, C, T, H, W)` float in, logits `(B, num_classes)` out.

    Subclasses set `self.config` (a dataclass with `num_classes`), `self.num_features`, `self.head`
    (made by `make_head`) and implement `forward_features` (pooled) and `forward_head`."""

    num_features: int = 0  # width of forward_features' output
    feature_stride: int | None = None  # input pixels per cell of feature_maps (None: no such maps)
    # module prefixes of its pathways, slow first (SlowFast: ("slow", "fast")); () for one network
    pathways: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def feature_dims(self) -> list[int]:
        """Channels of each map `feature_maps` returns (one per pathway)."""
        return [self.num_features]

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The unpooled maps `(B, D, T', H', W')` (a list: one per pathway) that a box head pools."""
        raise ConfigError(f"{self.arch} gives no feature maps (it cannot be a detection backbone)")

    def drop_classifier(self) -> None:
        """Remove the classifier (a backbone inside a detector has its own head)."""
        self.head = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features `(B, num_features)`: everything before the classifier's head."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """Pooled features -> logits `(B, num_classes)`; `pre_logits`: the vector the classifier reads."""
        raise NotImplementedError


class StreamingModel(VideoModel):
    """A classifier that also runs on a stream: `state = init_state(B)`, then
    `logits, state = step(frames, state)` for each chunk of frames; `forward(clip)` equals
    streaming the clip from the zero state. With `batched`, one step takes the states of several
    streams of any ages at once (`stack_states`, then `unstack_state` after it)."""

    batched = True  # a step takes a batch of streams, each at its own frame count

    @staticmethod
    def stack_states(states: list) -> dict:
        """One state for a batch from per-stream states (each of batch 1; a scalar, such as a frame
        count, becomes one value per row)."""
        return {
            k: torch.cat([s[k].reshape(1) if s[k].ndim == 0 else s[k] for s in states]) for k in states[0]
        }

    @staticmethod
    def unstack_state(state, n: int) -> list[dict]:
        """Per stream, its batch-1 state from a batch's (the inverse of `stack_states`)."""
        return [{k: state[k][i : i + 1] for k in state} for i in range(n)]

    def init_state(self, batch_size: int, *, height: int | None = None, width: int | None = None) -> dict:
        """The zero state of a stream of `batch_size` videos of `height` x `width` frames."""
        raise NotImplementedError

    def step(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Feed frames `(B, C, t, H, W)`; the logits for everything seen so far and the next state."""
        raise NotImplementedError

    def step_features(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Feed frames as `step` does; each frame's own features `(B, t, num_features)` (what
        `forward_head` reads, before the pool over time) and the next state: pooling the last
        few frames' only says what happens now."""
        raise NotImplementedError

    def step_pooled(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Both at once: the pooled features of everything seen so far `(B, num_features)`, each
        frame's features `(B, t, num_features)`, and the next state."""
        raise NotImplementedError


class DetectionModel(_WithClassifier):
    """An action detector (AVA): clips `(B, C, T, H, W)` and person boxes `(K, 5)` in, one row of
    multi-label logits per box out. A box row is (batch index, x1, y1, x2, y2) in input pixels;
    `torch.sigmoid(logits)` are the per-class scores (PySlowFast's head applies it inside)."""

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TwoStreamModel(ModelBase):
    """Late fusion of an RGB and an optical-flow classifier with the same classes: `forward((rgb
    (B, 3, T, H, W), flow (B, 2, T, H, W)))` -> fused log-probabilities `(B, num_classes)`. Its
    clips need optical flow at the same positions (stored, or computed as `flow_method` says)."""

    flow_method: str = "tvl1"
    flow_short_side: int = 256


class ImageDetector(ModelBase):
    """Finds things in single frames (the SSD person detector): `detect_frames(frames)` with uint8
    frames `(N, H, W, 3)` (a list of arrays of any sizes, too) -> per frame `{"boxes" (K, 4)
    x1 y1 x2 y2 in [0, 1], "classes" (K,), "scores" (K,)}`. `forward(images)` is the network;
    `postprocess` (no weights) makes its input from frames (`images`) and decodes its outputs
    (`detections`), so a runtime's copy of the network detects the same way."""

    postprocess = None  # set by the architecture
    source_file: str | None = None  # the file the weights were read from in this session, if the
    # TFLite runtime can run it as shipped (`--backend litert`: the official SSD's uint8 file)

    def detect(self, images: torch.Tensor, **how) -> list[dict]:
        """Per image of the network's input, what was found in it (see the class); `how`: the
        postprocess's options (`per_class`, `only` one class, `max_detections`). The network runs
        on the model's device; what was found comes back on the CPU."""
        outputs = self(images.to(self.device))
        return self.postprocess.detections(*(x.float().cpu() for x in outputs), **how)

    def detect_frames(self, frames, **how) -> list[dict]:
        """Per frame, what was found in it (see the class and `detect`)."""
        return self.detect(self.postprocess.images(frames), **how)


class SpottingModel(ModelBase):
    """An event spotter on a frozen model's features (`vidrec.recognize.features`): `forward(f)`
    with features `(B, T, D)`, one step every 1/`config.rate` s -> per-step logits
    `(B, T, 1 + num_classes)`, index 0 "no event". `config.causal`: each step sees only the past
    (live use); `config.extractor`: the `load_model` source whose features it reads."""

    @property
    def in_features(self) -> int:
        """Features per step it reads (the extractor's pooled width)."""
        return self.config.in_features

    @property
    def receptive_field(self) -> int:
        """Steps each output sees (a causal spotter's last output over its last `receptive_field`
        steps is its output on the whole sequence)."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """A name per event class (not "no event"), in output order after it."""
        return super().class_names

    @torch.inference_mode()
    def probabilities(self, features: torch.Tensor) -> np.ndarray:
        """Per-step probabilities `(T, 1 + num_classes)` (column 0: no event) of one sequence of
        features `(T, D)`, as numpy on the CPU (what peak picking reads)."""
        x = torch.as_tensor(features)[None].to(self.device)
        return self(x).float().softmax(-1)[0].cpu().numpy()

    def check_features(self, x: torch.Tensor) -> None:
        """One clear error for features of the wrong layout or width."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(f"{self.arch} expects features (B, T, {self.in_features}), got {shape}")


class PretrainingModel(ModelBase):
    """A self-supervised model: `forward(x, generator=None)` draws its masks and returns a scalar
    loss. It has no classes; `to_classifier(num_classes)` gives the classifier it pretrains."""

    labels = None

    @property
    def num_classes(self) -> int:
        """Classifier outputs."""
        return 0

    def set_labels(self, labels: list[str] | None) -> None:
        if labels:
            raise ConfigError(f"{self.arch} is a pretraining model: it has no classes to name")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def draw_masks(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """The masks `forward` would draw for `x`: (encoder mask (B, N), True = hidden; the
        decoder's mask or None)."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None):
        """Predicted pixels of the hidden tokens the decoder sees `(B, N_pred, P*C)`, and which
        tokens those are."""
        raise NotImplementedError

    def to_classifier(self, num_classes: int, **overrides) -> tuple[VideoModel, dict]:
        """A classifier initialised from this model's encoder, and a report of the keys it
        `loaded`, the `new` ones (head, pooling norm) and those `dropped` (decoder, mask token)."""
        raise NotImplementedError


__all__ = [
    "CONFIG_NAME",
    "DetectionModel",
    "QUANT_GRIDS_NAME",
    "ImageDetector",
    "WEIGHTS_NAME",
    "ModelBase",
    "PretrainingModel",
    "SpottingModel",
    "StreamingModel",
    "TwoStreamModel",
    "VideoModel",
    "build_config",
    "build_model",
    "config_dict",
    "linear_head",
]
