"""The work of `vidrec predict --list` and `vidrec extract` on each video, in two halves that run in
different places: `Decoder` (a path -> the model's input tensors; picklable, no model: DataLoader
workers and Ray tasks run it) and `Runner` (decoded videos -> rows, with the model)."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from vidrec.data.datasets import Failed
from vidrec.errors import ConfigError, VidrecError
from vidrec.metrics.topk import top_predictions
from vidrec.models.base import ModelBase, StreamingModel, TwoStreamModel, VideoModel
from vidrec.recognize.evaluate import eval_dataset, per_view, video_scores
from vidrec.recognize.features import video_timeline
from vidrec.recognize.predict import DEFAULT_CLIPS, result
from vidrec.recognize.stream import model_frames


@dataclass(frozen=True)
class BatchOptions:
    """What to compute for each video."""

    task: str = "predict"  # "predict": top-k classes; "extract": pooled features
    top_k: int = 5
    num_clips: int | None = None  # clip models: uniform clips (default 4)
    num_crops: int | None = None  # clip models: crops per clip (default 1)
    per_clip: bool = False  # extract: one feature per view instead of their mean
    flow_dir: str | None = None  # two-stream models: precomputed flow
    # extract: a timeline instead, features every 1/rate s ("times", "features"; the input of an
    # event spotter, vidrec.recognize.features); `causal`: clips end at each step
    rate: float | None = None
    causal: bool = False

    def __post_init__(self):
        if self.rate is not None and (self.task != "extract" or not self.rate > 0):
            raise ConfigError(f"--rate is for vidrec extract and must be > 0, got {self.rate}")


class Decoder:
    """A video file -> the tensors the model reads (picklable, without the model: it runs in
    DataLoader workers and Ray tasks). Stream models predicting see every frame at their rate,
    `(C, T, H, W)`; otherwise the test views `(V, C, T, H, W)` (a tuple: one per input stream)."""

    def __init__(self, model: ModelBase, options: BatchOptions):
        self.timeline = options.rate is not None  # decoded with the model, frame by frame (Runner)
        self.stream = options.task == "predict" and isinstance(model, StreamingModel)
        if self.stream and (options.num_clips is not None or options.num_crops is not None):
            raise ConfigError(
                f"{model.arch} is a stream model: it watches every frame, "
                "so --num-clips / --num-crops do not apply"
            )
        self.prep = model.preprocessing if self.stream else None
        num_clips, num_crops = options.num_clips or DEFAULT_CLIPS, options.num_crops or 1
        self.views = None
        if not (self.stream or self.timeline):
            self.views = eval_dataset(
                model, [], num_clips=num_clips, num_crops=num_crops, flow_dir=options.flow_dir
            )

    def __call__(self, path: str) -> str | torch.Tensor | tuple[torch.Tensor, ...]:
        if self.timeline:
            return path
        if self.stream:
            frames = [f for _, f in model_frames(path, self.prep, fps=self.prep.target_fps)]
            if not frames:
                raise VidrecError(f"{path}: no frames")
            return torch.cat(frames, dim=1)  # (C, T, H, W)
        return self.views.load(path, rng=np.random.default_rng(0))  # what `vidrec predict` reads


class Videos(Dataset):
    """`(path, decoded tensors or Failed)` for each path: the items of a batch run."""

    def __init__(self, videos: list[str], decode: Decoder):
        self.videos, self.decode = videos, decode

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[str, object]:
        path = self.videos[i]
        try:
            return path, self.decode(path)
        except (VidrecError, OSError, av.FFmpegError) as e:
            return path, Failed(path, str(e).replace(path + ": ", ""))


def model_features(model: ModelBase, x) -> torch.Tensor:
    """The pooled vector a classifier reads `(B, D)`; a two-stream model's two, side by side."""
    if isinstance(model, TwoStreamModel):
        return torch.cat([model_features(model.rgb, x[0]), model_features(model.flow, x[1])], dim=-1)
    return model.forward_head(model.forward_features(x), pre_logits=True)


class Runner:
    """Decoded videos -> rows, with the model (in this process or a Ray actor)."""

    def __init__(self, model: ModelBase, options: BatchOptions, device: torch.device | str = "cpu"):
        if not isinstance(model, (VideoModel, TwoStreamModel)):
            raise ConfigError(f"{model.arch} is not a video classifier: predict and extract take one")
        self.model, self.options, self.device = model.eval().to(device), options, torch.device(device)
        self.stream = options.task == "predict" and isinstance(model, StreamingModel)
        self.num_clips, self.num_crops = options.num_clips or DEFAULT_CLIPS, options.num_crops or 1

    def failed(self, path: str, reason: str) -> dict:
        """The row of a video that could not be read."""
        return {"video": path, "error": reason, "model": self.model.arch}

    @torch.inference_mode()
    def rows(self, items: list[tuple[str, object]]) -> list[dict]:
        """`(path, decoded tensors or Failed)` per video -> one row each, in order."""
        out = {p: self.failed(p, x.reason) for p, x in items if isinstance(x, Failed)}
        ok = [(p, x) for p, x in items if not isinstance(x, Failed)]
        if ok and self.options.rate is not None:
            for path, _ in ok:
                out[path] = self._timeline_row(path)
        elif ok and self.stream:
            for path, frames in ok:
                x = frames[None].to(self.device)  # (1, C, T, H, W)
                state = self.model.init_state(1, height=x.shape[-2], width=x.shape[-1])
                probs = self.model.step(x, state)[0].float()[0].softmax(-1).cpu()
                preds = top_predictions(probs, self.model, self.options.top_k)
                out[path] = {**result(path, self.model, "stream", 1, 1, x.shape[2], preds), "error": None}
        elif ok:
            views = self._stack([x for _, x in ok])
            if self.options.task == "predict":
                for (path, _), p in zip(ok, video_scores(self.model, views).cpu()):
                    preds = top_predictions(p, self.model, self.options.top_k)
                    frames = self.num_clips * self.model.preprocessing.num_frames
                    mode = result(path, self.model, "clips", self.num_clips, self.num_crops, frames, preds)
                    out[path] = {**mode, "error": None}
            else:
                for (path, _), f in zip(ok, self._features(views)):
                    out[path] = self._feature_row(path, f)
        return [out[p] for p, _ in items]

    def _stack(self, decoded: list):
        if isinstance(decoded[0], tuple):  # one tensor per input stream
            return tuple(torch.stack(s).to(self.device) for s in zip(*decoded))
        return torch.stack(decoded).to(self.device)  # (B, V, C, T, H, W)

    def _features(self, views) -> torch.Tensor:
        """`(B, V, D)` float32: each view's pooled features."""
        return per_view(lambda clips: model_features(self.model, clips), views).cpu()

    def _timeline_row(self, path: str) -> dict:
        try:
            times, feats = video_timeline(
                self.model, path, rate=self.options.rate, causal=self.options.causal, device=self.device
            )
        except (VidrecError, OSError, av.FFmpegError) as e:
            return self.failed(path, str(e).replace(path + ": ", ""))
        row = {"video": path, "error": None, "model": self.model.arch, "rate": self.options.rate}
        return {**row, "times": times.tolist(), "features": feats.tolist()}

    def _feature_row(self, path: str, f: torch.Tensor) -> dict:
        row = {"video": path, "error": None, "model": self.model.arch, "num_views": f.shape[0]}
        if self.options.per_clip:
            return {**row, "features": f.tolist()}
        return {**row, "feature": f.mean(0).tolist()}


__all__ = ["BatchOptions", "Decoder", "Runner", "Videos", "model_features"]
