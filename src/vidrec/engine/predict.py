"""Predict the action in one video file, from Python and the CLI."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidrec.engine.evaluate import eval_dataset, score_views
from vidrec.models.base import VideoModel


def predict(model: VideoModel, path: str | os.PathLike, *, top_k: int = 5, num_clips: int = 4,
            num_crops: int = 1, device: torch.device | str | None = None, flow_dir: str | None = None) -> dict:
    """`{"video": PATH, "predictions": [{"label", "score"}, ...], "num_clips": N}`: class
    probabilities averaged over `num_clips` uniform clips x `num_crops` crops, best first. Stream
    models (MoViNet) instead see every frame at their rate; the result says how many (`frames`).
    Raises `VidrecError` (one line) when the video cannot be read."""
    path = os.fspath(path)
    device = device or next(model.parameters()).device
    if hasattr(model, "step"):  # stream models watch the whole video, as they would live
        from vidrec.engine.stream import stream_video

        final = list(stream_video(model, path, every=None, top_k=top_k, device=device))[-1]
        return {"video": path, "predictions": final["predictions"], "frames": final["frames"]}
    dataset = eval_dataset(model, [], num_clips=num_clips, num_crops=num_crops, flow_dir=flow_dir)
    views = dataset.load(path, rng=np.random.default_rng(0))  # (N*K, C, T, H, W), or one per stream
    model.eval().to(device)
    batch = tuple(v[None] for v in views) if isinstance(views, tuple) else views[None]
    scores = score_views(model, batch, device)[0].cpu()
    return {"video": path, "predictions": top_predictions(scores, model, top_k), "num_clips": num_clips}


def top_predictions(probs: torch.Tensor, model: VideoModel, k: int) -> list[dict]:
    """`[{"label", "score"}, ...]`: the `k` most probable classes of `probs` (classes,), best first."""
    labels = model.labels or [f"class_{i}" for i in range(model.num_classes)]
    top = probs.topk(min(k, probs.numel()))
    return [{"label": labels[i], "score": round(float(s), 6)} for s, i in zip(top.values, top.indices)]


def format_predictions(predictions: list[dict]) -> str:
    """`label 0.982, label 0.003, ...`: how the CLI and the demo print a top-k."""
    return ", ".join(f"{p['label']} {p['score']:.3f}" for p in predictions)
