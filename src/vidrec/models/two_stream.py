"""Two-stream I3D (Carreira & Zisserman 2017, section 2.5): an RGB network and an optical-flow
network see the same clip positions; their class probabilities are averaged with weights (late
fusion), then averaged over clips for the video-level prediction.

    video ─┬─ RGB frames at clip indices ───────────> RGB net ──> softmax ─┐
           └─ flow at the same indices (stored, or ──> flow net ─> softmax ─┴─ w_rgb, w_flow ─> log
              computed on the fly) ──────────────────┘

`forward((rgb, flow))` returns the log of the fused probabilities: logits whose softmax is exactly
the fusion, so every tool that reads logits (evaluation, prediction) works unchanged.
"""

from __future__ import annotations

import json
import os

import torch

from vidrec.errors import ConfigError
from vidrec.models.base import CONFIG_NAME, TwoStreamModel, VideoModel
from vidrec.utils import atomic_write_text

ARCH = "two_stream"


class TwoStream(TwoStreamModel):
    """Late fusion of an RGB and a flow model with the same classes. Input: `(rgb (B, 3, T, H, W),
    flow (B, 2, T, H, W))`; output: fused log-probabilities `(B, num_classes)`."""

    arch = ARCH

    def __init__(
        self,
        rgb: VideoModel,
        flow: VideoModel,
        *,
        weights: tuple[float, float] = (0.5, 0.5),
        flow_method: str = "tvl1",
        flow_short_side: int = 256,
    ):
        super().__init__()
        if rgb.num_classes != flow.num_classes:
            raise ConfigError(f"RGB model has {rgb.num_classes} classes, flow model {flow.num_classes}")
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"fusion weights must be two values >= 0, not both 0, got {weights}")
        self.rgb, self.flow = rgb, flow
        total = float(sum(weights))
        self.weights = (weights[0] / total, weights[1] / total)
        self.flow_method, self.flow_short_side = flow_method, flow_short_side
        self.labels = rgb.labels or flow.labels
        self.preprocessing = rgb.preprocessing

    @property
    def num_classes(self) -> int:
        """Classes of both streams."""
        return self.rgb.num_classes

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            raise ConfigError("a two-stream model takes (rgb, flow) clips")
        rgb, flow = inputs
        probs = self.weights[0] * self.rgb(rgb).float().softmax(-1) + self.weights[1] * self.flow(
            flow
        ).float().softmax(-1)
        return probs.clamp_min(1e-30).log()  # (B, K): softmax gives the fused probabilities back

    def config_json(self) -> dict:
        return {
            "architecture": ARCH,
            "weights": list(self.weights),
            "flow_method": self.flow_method,
            "flow_short_side": self.flow_short_side,
            "labels": self.labels,
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """`rgb/` and `flow/` model directories, then the fusion settings in `config.json`."""
        directory = os.fspath(directory)
        self.rgb.save_pretrained(os.path.join(directory, "rgb"))
        self.flow.save_pretrained(os.path.join(directory, "flow"))
        atomic_write_text(
            os.path.join(directory, CONFIG_NAME), json.dumps(self.config_json(), indent=2) + "\n"
        )


__all__ = ["ARCH", "TwoStream"]
