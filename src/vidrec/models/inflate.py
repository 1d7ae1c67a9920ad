"""Inflation: turn a 2D image network's weights into a 3D video network's (Carreira & Zisserman
2017, section 2.2). A k x k kernel becomes t x k x k either by repeating it t times and dividing
by t ("replicate": a video of one repeated image, the "boring video", then gives exactly the 2D
activations, the fixed point the paper uses) or by putting it in the centre frame with zeros
elsewhere ("centre": each frame is first seen on its own). Batch norm and linear weights copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import VideoModel
from vidrec.models.i3d import i3d_inception_rgb, i3d_r50, i3d_small
from vidrec.models.tsn import TSN

MODES = ("replicate", "centre")


def inflate_weight(weight: torch.Tensor, time: int, *, mode: str = "replicate") -> torch.Tensor:
    """`(O, I, H, W)` -> `(O, I, time, H, W)`."""
    if mode == "replicate":
        return weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
    if mode == "centre":
        out = weight.new_zeros(weight.shape[:2] + (time,) + weight.shape[2:])
        out[:, :, time // 2] = weight
        return out
    raise ConfigError(f"unknown inflation mode '{mode}' (valid: {', '.join(MODES)})")


@dataclass
class InflationReport:
    """What happened to every key: nothing is skipped silently."""

    inflated: list[str] = field(default_factory=list)  # 3D keys filled from 2D kernels
    copied: list[str] = field(default_factory=list)  # 3D keys copied as they are (norms, classifier)
    unused_2d: dict[str, str] = field(default_factory=dict)  # 2D key -> why it has no 3D counterpart
    not_loaded_3d: list[str] = field(default_factory=list)  # 3D keys left at their initialisation

    def summary(self) -> str:
        """A few lines saying what was inflated, copied and left out."""
        lines = [f"inflated {len(self.inflated)} kernels, copied {len(self.copied)} tensors"]
        if self.unused_2d:
            lines.append(
                f"2D keys not used ({len(self.unused_2d)}): "
                + ", ".join(f"{k} ({why})" for k, why in list(self.unused_2d.items())[:8])
            )
        if self.not_loaded_3d:
            lines.append(
                f"3D keys left initialised ({len(self.not_loaded_3d)}): {', '.join(self.not_loaded_3d[:8])}"
            )
        return "\n".join(lines)


def inflate_state_dict(
    state_2d: dict[str, torch.Tensor],
    model: VideoModel,
    rename: Callable[[str], str | None],
    *,
    mode: str = "replicate",
) -> InflationReport:
    """Load `state_2d` into the 3D `model`, renaming each 2D key with `rename` (None: no
    counterpart). 4-D kernels are inflated to the 3D kernel's time extent; a linear classifier
    becomes a 1x1x1 conv where the model has one. Shapes are asserted."""
    report = InflationReport()
    target = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in state_2d.items():
        name = rename(key)
        if name is None:
            report.unused_2d[key] = "no 3D counterpart"
            continue
        if name not in target:
            report.unused_2d[key] = f"3D model has no '{name}'"
            continue
        want = target[name].shape
        if value.ndim == 4 and len(want) == 5:
            value = inflate_weight(value, want[2], mode=mode)
            report.inflated.append(name)
        else:
            if value.ndim == 2 and len(want) == 5:  # linear classifier -> 1x1x1 conv
                value = value[:, :, None, None, None]
            report.copied.append(name)
        if value.shape != want:
            if name.startswith("head."):
                report.unused_2d[key] = (
                    f"classifier shape {tuple(value.shape)} != {tuple(want)} (other class count)"
                )
                report.copied.remove(name)
                continue
            raise VidrecError(
                f"inflating {key} -> {name}: shape {tuple(value.shape)} does not fit {tuple(want)}"
            )
        loaded[name] = value.to(target[name].dtype)
    report.not_loaded_3d = [k for k in target if k not in loaded and not k.endswith("num_batches_tracked")]
    model.load_state_dict(loaded, strict=False)
    return report


# torchvision GoogLeNet -> Inception I3D: the stem and inception blocks in order.
_GOOGLENET_BLOCKS = {
    "conv1": "conv1a",
    "conv2": "conv2b",
    "conv3": "conv2c",
    "inception3a": "mixed3b",
    "inception3b": "mixed3c",
    "inception4a": "mixed4b",
    "inception4b": "mixed4c",
    "inception4c": "mixed4d",
    "inception4d": "mixed4e",
    "inception4e": "mixed4f",
    "inception5a": "mixed5b",
    "inception5b": "mixed5c",
}
# torchvision branch numbering (1..4, sequential inside) -> vidrec's (0..3).
_GOOGLENET_BRANCHES = {
    "branch1": "branch0",
    "branch2.0": "branch1.0",
    "branch2.1": "branch1.1",
    "branch3.0": "branch2.0",
    "branch3.1": "branch2.1",
    "branch4.1": "branch3.1",
}


def googlenet_to_i3d_key(key: str) -> str | None:
    """torchvision GoogLeNet key -> Inception I3D key (None: no counterpart)."""
    if key.startswith("fc."):
        return "head." + key[3:]
    m = re.match(r"(conv\d|inception\d[a-e])\.(?:(branch\d(?:\.\d)?)\.)?(conv|bn)\.(.+)$", key)
    if not m:
        return None  # aux1/aux2 classifiers: the 3D model has none
    block, branch, layer, rest = m.groups()
    prefix = f"features.{_GOOGLENET_BLOCKS[block]}"
    if branch:
        prefix += "." + _GOOGLENET_BRANCHES[branch]
    return f"{prefix}.{layer}.{rest}"


def resnet_to_i3d_key(key: str) -> str | None:
    """torchvision ResNet-50 key -> I3D-ResNet-50 key (None: no counterpart)."""
    if key.startswith("fc."):
        return "head." + key[3:]
    if key.startswith(("conv1.", "bn1.")):
        return "stem." + key.replace("conv1.", "conv.").replace("bn1.", "bn.")
    m = re.match(r"(layer\d\.\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$", key)
    if not m:
        return None
    block, layer, rest = m.groups()
    renamed = {
        "conv1": "conv_a",
        "bn1": "bn_a",
        "conv2": "conv_b",
        "bn2": "bn_b",
        "conv3": "conv_c",
        "bn3": "bn_c",
        "downsample.0": "shortcut.0",
        "downsample.1": "shortcut.1",
    }[layer]
    return f"{block}.{renamed}.{rest}"


def _state_of(source: nn.Module | dict) -> dict[str, torch.Tensor]:
    return source.state_dict() if isinstance(source, nn.Module) else dict(source)


def inflate_googlenet(
    source: nn.Module | dict, *, num_classes: int = 1000, mode: str = "replicate", **overrides
) -> tuple[VideoModel, InflationReport]:
    """`i3d_inception_rgb` from torchvision's GoogLeNet (a model or its state dict). The
    ImageNet classifier is kept when `num_classes` is 1000.

    torchvision pads the 7x7/2 stem symmetrically (3, 3); I3D keeps TensorFlow 'SAME' padding,
    which is (3, 3) for odd input sizes but (2, 3) for even ones, so at 224 px the inflated stem
    sees the image shifted by one pixel (harmless for fine-tuning; the fixed-point test uses 223
    px). torchvision's pretrained GoogLeNet expects inputs scaled to [-1, 1] (its
    `transform_input` converts ImageNet-normalised input to that), which is I3D's preprocessing."""
    model = i3d_inception_rgb(num_classes=num_classes, **overrides)
    return model, inflate_state_dict(_state_of(source), model, googlenet_to_i3d_key, mode=mode)


def inflate_resnet50(
    source: nn.Module | dict, *, num_classes: int = 1000, mode: str = "replicate", **overrides
) -> tuple[VideoModel, InflationReport]:
    """`i3d_r50` from torchvision's ResNet-50 (a model or its state dict)."""
    model = i3d_r50(num_classes=num_classes, **overrides)
    return model, inflate_state_dict(_state_of(source), model, resnet_to_i3d_key, mode=mode)


def inflate_tsn(
    source: TSN, *, num_classes: int | None = None, mode: str = "replicate", **overrides
) -> tuple[VideoModel, InflationReport]:
    """`i3d_small` from a trained `tsn_small` (its 2D frame encoder and, with the same class
    count, its classifier): the keys are the same, only the kernels gain time."""
    if source.config.backbone != "small":
        raise ConfigError(f"inflate_tsn takes a tsn_small model, got backbone '{source.config.backbone}'")
    shape = {"width": source.config.width, "in_channels": source.config.in_channels}
    for key, value in shape.items():
        if overrides.get(key, value) != value:
            raise ConfigError(f"inflate_tsn: {key}={overrides[key]} differs from the tsn_small's {value}")
    model = i3d_small(
        num_classes=source.num_classes if num_classes is None else num_classes, **{**overrides, **shape}
    )
    return model, inflate_state_dict(source.state_dict(), model, lambda key: key, mode=mode)
