"""A temporal event spotter on a frozen model's features, in the spirit of E2E-Spot (Hong et al.
2022, https://arxiv.org/abs/2207.10213) without its end-to-end backbone: a small 1-D
convolutional network over the features of a video's timeline (`vidrec.recognize.features`) that
gives, at every step, the probability of each event class and of none.

    features (B, T, D) ─ Linear D->H ─ LayerNorm ─ GELU
        └─ L residual blocks: Conv1d(H, H, k, dilation 2^i) ─ LayerNorm ─ GELU ─ dropout, + input
              offline: padded on both sides (sees ±(k-1)/2·2^i steps)
              causal:  padded on the left only (each step sees its past: live use, no look-ahead)
        └─ Linear H -> 1 + classes          logits (B, T, 1 + C); index 0 is "no event"

The receptive field is 1 + (k - 1)(2^L - 1) steps: 61 at k=5, L=4 (12 s at 5 steps/s).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.data.preprocessing import Preprocessing
from vidrec.models.base import SpottingModel, build_model


@dataclass(frozen=True)
class SpotterConfig:
    """The spotter's shape, and what its features are (saved with it: `vidrec spot` rebuilds them)."""

    num_classes: int = 5  # event classes (the network has one more output: no event)
    in_features: int = 480  # features per step (the extractor's pooled width)
    hidden: int = 128  # channels of the temporal network
    layers: int = 4  # residual blocks, dilations 1, 2, 4, ...
    kernel: int = 5  # temporal kernel (odd)
    dropout: float = 0.1
    causal: bool = False  # left padding only: each output sees the past (live spotting)
    rate: float = 5.0  # feature steps per second the spotter was trained at
    causal_features: bool = False  # clip extractors: clips ending at each step instead of centred
    extractor: str | None = None  # the `load_model` source of the features (its run records it)


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool, dropout: float):
        super().__init__()
        span = (kernel - 1) * dilation
        self.pad = (span, 0) if causal else (span // 2, span - span // 2)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.norm = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, T)
        y = self.conv(F.pad(x, self.pad))
        y = self.drop(F.gelu(self.norm(y.transpose(1, 2)).transpose(1, 2)))
        return x + y


class TemporalSpotter(SpottingModel):
    def __init__(self, config: SpotterConfig):
        super().__init__()
        self.config = config
        c = config
        self.proj = nn.Sequential(nn.Linear(c.in_features, c.hidden), nn.LayerNorm(c.hidden), nn.GELU())
        self.blocks = nn.Sequential(
            *(_Block(c.hidden, c.kernel, 2**i, c.causal, c.dropout) for i in range(c.layers))
        )
        self.head = nn.Linear(c.hidden, 1 + c.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_features(x)
        h = self.proj(x).transpose(1, 2)  # (B, H, T)
        return self.head(self.blocks(h).transpose(1, 2))  # (B, T, 1 + C)

    @property
    def receptive_field(self) -> int:
        return 1 + (self.config.kernel - 1) * (2**self.config.layers - 1)


def _build(arch: str, defaults: dict, overrides: dict) -> TemporalSpotter:
    if overrides.get("kernel", defaults.get("kernel", 5)) % 2 == 0:
        from vidrec.errors import ConfigError

        raise ConfigError("the spotter's kernel must be odd")
    return build_model(
        TemporalSpotter, SpotterConfig, arch=arch, defaults=defaults, overrides=overrides,
        preprocessing=Preprocessing(),
    )  # fmt: skip


def spotter_conv(**overrides) -> TemporalSpotter:
    """Two-sided temporal convolutions: each step sees about ±6 s of features (offline spotting)."""
    return _build("spotter_conv", {}, overrides)


def spotter_conv_causal(**overrides) -> TemporalSpotter:
    """Left-padded convolutions: each step sees its last 12 s only (live spotting, no look-ahead)."""
    return _build("spotter_conv_causal", {"causal": True, "causal_features": True}, overrides)


ARCHITECTURES = [spotter_conv, spotter_conv_causal]

__all__ = ["ARCHITECTURES", "SpotterConfig", "TemporalSpotter", "spotter_conv", "spotter_conv_causal"]
