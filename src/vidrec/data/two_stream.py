"""Test views for a two-stream (RGB + flow) model: both streams at the same clip positions."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidrec.data.datasets import VideoClipDataset, VideoRecord
from vidrec.data.flow import _cv2, flow_estimator, flow_file_name, quantize, resize_short_side_np
from vidrec.data.preprocessing import Preprocessing
from vidrec.data.sampling import uniform_clip_indices
from vidrec.data.transforms import EvalTransform, frames_to_clip
from vidrec.errors import VidrecError
from vidrec.io import FlowReader


class TwoStreamDataset(VideoClipDataset):
    """`(rgb_views, flow_views)` per video, each `(num_clips * num_crops, C, T, H, W)`. Flow is read
    from `flow_dir` (as written by `vidrec flow`) when there, else computed on the fly with
    `flow_method` on frames resized to `flow_short_side`."""

    def __init__(
        self,
        records: list[VideoRecord],
        *,
        rgb_prep: Preprocessing,
        flow_prep: Preprocessing,
        flow_method: str = "tvl1",
        flow_short_side: int = 256,
        num_clips: int = 1,
        num_crops: int = 1,
        flow_dir: str | None = None,
    ):
        super().__init__(records, prep=rgb_prep, train=False, num_clips=num_clips, num_crops=num_crops)
        self.flow_dir, self.flow_method, self.flow_short_side = flow_dir, flow_method, flow_short_side
        self.flow_transform = EvalTransform(flow_prep, num_crops=num_crops)

    def load(
        self, path: str, *, rng: np.random.Generator, flip: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' test views of the video at `path`."""
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
        rgb_views = torch.cat(
            [self.eval_transform(frames_to_clip(c)) for c in rgb.reshape(-1, t, *rgb.shape[1:])]
        )
        flow_views = torch.cat(
            [self.flow_transform(frames_to_clip(c)) for c in flow.reshape(-1, t, *flow.shape[1:])]
        )
        return rgb_views, flow_views

    def _flow_between(self, frames: dict[int, np.ndarray], starts: np.ndarray) -> np.ndarray:
        cv2 = _cv2()  # one clear error when OpenCV is missing
        estimator = flow_estimator(self.flow_method)
        gray = {
            i: cv2.cvtColor(resize_short_side_np(f, self.flow_short_side), cv2.COLOR_RGB2GRAY)
            for i, f in frames.items()
        }
        fields = {
            int(s): quantize(estimator.calc(gray[int(s)], gray[int(s) + 1], None)) for s in np.unique(starts)
        }
        return np.stack([fields[int(s)] for s in starts])  # (N*T, H, W, 2) uint8


__all__ = ["TwoStreamDataset"]
