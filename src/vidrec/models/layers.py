"""Layers shared by the 3D CNN families: TensorFlow-style 'SAME' convolutions and pools (so
weights converted from TensorFlow line up), conv-BN-ReLU units, and the 3D ResNet bottleneck."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.errors import ConfigError

TEMPORAL_PADDINGS = ("zeros", "replicate")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output = ceil(size / stride); the extra pixel goes at the end."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], temporal: str = "zeros"
) -> torch.Tensor:
    """Pad `(B, C, T, H, W)` for a 'SAME' window. `temporal="replicate"` repeats the first and last
    frames instead of zeros, so a video of one repeated image stays one repeated image."""
    (t0, t1), (h0, h1), (w0, w1) = (same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride))
    if temporal == "replicate" and (t0 or t1):
        x = F.pad(x, (0, 0, 0, 0, t0, t1), mode="replicate")
        t0 = t1 = 0
    if any((t0, t1, h0, h1, w0, w1)):
        x = F.pad(x, (w0, w1, h0, h1, t0, t1))
    return x


class SameConv3d(nn.Conv3d):
    """Conv3d with TensorFlow 'SAME' padding computed from the input size at run time."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        *,
        stride=1,
        bias: bool = False,
        temporal_padding: str = "zeros",
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)
        self.temporal_padding = temporal_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if all(k == 1 for k in self.kernel_size):
            return super().forward(x)
        return super().forward(pad_same(x, self.kernel_size, self.stride, self.temporal_padding))


class SameMaxPool3d(nn.Module):
    """Max pool with 'SAME' padding. Padding with zeros (not -inf) is exact here because every
    pool follows a ReLU, and it is what pytorch-i3d does."""

    def __init__(
        self,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int],
        *,
        temporal_padding: str = "zeros",
    ):
        super().__init__()
        self.kernel_size, self.stride, self.temporal_padding = kernel_size, stride, temporal_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.temporal_padding)
        return F.max_pool3d(x, self.kernel_size, self.stride)


class ConvBNReLU(nn.Module):
    """conv -> batch norm -> ReLU (the Unit3D of kinetics-i3d)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=(1, 1, 1),
        *,
        stride=(1, 1, 1),
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        temporal_padding: str = "zeros",
    ):
        super().__init__()
        self.conv = SameConv3d(
            in_channels, out_channels, kernel_size, stride=stride, temporal_padding=temporal_padding
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Bottleneck3d(nn.Module):
    """ResNet bottleneck with a temporal kernel in its first conv (Wang et al.'s I3D-ResNet,
    SlowFast's pathways): 1x1x1 -> (kt x 1 x 1) ... -> 1x3x3 (spatial stride) -> 1x1x1, + shortcut.

        x ──> conv_a (kt,1,1) ─> conv_b (1,3,3)/s ─> conv_c (1,1,1) ──(+)──> ReLU
        └──────────── shortcut (1x1x1 /s, when shape changes) ─────────┘

    `spatial_dilation` dilates conv_b (PySlowFast's AVA models: res5 at stride 1, dilation 2)."""

    def __init__(
        self,
        in_channels: int,
        inner: int,
        out_channels: int,
        *,
        temporal_kernel: int = 1,
        spatial_stride: int = 1,
        spatial_dilation: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        kt, d = temporal_kernel, spatial_dilation
        self.conv_a = nn.Conv3d(in_channels, inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
        self.bn_a = nn.BatchNorm3d(inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_b = nn.Conv3d(
            inner,
            inner,
            (1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, d, d),
            dilation=(1, d, d),
            bias=False,
        )
        self.bn_b = nn.BatchNorm3d(inner, eps=bn_eps, momentum=bn_momentum)
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.bn_c.final_bn = True  # zero-initialised by the model: each block starts as identity
        self.shortcut = None
        if in_channels != out_channels or spatial_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(
                    in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride), bias=False
                ),
                nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn_a(self.conv_a(x)), inplace=True)
        y = F.relu(self.bn_b(self.conv_b(y)), inplace=True)
        y = self.bn_c(self.conv_c(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)), inplace=True)


NONLOCAL_INSTANTIATIONS = ("dot_product", "softmax")


class NonLocal3d(nn.Module):
    """Non-local block (Wang et al., CVPR 2018), as PySlowFast's `Nonlocal`: every position attends
    to every position of a max-pooled copy of the map; a 1x1x1 conv and BN (zero-initialised as the
    last BN of a block) bring the result back onto the input.

        x ─> theta ───────────────┐
        └─> pool ─> phi, g ─> softmax(theta phi / sqrt(d)) g, or (theta phi / N) g ─> out ─> bn ─(+ x)

    "dot_product" is linear in theta and phi, so it is computed as theta (phi^T g) / N: the same
    numbers without the (THW x THW) affinity matrix. "softmax" goes through torch's SDPA."""

    def __init__(
        self,
        channels: int,
        *,
        inner: int | None = None,
        pool: tuple[int, int, int] = (1, 1, 1),
        instantiation: str = "dot_product",
    ):
        super().__init__()
        if instantiation not in NONLOCAL_INSTANTIATIONS:
            raise ConfigError(
                f"non-local instantiation {instantiation!r}: use one of {NONLOCAL_INSTANTIATIONS}"
            )
        inner = inner or channels // 2
        self.instantiation = instantiation
        self.conv_theta, self.conv_phi, self.conv_g = (nn.Conv3d(channels, inner, 1) for _ in range(3))
        self.conv_out = nn.Conv3d(inner, channels, 1)
        self.bn = nn.BatchNorm3d(channels)
        self.bn.final_bn = True  # PySlowFast zero-initialises it: the block starts as identity
        self.pool = nn.MaxPool3d(pool, stride=pool) if any(k > 1 for k in pool) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        theta = self.conv_theta(x).flatten(2).transpose(1, 2)  # (B, THW, d)
        y = x if self.pool is None else self.pool(x)
        phi = self.conv_phi(y).flatten(2).transpose(1, 2)  # (B, N, d), N pooled positions
        g = self.conv_g(y).flatten(2).transpose(1, 2)  # (B, N, d)
        if self.instantiation == "softmax":
            out = F.scaled_dot_product_attention(theta, phi, g)  # scale 1/sqrt(d), as PySlowFast
        else:
            out = theta @ (phi.transpose(1, 2) @ g) / phi.shape[1]
        out = out.transpose(1, 2).reshape(b, -1, t, h, w)  # (B, d, T, H, W)
        return x + self.bn(self.conv_out(out))


def resnet_stem(in_channels: int, out_channels: int, *, temporal_kernel: int) -> nn.Sequential:
    """kt x 7 x 7 conv with spatial stride 2, BN, ReLU, 1x3x3 max pool with spatial stride 2."""
    return nn.Sequential(
        OrderedDict(
            [
                (
                    "conv",
                    nn.Conv3d(
                        in_channels,
                        out_channels,
                        (temporal_kernel, 7, 7),
                        stride=(1, 2, 2),
                        padding=(temporal_kernel // 2, 3, 3),
                        bias=False,
                    ),
                ),
                ("bn", nn.BatchNorm3d(out_channels)),
                ("relu", nn.ReLU(inplace=True)),
                ("pool", nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
            ]
        )
    )


def res_stage(
    in_channels: int,
    inner: int,
    out_channels: int,
    *,
    temporal_kernels: list[int],
    spatial_stride: int,
    spatial_dilation: int = 1,
    nonlocal_after: tuple[int, ...] = (),
    nonlocal_pool: tuple[int, int, int] = (1, 1, 1),
    nonlocal_instantiation: str = "dot_product",
) -> nn.Sequential:
    """One ResNet stage: bottlenecks with the given temporal kernels; the first one strides. A
    non-local block follows each block listed in `nonlocal_after`, named `nonlocal{i}` so that the
    blocks keep their numbers (`layer3.7` is block 7 with or without non-local blocks)."""
    if missing := set(nonlocal_after) - set(range(len(temporal_kernels))):
        raise ConfigError(
            f"non-local blocks after {sorted(missing)}: the stage has {len(temporal_kernels)} blocks"
        )
    layers = OrderedDict()
    for i, kt in enumerate(temporal_kernels):
        layers[str(i)] = Bottleneck3d(
            in_channels if i == 0 else out_channels,
            inner,
            out_channels,
            temporal_kernel=kt,
            spatial_stride=spatial_stride if i == 0 else 1,
            spatial_dilation=spatial_dilation,
        )
        if i in nonlocal_after:
            layers[f"nonlocal{i}"] = NonLocal3d(
                out_channels, pool=nonlocal_pool, instantiation=nonlocal_instantiation
            )
    return nn.Sequential(layers)


# Trained from scratch on SynthMotion, PySlowFast's zero-initialised final BN (each block starts as
# identity) holds these one-block-per-stage networks at chance: i3d_resnet_small was at 11% test
# top-1 after 300 steps with it and at 68% without (batch 16, AdamW 2e-3); a normal(0.01) head
# slows the start too (i3d_small: 55% against 76% after 400 steps). Both are off at this scale.
FROM_SCRATCH_INIT = {"zero_init_final_bn": False, "head_init_std": None}


def init_cnn_weights(model: nn.Module, *, zero_init_final_bn: bool = True) -> None:
    """PySlowFast's initialisation: Kaiming-normal convs, BN weight 1 (0 for the last BN of each
    residual block unless `zero_init_final_bn` is off, `RESNET.ZERO_INIT_FINAL_BN`). The head is
    initialised where it is made (`linear_head`)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 0.0 if zero_init_final_bn and getattr(m, "final_bn", False) else 1.0)
            nn.init.zeros_(m.bias)
