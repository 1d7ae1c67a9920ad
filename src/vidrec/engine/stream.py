"""Streaming recognition: decode a video once, frame by frame, feed the frames at the model's rate
to a stream model (`init_state` / `step`) and report the running top-k. Memory stays bounded by one
decoded frame plus the model's state, whatever the video's length."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from vidrec.data.sampling import resample_timeline
from vidrec.data.transforms import center_crop, frames_to_clip, normalize, resize_short_side
from vidrec.engine.topk import top_predictions
from vidrec.errors import ConfigError
from vidrec.io.video import VideoReader
from vidrec.models.base import StreamingModel


def model_frames(path: str | os.PathLike, prep, *, fps: float | None) -> Iterator[tuple[float, torch.Tensor]]:
    """`(time in s, frame (C, 1, H, W) float)` at `fps` (None: every frame), each resized and
    centre-cropped as `prep` says: the frames a stream model sees, decoded one at a time."""
    with VideoReader(path) as video:
        times = video.timestamps
        shown = resample_timeline(times, fps) if fps else np.arange(len(times))  # source frame at each tick
        repeats = np.bincount(shown, minlength=len(times))
        tick = 0
        for index, rgb in video.indexed_frames():
            if not repeats[index]:
                continue
            clip = frames_to_clip(rgb[None])  # (3, 1, H, W) uint8
            clip = center_crop(resize_short_side(clip, prep.resize), prep.test_crop_size or prep.crop_size)
            frame = normalize(clip, prep.mean, prep.std, centering=prep.centering)
            for _ in range(repeats[index]):
                yield (tick / fps if fps else float(times[index])), frame
                tick += 1


@torch.inference_mode()
def stream_video(
    model: StreamingModel,
    path: str | os.PathLike,
    *,
    every: float | None = 1.0,
    top_k: int = 5,
    device: torch.device | str | None = None,
) -> Iterator[dict]:
    """Yield `{"time", "frames", "predictions"}` every `every` seconds of video (None: only at the
    end), then the final clip prediction with `"final": True`. The frames between two reports go
    through `model.step` as one chunk, which gives exactly the logits of frame-by-frame feeding."""
    if not isinstance(model, StreamingModel):
        raise ConfigError(
            f"{model.arch} is not a stream model (it has no init_state/step); "
            f"use a movinet_*_stream model or `vidrec predict`"
        )
    if every is not None and every <= 0:
        raise ConfigError(f"--every must be > 0 seconds, got {every}")
    device = device or next(model.parameters()).device
    model.eval().to(device)
    prep = model.preprocessing
    if prep.centering == "clip":
        raise ConfigError(
            f"{model.arch} centres each clip on its own mean, which a stream does not know before its end; "
            "train stream models with centering 'frame' or 'dataset'"
        )
    state, logits, chunk, count, time = None, None, [], 0, 0.0
    next_report = every

    def flush():
        nonlocal state, logits, chunk
        x = torch.cat(chunk, dim=1)[None].to(device)  # (1, C, t, H, W)
        if state is None:
            state = model.init_state(1, height=x.shape[-2], width=x.shape[-1])
        logits, state = model.step(x, state)
        chunk = []

    for time, frame in model_frames(path, prep, fps=prep.target_fps):
        if every is not None and time >= next_report - 1e-9 and chunk:
            flush()
            yield {
                "time": round(next_report, 3),
                "frames": count,
                "predictions": top_predictions(logits[0].softmax(-1), model, top_k),
            }
            next_report += every * max(1, int((time - next_report) // every) + 1)
        chunk.append(frame)
        count += 1
    if chunk:
        flush()
    if logits is None:
        raise ConfigError(f"{path}: no frames to stream")
    yield {
        "time": round(count / prep.target_fps if prep.target_fps else time, 3),
        "frames": count,
        "predictions": top_predictions(logits[0].softmax(-1), model, top_k),
        "final": True,
    }
