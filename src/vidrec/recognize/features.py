"""A video as a timeline of features: what a frozen model sees at `rate` steps per second, the
input of an event spotter (`vidrec.models.spotting`), computed once and cached by `vidrec extract
--rate`.

    stream model (MoViNet): every frame at its own rate through `step_features` (causal: each
    frame's features depend on the past only); each step is the mean of the frames since the last
    clip model: at each step time t one clip of `num_frames` frames (`sampling_rate` apart),
    centred on t, or ending at t when `causal`; normalised as a whole, as in training

Memory holds one clip's frames, not the video: long and live footage stream through.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from vidrec.data.transforms import normalize
from vidrec.errors import ConfigError, VidrecError
from vidrec.io.live import LiveReader, is_live_source
from vidrec.models.base import ModelBase, StreamingModel, VideoModel
from vidrec.recognize.stream import live_model_frames, model_frames


def _pooled(model: VideoModel, clips: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(clips), pre_logits=True)


def _stream_steps(model: StreamingModel, frames, rate: float, device, chunk: int = 16):
    """(time, features) per step of a stream model fed `frames` ((time, model frame) pairs): the
    mean of its frames' features in (t - 1/rate, t]; the step at t = 0 is the first frame's.
    `chunk` frames go through the model at once (1 for a live source: each as it arrives)."""
    state, pending, bin_feats, step = None, [], [], 0

    def run(frames):
        nonlocal state
        x = torch.cat([f for _, f in frames], dim=1)[None].to(device)  # (1, C, t, H, W)
        if state is None:
            state = model.init_state(1, height=x.shape[-2], width=x.shape[-1])
        feats, state = model.step_features(x, state)
        return list(zip((t for t, _ in frames), feats[0].float().cpu()))

    def frames_out():
        for t, frame in frames:
            pending.append((t, frame))
            if len(pending) >= chunk:
                yield from run(pending)
                pending.clear()
        if pending:
            yield from run(pending)

    last = None
    for t, f in frames_out():
        while t > step / rate + 1e-9:  # the frame belongs to a later step: close the ones before
            if bin_feats or last is not None:
                yield step / rate, torch.stack(bin_feats).mean(0) if bin_feats else last
            bin_feats, step = [], step + 1
        bin_feats.append(f)
        last = f
    if bin_feats:
        yield step / rate, torch.stack(bin_feats).mean(0)


def _clip_steps(model: VideoModel, path, rate: float, causal: bool, device, batch: int = 16):
    """(time, features) per step of a clip model, clips centred on (or ending at) each step."""
    prep = model.preprocessing
    fps = prep.target_fps  # None: every frame, `sampling_rate` apart in a clip
    stride = 1 if fps else prep.sampling_rate
    n = prep.num_frames
    before = (n - 1) * stride if causal else (n // 2) * stride  # frames of a clip before its centre
    after = 0 if causal else (n - 1 - n // 2) * stride
    frames: deque = deque()  # (index, time, uint8 frame), the last `before + after + 1` or so
    queue: list[tuple[float, int]] = []  # steps waiting for their clip's last frame: (time, centre)
    clips: list[tuple[float, torch.Tensor]] = []
    step, index, first = 0, -1, None

    def clip_at(centre: int, last: int) -> torch.Tensor:
        wanted = [min(max(centre + k * stride - before, 0), last) for k in range(n)]
        by_index = {i: f for i, _, f in frames}
        x = torch.cat([by_index[max(min(w, last), frames[0][0])] for w in wanted], dim=1)
        return normalize(x, prep.mean, prep.std, centering=prep.centering)

    def flush():
        if clips:
            x = torch.stack([c for _, c in clips]).to(device)
            yield from zip((t for t, _ in clips), _pooled(model, x).float().cpu())
            clips.clear()

    for t, frame in model_frames(path, prep, fps=fps, normalized=False):
        index += 1
        first = t if first is None else first
        frames.append((index, t, frame))
        while frames and frames[0][0] < index - before - after - 1:
            frames.popleft()
        while t - first >= step / rate - 1e-9:  # this frame is the nearest at or after the step
            queue.append((step / rate, index))
            step += 1
        while queue and queue[0][1] + after <= index:
            when, centre = queue.pop(0)
            clips.append((when, clip_at(centre, index)))
            if len(clips) >= batch:
                yield from flush()
    for when, centre in queue:  # the end: clips run past the last frame, which repeats
        clips.append((when, clip_at(centre, index)))
    yield from flush()


@torch.inference_mode()
def timeline_features(
    model: ModelBase,
    path: str | os.PathLike,
    *,
    rate: float,
    causal: bool = False,
    device: torch.device | str | None = None,
    realtime: bool = True,
    timeout: float = 10.0,
) -> Iterator[tuple[float, torch.Tensor]]:
    """`(time in s, features (D,))` every 1/`rate` s of the video at `path`, as they are ready (see
    the module's docstring). A stream model is causal whatever `causal` says. `path` may be a live
    source (a stream model's; `realtime` and `timeout` as `vidrec.io.live.LiveReader` takes them)."""
    if not rate > 0:
        raise ConfigError(f"the feature rate must be > 0 steps per second, got {rate}")
    if not isinstance(model, VideoModel):
        raise ConfigError(f"{model.arch} is not a video classifier: its features cannot be extracted")
    device = device or model.device
    model.eval().to(device)
    stream = isinstance(model, StreamingModel) and model.preprocessing.centering != "clip"
    prep = model.preprocessing
    if is_live_source(str(path)):
        if not stream:
            raise ConfigError(
                f"{model.arch} reads clips; features of a live source need a stream model (MoViNet)"
            )
        reader = LiveReader(str(path), realtime=realtime, timeout=timeout)
        yield from _stream_steps(model, live_model_frames(reader, prep), rate, device, chunk=1)
    elif stream:
        yield from _stream_steps(model, model_frames(path, prep, fps=prep.target_fps), rate, device)
    else:
        yield from _clip_steps(model, path, rate, causal, device)


def video_timeline(model: ModelBase, path, *, rate: float, causal: bool = False, device=None):
    """Every step at once: times `(N,)` float64 and features `(N, D)` float32 (numpy)."""
    steps = list(timeline_features(model, path, rate=rate, causal=causal, device=device))
    if not steps:
        raise VidrecError(f"{path}: no frames")
    return np.array([t for t, _ in steps]), torch.stack([f for _, f in steps]).numpy()


__all__ = ["timeline_features", "video_timeline"]
