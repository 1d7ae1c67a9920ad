"""Predict the action in one video file, from Python and the CLI.

Every model gives the same result schema:

    {"video": PATH,                  # the file, as given
     "model": ARCH,                  # architecture that predicted
     "mode": "clips" | "stream",     # multi-view clips averaged, or every frame streamed
     "num_clips": N, "num_crops": K, # views averaged ("stream": 1 and 1, the whole video is one view)
     "frames": F,                    # frames the model saw in total
     "predictions": [{"label", "score"}, ...]}   # top-k class probabilities, best first
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vidrec.errors import ConfigError
from vidrec.metrics.topk import format_predictions, top_predictions
from vidrec.models.base import ModelBase, StreamingModel, TwoStreamModel
from vidrec.recognize.evaluate import eval_dataset, score_views
from vidrec.recognize.stream import stream_video

DEFAULT_CLIPS = 4


def predict(
    model: ModelBase,
    path: str | os.PathLike,
    *,
    top_k: int = 5,
    num_clips: int | None = None,
    num_crops: int | None = None,
    device: torch.device | str | None = None,
    flow_dir: str | None = None,
) -> dict:
    """Class probabilities of one video (schema above). Clip models average `num_clips` uniform
    clips (default 4) x `num_crops` crops (default 1); stream models (MoViNet) see every frame at
    their rate, so clip and crop counts do not apply to them and are refused. Raises `VidrecError`
    (one line) when the video cannot be read."""
    path = os.fspath(path)
    device = device or model.device
    if flow_dir is not None and not isinstance(model, TwoStreamModel):
        raise ConfigError(f"--flow-dir is for two-stream models; {model.arch} reads RGB frames only")
    if isinstance(model, StreamingModel):
        if num_clips is not None or num_crops is not None:
            raise ConfigError(
                f"{model.arch} is a stream model: it watches every frame of the video at "
                f"{model.preprocessing.target_fps:g} fps, so --num-clips / --num-crops do not apply"
            )
        final = list(stream_video(model, path, every=None, top_k=top_k, device=device))[-1]
        return result(path, model, "stream", 1, 1, final["frames"], final["predictions"])
    num_clips, num_crops = num_clips or DEFAULT_CLIPS, num_crops or 1
    dataset = eval_dataset(model, [], num_clips=num_clips, num_crops=num_crops, flow_dir=flow_dir)
    views = dataset.load(path, rng=np.random.default_rng(0))  # (N*K, C, T, H, W), or one per stream
    model.eval().to(device)
    batch = tuple(v[None] for v in views) if isinstance(views, tuple) else views[None]
    scores = score_views(model, batch, device)[0].cpu()
    return result(
        path,
        model,
        "clips",
        num_clips,
        num_crops,
        num_clips * model.preprocessing.num_frames,
        top_predictions(scores, model, top_k),
    )


def result(
    path: str,
    model: ModelBase,
    mode: str,
    num_clips: int,
    num_crops: int,
    frames: int,
    predictions: list[dict],
) -> dict:
    """One prediction in the schema every model shares."""
    return {
        "video": path,
        "model": model.arch,
        "mode": mode,
        "num_clips": num_clips,
        "num_crops": num_crops,
        "frames": frames,
        "predictions": predictions,
    }


__all__ = ["format_predictions", "predict", "result", "top_predictions"]
