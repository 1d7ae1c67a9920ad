"""Streaming recognition: decode a video once, frame by frame, feed the frames at the model's rate
to a stream model (`init_state` / `step`) and report the running top-k. Memory stays bounded by one
decoded frame plus the model's state, whatever the video's length."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from vidrec.data.sampling import resample_timeline
from vidrec.data.transforms import center_crop, frames_to_clip, normalize, resize_short_side
from vidrec.errors import ConfigError
from vidrec.io.live import LiveReader, is_live_source, sample_live
from vidrec.io.video import VideoReader
from vidrec.metrics.topk import top_predictions
from vidrec.models.base import StreamingModel


def cropped_frame(rgb: np.ndarray, prep) -> torch.Tensor:
    """One RGB frame `(H, W, 3)` resized and centre-cropped as `prep` says: `(C, 1, H', W')` uint8."""
    clip = frames_to_clip(rgb[None])  # (3, 1, H, W) uint8
    return center_crop(resize_short_side(clip, prep.resize), prep.test_crop_size or prep.crop_size)


def model_frame(rgb: np.ndarray, prep) -> torch.Tensor:
    """One RGB frame `(H, W, 3)` as a stream model takes it: `(C, 1, H', W')` float, resized and
    centre-cropped as `prep` says."""
    return normalize(cropped_frame(rgb, prep), prep.mean, prep.std, centering=prep.centering)


def model_frames(
    path: str | os.PathLike, prep, *, fps: float | None, normalized: bool = True
) -> Iterator[tuple[float, torch.Tensor]]:
    """`(time in s, frame (C, 1, H, W) float)` at `fps` (None: every frame), each resized and
    centre-cropped as `prep` says: the frames a stream model sees, decoded one at a time
    (`normalized=False`: uint8, for clips normalised as a whole)."""
    prepare = model_frame if normalized else cropped_frame
    with VideoReader(path) as video:
        times = video.timestamps
        shown = resample_timeline(times, fps) if fps else np.arange(len(times))  # source frame at each tick
        repeats = np.bincount(shown, minlength=len(times))
        tick = 0
        for index, rgb in video.indexed_frames():
            if not repeats[index]:
                continue
            frame = prepare(rgb, prep)
            for _ in range(repeats[index]):
                yield (tick / fps if fps else float(times[index])), frame
                tick += 1


class WindowPool:
    """A stream model's features over its last `frames` frames, pooled and classified: what is
    happening now, where the model's own pool averages every frame since the start. It keeps the
    sum of every frame too, for the whole stream's answer (`overall`)."""

    def __init__(self, model: StreamingModel, frames: int):
        self.model = model
        self.recent: deque = deque(maxlen=max(1, frames))  # (1, P) per frame
        self.total, self.count = 0.0, 0

    def add(self, feats: torch.Tensor) -> None:
        """Each frame's features `(t, P)` (`step_features`), in order."""
        self.recent.extend(feats.split(1))
        self.total, self.count = self.total + feats.sum(0), self.count + feats.shape[0]

    def mean(self) -> torch.Tensor:
        """`(1, P)`: the mean features of the last `frames` frames."""
        return torch.cat(list(self.recent)).mean(0, keepdim=True)

    def logits(self) -> torch.Tensor:
        """`(1, classes)` for the last `frames` frames."""
        return self.model.forward_head(self.mean())

    def overall(self) -> torch.Tensor:
        """`(1, classes)` for every frame added."""
        return self.model.forward_head((self.total / self.count)[None])


@torch.inference_mode()
def stream_video(
    model: StreamingModel,
    path: str | os.PathLike,
    *,
    every: float | None = 1.0,
    top_k: int = 5,
    window: float | None = None,
    device: torch.device | str | None = None,
    probs: bool = False,
    realtime: bool = True,
    timeout: float = 10.0,
) -> Iterator[dict]:
    """Yield `{"time", "frames", "predictions"}` every `every` seconds of video (None: only at the
    end), then the final clip prediction with `"final": True`. The frames between two reports go
    through `model.step` as one chunk, which gives exactly the logits of frame-by-frame feeding.

    A stream model's pool averages every frame since the start, so its running top-k is a
    whole-video average: a change of action shows late, later the longer the video. `window`
    (seconds) pools only the last frames' features instead (the backbone's own memory is a few
    frames), so each report says what is happening now. `probs` adds the full distribution.

    `path` may be a live source (`vidrec.io.live`: a stream URL, a camera, `-` for stdin): each
    frame then goes through the model as it arrives; with `realtime` the newest frame is taken
    and the others dropped when the model falls behind, and the final report carries `"live"`:
    frames decoded / processed / dropped, input and processed frames/s, latency."""
    if not isinstance(model, StreamingModel):
        raise ConfigError(
            f"{model.arch} is not a stream model (it has no init_state/step); "
            f"use a movinet_*_stream model or `vidrec predict`"
        )
    if every is not None and every <= 0:
        raise ConfigError(f"--every must be > 0 seconds, got {every}")
    device = device or model.device
    model.eval().to(device)
    prep = model.preprocessing
    if prep.centering == "clip":
        raise ConfigError(
            f"{model.arch} centres each clip on its own mean, which a stream does not know before its end; "
            "train stream models with centering 'frame' or 'dataset'"
        )
    if window is not None:
        if window <= 0 or not prep.target_fps:
            raise ConfigError(f"--window needs a model with a frame rate and > 0 seconds, got {window}")
    pool = WindowPool(model, round(window * prep.target_fps)) if window is not None else None
    state, logits, chunk, count, time = None, None, [], 0, 0.0
    next_report = every

    def flush():
        nonlocal state, logits, chunk
        x = torch.cat(chunk, dim=1)[None].to(device)  # (1, C, t, H, W)
        if state is None:
            state = model.init_state(1, height=x.shape[-2], width=x.shape[-1])
        if pool is None:
            logits, state = model.step(x, state)
        else:
            feats, state = model.step_features(x, state)  # (1, t, P)
            pool.add(feats[0])
            logits = pool.logits()
        chunk = []

    def report(**extra) -> dict:
        p = logits[0].float().softmax(-1)
        out = {"predictions": top_predictions(p, model, top_k), **extra}
        return {**out, "probs": p.cpu()} if probs else out

    reader = LiveReader(str(path), realtime=realtime, timeout=timeout) if is_live_source(str(path)) else None
    frames = live_model_frames(reader, prep) if reader else model_frames(path, prep, fps=prep.target_fps)
    for time, frame in frames:
        if every is not None and time >= next_report - 1e-9 and (chunk or logits is not None):
            if chunk:
                flush()
            yield report(time=round(next_report, 3), frames=count)
            next_report += every * max(1, int((time - next_report) // every) + 1)
        chunk.append(frame)
        count += 1
        if reader is not None:
            flush()  # live: each frame through the model as it arrives
    if chunk:
        flush()
    if logits is None:
        raise ConfigError(f"{path}: no frames to stream")
    end = time if reader is not None or not prep.target_fps else count / prep.target_fps
    extra = {}
    if pool is not None:  # what the whole stream says, beside what its last seconds say
        with torch.inference_mode():
            overall = pool.overall().float()[0].softmax(-1)
        extra["overall"] = top_predictions(overall, model, top_k)
    if reader is not None:  # taken but above the model's frame rate: skipped on purpose
        stats = reader.stats()
        extra["live"] = {**stats, "processed": count, "skipped_for_rate": stats["taken"] - count}
    yield report(time=round(end, 3), frames=count, final=True, **extra)


def live_model_frames(reader: LiveReader, prep) -> Iterator[tuple[float, torch.Tensor]]:
    """`(time since the first frame, model frame)` from a live source, at most `prep.target_fps`
    frames per second of stream time (all of them without a rate)."""
    for t, f, look in sample_live(reader, prep.target_fps):
        if look:
            yield t, model_frame(f.rgb, prep)
