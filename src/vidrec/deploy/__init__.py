"""Deployable forms of a model, each a conversion that returns the model with some modules
swapped (never a branch inside a model's `forward`):

- `fuse_conv_bn(model)`: every eval-mode batch norm folded into the convolution before it;
- `to_channels_last(model)`: 3D convolution weights in channels-last memory format (PyTorch then
  runs those convolutions channels-last, whatever the input's layout);
- `to_onednn_linear(model)`: linear layers (and VideoMAE's q, k, v products) computed by oneDNN's
  inner product instead of the BLAS sgemm (MKL's runs at about half speed on AMD EPYC), for
  float32 CPU inference;
- `to_onednn_conv3d(model)`: every 3D convolution by oneDNN, small ones included (PyTorch sends
  those to a naive kernel), weights in oneDNN's layout, and ResNet bottlenecks' ReLUs and
  residual adds inside their convolutions (`vidrec.deploy.onednn`);
- `optimize_for_inference(model)`: all four, in eval mode (what `vidrec eval` and `predict` run);
- `to_int8(model, grids)`: a copy that computes as the int8 TFLite runtime of the file the weights
  came from does, bit for bit (MoViNet imported from an int8 .tflite file);
- `on_uint8_grids(model)`: a copy whose layers compute on the uint8 activation grids of the file
  the weights came from (the SSD person detector).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vidrec.deploy.grid import on_uint8_grids
from vidrec.deploy.onednn import (
    OneDNNLinear,
    onednn_available,
    onednn_linear,
    to_onednn_conv3d,
    to_onednn_linear,
)
from vidrec.deploy.swap import swap_modules
from vidrec.errors import ConfigError
from vidrec.models.base import ModelBase

_FUSABLE = ((nn.Conv3d, nn.BatchNorm3d), (nn.Conv2d, nn.BatchNorm2d))
# Names of (conv, batch norm) siblings in vidrec's blocks and in torchvision's ResNets.
_CONV_BN_PAIRS = (
    ("conv", "bn"),
    ("conv_a", "bn_a"),
    ("conv_b", "bn_b"),
    ("conv_c", "bn_c"),
    ("0", "1"),
    ("conv1", "bn1"),
    ("conv2", "bn2"),
    ("conv3", "bn3"),
)


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm into the convolution before it, in place: the conv becomes a
    conv with bias and the norm an identity. Numerically the same up to rounding; inference only."""
    if model.training:
        raise ConfigError("fuse_conv_bn is for eval mode: batch statistics would be lost (call model.eval())")

    def convert(path: str, module: nn.Module) -> nn.Module | None:
        pairs = list(_CONV_BN_PAIRS)
        if isinstance(module, nn.Sequential):  # every conv directly followed by its norm
            names = [name for name, _ in module.named_children()]
            pairs += list(zip(names, names[1:]))
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if any(isinstance(conv, c) and isinstance(bn, b) for c, b in _FUSABLE):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
        return None  # parents are folded in place; the walk goes on into their children

    swap_modules(model, convert)
    convert("", model)  # the model's own direct children
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """3D convolution weights in channels-last format, in place (faster 3D convolutions on CPU:
    bench/slowfast.py). A contiguous input is fine: the convolutions follow their weights."""

    def convert(path: str, module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
        return None

    return swap_modules(model, convert)


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Eval mode, batch norm folded into convolutions, channels-last 3D weights, oneDNN linear
    layers (in place)."""
    model = to_channels_last(fuse_conv_bn(model.eval()))
    return to_onednn_conv3d(to_onednn_linear(model)) if onednn_available() else model


def to_int8(model: ModelBase, grids: dict | None = None) -> ModelBase:
    """A copy of `model` computing as the int8 runtime of the file its weights came from: `grids`,
    or the model's own `quant_grids` (set when it was loaded from an int8 .tflite file or a
    directory converted from one). The grids describe the imported weights: after fine-tuning
    they no longer apply."""
    from vidrec.deploy.movinet_int8 import to_int8_movinet

    if "int8" not in model.forms:
        raise ConfigError(
            f"{model.arch} has no int8 form (MoViNet models imported from int8 .tflite files do)"
        )
    grids = grids if grids is not None else model.quant_grids
    if not grids:
        raise ConfigError(
            f"{model.arch} has no int8 grids: load it from an int8 .tflite file (or a directory "
            f"vidrec convert made from one)"
        )
    return to_int8_movinet(model, grids)


__all__ = [
    "OneDNNLinear",
    "fuse_conv_bn",
    "onednn_available",
    "onednn_linear",
    "on_uint8_grids",
    "optimize_for_inference",
    "swap_modules",
    "to_channels_last",
    "to_int8",
    "to_onednn_conv3d",
    "to_onednn_linear",
]
