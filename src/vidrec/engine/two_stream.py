"""Two-stream I3D (Carreira & Zisserman 2017, section 2.5): an RGB network and an optical-flow
network see the same clip positions; their class scores are averaged with weights (late fusion),
then averaged over clips for the video-level prediction.

    video ─┬─ RGB frames at clip indices ───────────> RGB net ──> softmax ─┐
           └─ flow at the same indices (stored, or ──> flow net ─> softmax ─┴─ w_rgb, w_flow ─> mean over clips
              computed on the fly) ──────────────────┘
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from vidrec.data.datasets import VideoClipDataset, VideoRecord
from vidrec.data.flow import _cv2, flow_estimator, flow_file_name, quantize, resize_short_side_np
from vidrec.data.sampling import uniform_clip_indices
from vidrec.data.transforms import EvalTransform, frames_to_clip
from vidrec.engine.evaluate import video_scores
from vidrec.errors import ConfigError, VidrecError
from vidrec.io import FlowReader
from vidrec.models.base import VideoModel
from vidrec.utils import atomic_write_text

ARCH = "two_stream"


class TwoStream(nn.Module):
    """Late fusion of an RGB and a flow model with the same classes."""

    arch = ARCH

    def __init__(self, rgb: VideoModel, flow: VideoModel, *, weights: tuple[float, float] = (0.5, 0.5),
                 flow_method: str = "tvl1", flow_short_side: int = 256):
        super().__init__()
        if rgb.num_classes != flow.num_classes:
            raise ConfigError(f"RGB model has {rgb.num_classes} classes, flow model {flow.num_classes}")
        if min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"fusion weights must be >= 0 and not all 0, got {weights}")
        self.rgb, self.flow = rgb, flow
        total = float(sum(weights))
        self.weights = (weights[0] / total, weights[1] / total)
        self.flow_method, self.flow_short_side = flow_method, flow_short_side
        self.labels = rgb.labels or flow.labels
        self.preprocessing = rgb.preprocessing

    @property
    def num_classes(self) -> int:
        return self.rgb.num_classes

    @torch.no_grad()
    def score_views(self, views: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`(rgb (B, V, 3, T, H, W), flow (B, V, 2, T, H, W))` -> fused probabilities `(B, K)`."""
        rgb, flow = views
        return self.weights[0] * video_scores(self.rgb, rgb) + self.weights[1] * video_scores(self.flow, flow)

    def eval_dataset(self, records: list[VideoRecord], *, num_clips: int = 1, num_crops: int = 1,
                     flow_dir: str | None = None) -> TwoStreamDataset:
        return TwoStreamDataset(records, model=self, num_clips=num_clips, num_crops=num_crops, flow_dir=flow_dir)

    def save_pretrained(self, directory: str) -> None:
        self.rgb.save_pretrained(os.path.join(directory, "rgb"))
        self.flow.save_pretrained(os.path.join(directory, "flow"))
        config = {"architecture": ARCH, "weights": list(self.weights), "flow_method": self.flow_method,
                  "flow_short_side": self.flow_short_side, "labels": self.labels}
        atomic_write_text(os.path.join(directory, "config.json"), json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str, config: dict) -> TwoStream:
        from vidrec.hub import load_model

        return cls(load_model(os.path.join(directory, "rgb")), load_model(os.path.join(directory, "flow")),
                   weights=tuple(config.get("weights", (0.5, 0.5))), flow_method=config.get("flow_method", "tvl1"),
                   flow_short_side=config.get("flow_short_side", 256))


class TwoStreamDataset(VideoClipDataset):
    """Test views of both streams at the same clip positions: `(rgb_views, flow_views)`. Flow is
    read from `flow_dir` (as written by `vidrec flow`) when there, else computed on the fly."""

    def __init__(self, records: list[VideoRecord], *, model: TwoStream, num_clips: int = 1, num_crops: int = 1,
                 flow_dir: str | None = None):
        super().__init__(records, prep=model.rgb.preprocessing, train=False, num_clips=num_clips, num_crops=num_crops)
        self.model, self.flow_dir = model, flow_dir
        self.flow_transform = EvalTransform(model.flow.preprocessing, num_crops=num_crops)

    def load(self, path: str, *, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        with self.open(path) as video:
            n, sampling = len(video), self.prep.sampling
            stamps = video.timestamps if sampling.target_fps else None
            idx = uniform_clip_indices(n, sampling, num_clips=self.num_clips, timestamps=stamps)  # (N, T)
            if n < 2:
                raise VidrecError(f"{path}: needs at least 2 frames for optical flow")
            # Flow field i is the motion from frame i to i+1; the last frame reuses the one before.
            flow_idx = np.minimum(idx, n - 2)
            stored = os.path.join(self.flow_dir, "flow", flow_file_name(path)) if self.flow_dir else None
            if stored and os.path.exists(stored):
                flow = FlowReader(stored).get_frames(flow_idx.reshape(-1))
                rgb = video.get_frames(idx.reshape(-1))
            else:
                needed = np.unique(np.concatenate([idx.reshape(-1), flow_idx.reshape(-1) + 1]))
                frames = dict(zip(needed.tolist(), video.get_frames(needed)))  # one decoding pass
                rgb = np.stack([frames[int(i)] for i in idx.reshape(-1)])
                flow = self._flow_between(frames, flow_idx.reshape(-1))
        t = self.prep.num_frames
        rgb_views = torch.cat([self.eval_transform(frames_to_clip(c)) for c in rgb.reshape(-1, t, *rgb.shape[1:])])
        flow_views = torch.cat([self.flow_transform(frames_to_clip(c)) for c in flow.reshape(-1, t, *flow.shape[1:])])
        return rgb_views, flow_views

    def _flow_between(self, frames: dict[int, np.ndarray], starts: np.ndarray) -> np.ndarray:
        cv2 = _cv2()  # one clear error when OpenCV is missing
        estimator = flow_estimator(self.model.flow_method)
        gray = {i: cv2.cvtColor(resize_short_side_np(f, self.model.flow_short_side), cv2.COLOR_RGB2GRAY)
                for i, f in frames.items()}
        fields = {int(s): quantize(estimator.calc(gray[int(s)], gray[int(s) + 1], None)) for s in np.unique(starts)}
        return np.stack([fields[int(s)] for s in starts])  # (N*T, H, W, 2) uint8
