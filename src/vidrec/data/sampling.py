"""Which frames make a clip.

Two ways (`ClipSampling.mode`):

- "stride" (Kinetics, PySlowFast's and VideoMAE's K400 recipes): `num_frames` frames
  `sampling_rate` apart, from a random start in training and from evenly spread starts in testing;
- "segments" (Something-Something V2, as PySlowFast's and VideoMAE's SSv2 loaders, and TSN): the
  video cut into `num_frames` equal parts and one frame taken from each, at random in training, so
  every clip holds the whole action. Test clip k of K takes each part's frame at k/K of it
  (VideoMAE's two SSv2 test clips: starts and middles); one test clip takes the middles
  (PySlowFast's). `sampling_rate` plays no part.

Every sampler returns source-frame indices (int64 arrays) and never fails on short videos:
positions past the end follow `pad`:

- "repeat_last" (default, as PySlowFast's clamped linspace): the last frame is held, so time keeps
  its direction and the clip never jumps back to the start;
- "loop" (as MMAction2's SampleFrames): positions wrap around to the start.

With `target_fps`, positions are counted on a timeline resampled to that rate using each frame's
presentation time, so `sampling_rate` means the same seconds in every video (variable frame rate
included); the result is still indices into the source frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidrec.errors import ConfigError

PAD_POLICIES = ("repeat_last", "loop")
SAMPLING_MODES = ("stride", "segments")


@dataclass(frozen=True)
class ClipSampling:
    """Which frames make a clip: how many, how far apart, at what rate, and past the end."""

    num_frames: int = 8  # frames per clip
    sampling_rate: int = 4  # stride between sampled frames, in (resampled) frames
    target_fps: float | None = None  # resample the timeline to this rate first (None: native)
    pad: str = "repeat_last"  # policy for clips longer than the video: "repeat_last" | "loop"
    mode: str = "stride"  # "stride" or "segments" (see the module's docstring)

    def __post_init__(self):
        if self.num_frames < 1 or self.sampling_rate < 1:
            raise ConfigError(
                f"num_frames and sampling_rate must be >= 1, got {self.num_frames}, {self.sampling_rate}"
            )
        if self.pad not in PAD_POLICIES:
            raise ConfigError(f"unknown pad policy '{self.pad}' (valid: {', '.join(PAD_POLICIES)})")
        if self.mode not in SAMPLING_MODES:
            raise ConfigError(f"unknown frame sampling '{self.mode}' (valid: {', '.join(SAMPLING_MODES)})")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ConfigError(f"target_fps must be > 0, got {self.target_fps}")

    @property
    def span(self) -> int:
        """Frames covered by one clip on the (resampled) timeline."""
        return (self.num_frames - 1) * self.sampling_rate + 1


def resample_timeline(timestamps: np.ndarray, target_fps: float) -> np.ndarray:
    """Source index shown at each tick of a `target_fps` clock: `(M,)` int64.

    Using presentation times (not frame numbers) makes variable-frame-rate videos sample evenly.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if len(timestamps) == 0:
        return np.zeros(0, np.int64)
    frame_time = np.median(np.diff(timestamps)) if len(timestamps) > 1 else 1.0 / target_fps
    duration = timestamps[-1] - timestamps[0] + frame_time
    ticks = timestamps[0] + np.arange(max(1, math.floor(duration * target_fps + 1e-6))) / target_fps
    # The frame on screen at time t is the last one whose timestamp is <= t.
    return np.clip(np.searchsorted(timestamps, ticks + 1e-9, side="right") - 1, 0, len(timestamps) - 1)


def _timeline(num_video_frames: int, sampling: ClipSampling, timestamps: np.ndarray | None) -> np.ndarray:
    if num_video_frames < 1:
        raise ConfigError("cannot sample a clip from a video with no frames")
    if sampling.target_fps is None:
        return np.arange(num_video_frames, dtype=np.int64)
    if timestamps is None:
        raise ConfigError("target_fps needs the video's frame timestamps")
    return resample_timeline(timestamps, sampling.target_fps)


def _positions_to_indices(positions: np.ndarray, timeline: np.ndarray, pad: str) -> np.ndarray:
    n = len(timeline)
    positions = positions % n if pad == "loop" else np.clip(positions, 0, n - 1)
    return timeline[positions]


def random_clip_indices(
    num_video_frames: int,
    sampling: ClipSampling,
    *,
    rng: np.random.Generator,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Training: one clip at a uniformly random start (segments: a random frame of each part).
    `(num_frames,)` int64."""
    timeline = _timeline(num_video_frames, sampling, timestamps)
    if sampling.mode == "segments":
        at = rng.random(sampling.num_frames)
        return timeline[_segment_positions(len(timeline), sampling.num_frames, at)]
    start = int(rng.integers(0, max(len(timeline) - sampling.span, 0) + 1))
    positions = start + np.arange(sampling.num_frames) * sampling.sampling_rate
    return _positions_to_indices(positions, timeline, sampling.pad)


def uniform_clip_indices(
    num_video_frames: int, sampling: ClipSampling, *, num_clips: int, timestamps: np.ndarray | None = None
) -> np.ndarray:
    """Testing: `num_clips` clips with starts spread evenly from the first to the last possible
    start (one clip is centred), as PySlowFast's multi-view test. `(num_clips, num_frames)`."""
    if num_clips < 1:
        raise ConfigError(f"num_clips must be >= 1, got {num_clips}")
    timeline = _timeline(num_video_frames, sampling, timestamps)
    if sampling.mode == "segments":
        offsets = [0.5] if num_clips == 1 else [k / num_clips for k in range(num_clips)]
        parts = [_segment_positions(len(timeline), sampling.num_frames, o) for o in offsets]
        return np.stack([timeline[p] for p in parts])
    delta = max(len(timeline) - sampling.span, 0)
    if num_clips == 1:
        starts = np.array([delta // 2])
    else:
        starts = np.round(np.arange(num_clips) * delta / (num_clips - 1)).astype(np.int64)
    positions = starts[:, None] + np.arange(sampling.num_frames)[None, :] * sampling.sampling_rate
    return _positions_to_indices(positions, timeline, sampling.pad)


def _segment_positions(length: int, parts: int, at) -> np.ndarray:
    """Position `at` (0..1, one per part or one for all) within each of `parts` equal parts of a
    timeline of `length`; fewer frames than parts: neighbouring parts share a frame."""
    tick = length / parts
    positions = np.floor(tick * (np.arange(parts) + np.asarray(at, dtype=np.float64))).astype(np.int64)
    return np.clip(positions, 0, length - 1)


def segment_indices(
    num_video_frames: int,
    *,
    num_segments: int,
    rng: np.random.Generator | None = None,
    timestamps: np.ndarray | None = None,
    target_fps: float | None = None,
) -> np.ndarray:
    """TSN sampling: split the video into `num_segments` equal parts and take one frame from each,
    at random in training (`rng` given) or the middle of each part in testing. `(num_segments,)`."""
    if num_segments < 1:
        raise ConfigError(f"num_segments must be >= 1, got {num_segments}")
    sampling = ClipSampling(num_frames=num_segments, sampling_rate=1, target_fps=target_fps)
    timeline = _timeline(num_video_frames, sampling, timestamps)
    at = 0.5 if rng is None else rng.random(num_segments)
    return timeline[_segment_positions(len(timeline), num_segments, at)]
