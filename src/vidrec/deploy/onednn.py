"""oneDNN kernels for float32 CPU inference, as conversions (`optimize_for_inference` applies them):

- `to_onednn_linear`: linear layers (and VideoMAE's q, k, v products) by oneDNN's inner product,
  not the BLAS sgemm (MKL's runs at about half speed on AMD EPYC; bench/inference.py prints the
  GEMM peak of each);
- `to_onednn_conv3d`: every 3D convolution by oneDNN with its weights reordered once into the
  kernel's own layout (small ones included: PyTorch sends those to a naive kernel), and each
  batch-norm-folded ResNet bottleneck's ReLUs and residual add done inside its convolutions
  (oneDNN post-ops) instead of as passes of their own over the activations.

Each takes PyTorch's own path for anything else: gradients, autocast, other dtypes and devices,
tracing, compiling and export. Same results up to float32 rounding (sums in another order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.deploy.swap import swap_modules
from vidrec.models.layers import Bottleneck3d


def _fast_path(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """float32 CPU inference outside tracing, export and autocast: where oneDNN's kernels are used."""
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
    )


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` by oneDNN's inner product for float32 CPU inference; anything
    else (gradients, autocast, another dtype or device, tracing and export) takes F.linear."""
    if not _fast_path(x, weight):
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class OneDNNLinear(nn.Module):
    """An nn.Linear's parameters (the same tensors, the same state-dict keys) computed by
    `onednn_linear`."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return onednn_linear(x, self.weight, self.bias)


class _OneDNNConv:
    """A Conv3d's convolution (`_conv_forward`, after any padding of its own) by oneDNN. PyTorch
    sends small 3D convolutions (the Fast pathway's 8 channels) to its naive `slow_conv3d`: a
    heuristic written for 2D inputs (N*C*H*W <= 20480) reads T as H. The weights are reordered
    into oneDNN's blocked layout once per input shape and kept (`aten.mkldnn_convolution`
    reorders them on every call: 6% of SlowFast R50), at the cost of a second copy of them."""

    def __init__(self, conv: nn.Conv3d):
        self.conv = conv
        self._packed: tuple = (None, None)  # (key, weight in oneDNN's layout): one entry, swapped whole

    def __getstate__(self) -> dict:
        return {"conv": self.conv}  # the packed weight is an opaque tensor: made again after a copy

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["conv"])

    def packed(self, x: torch.Tensor) -> torch.Tensor:
        """The conv's weight in the layout oneDNN's kernel for `x`'s shape wants; made again when
        the weight changes in place (its version) or is replaced."""
        c = self.conv
        key = (tuple(x.shape), c.weight.data_ptr(), c.weight._version)
        cached_key, cached = self._packed
        if cached_key != key:
            cached = torch.ops.mkldnn._reorder_convolution_weight(
                c.weight, list(c.padding), list(c.stride), list(c.dilation), c.groups, list(x.shape)
            )
            self._packed = (key, cached)
        return cached

    def run(self, x: torch.Tensor, act: str = "none", add: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution of `x` by oneDNN, then (in the same kernel) `+ add` and `act`."""
        c = self.conv
        args = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
        weight = self.packed(x)
        if add is None:
            return torch.ops.mkldnn._convolution_pointwise(x, weight, c.bias, *args, act, [], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, add, weight, c.bias, *args, "add", None, act, [], ""
        )

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        c = self.conv
        if not _fast_path(x, weight) or weight is not c.weight or bias is not c.bias:
            return type(c)._conv_forward(c, x, weight, bias)
        return self.run(x)


class _FusedBottleneck:
    """A batch-norm-folded `Bottleneck3d`'s forward with its two ReLUs and its residual add + ReLU
    inside the convolutions (oneDNN post-ops): three kernels, not six passes. Same numbers."""

    def __init__(self, block: Bottleneck3d):
        self.block = block

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        if not _fast_path(x, b.conv_a.weight):
            return type(b).forward(b, x)
        y = b.conv_a._conv_forward.run(x, "relu")
        y = b.conv_b._conv_forward.run(y, "relu")
        shortcut = x if b.shortcut is None else b.shortcut(x)
        return b.conv_c._conv_forward.run(y, "relu", add=shortcut)


def _folded(block: Bottleneck3d) -> bool:
    """Whether `block`'s batch norms are folded into its convolutions (`fuse_conv_bn`)."""
    norms = [block.bn_a, block.bn_b, block.bn_c, *([] if block.shortcut is None else [block.shortcut[1]])]
    return all(isinstance(n, nn.Identity) for n in norms)


def to_onednn_conv3d(model: nn.Module) -> nn.Module:
    """Every zero-padded Conv3d computes its convolution with oneDNN in float32 CPU inference, in
    place: SlowFast's Fast pathway spent 14% of the model's time in PyTorch's naive kernel; and
    every folded bottleneck runs as `_FusedBottleneck` (its ReLUs and residual add as post-ops:
    fewer passes over the activations; bench/inference.py times it). The same results (1e-7); the
    state dict is untouched."""
    for module in model.modules():
        if (
            isinstance(module, nn.Conv3d)
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        ):
            module._conv_forward = _OneDNNConv(module)
    for module in model.modules():
        if isinstance(module, Bottleneck3d) and _folded(module):
            parts = [module.conv_a, module.conv_b, module.conv_c]
            # plain convolutions only: a subclass may pad or compute in its own forward
            if all(
                type(c) is nn.Conv3d and isinstance(vars(c).get("_conv_forward"), _OneDNNConv) for c in parts
            ):
                module.forward = _FusedBottleneck(module)
    return model


def onednn_available() -> bool:
    """Whether this PyTorch has oneDNN's linear and convolution ops (x86 and ARM builds do)."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def to_onednn_linear(model: nn.Module) -> nn.Module:
    """Every nn.Linear swapped for a `OneDNNLinear` on the same parameters, and every module that
    makes products with a `linear` function (VideoMAE's attention) given `onednn_linear`, in
    place. The same results up to rounding (float32 sums in another order: about 1e-6)."""

    def convert(path: str, module: nn.Module) -> nn.Module | None:
        if getattr(type(module), "linear", None) is F.linear:  # its own products, made by F.linear
            module.linear = onednn_linear
        return OneDNNLinear(module) if type(module) is nn.Linear else None

    return swap_modules(model, convert)


__all__ = ["OneDNNLinear", "onednn_available", "onednn_linear", "to_onednn_conv3d", "to_onednn_linear"]
