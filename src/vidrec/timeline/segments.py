"""When: per-time action scores (a whole frame's, or one person's) turned into segments
`{label, start, end, peak, track}` as they close, with smoothing and hysteresis, in memory bounded
by the smoothing window whatever the video's length (counts, durations and the timeline PNGs:
`vidrec.timeline.statistics`).

    scores at t ─> mean over the last `smooth` s ─> label rises >= `on`: open (start = t)
                                                   label falls < `off`: close (end = t)
                                                   shorter than `min_length`: dropped
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vidrec.errors import ConfigError
from vidrec.timeline.statistics import plot_timeline


@dataclass(frozen=True)
class SegmentConfig:
    """Thresholds on smoothed scores (probabilities) and lengths in seconds."""

    on: float = 0.4  # a label's smoothed score opens a segment at this
    off: float = 0.2  # ... and closes it below this: the gap keeps noise from splitting segments
    smooth: float = 1.0  # seconds of scores averaged before thresholding
    min_length: float = 1.0  # shorter segments are dropped

    def __post_init__(self):
        if not 0 <= self.off <= self.on <= 1:
            raise ConfigError(f"segment thresholds need 0 <= off <= on <= 1, got on={self.on} off={self.off}")


class Segmenter:
    """Feed `update(time, scores)` in time order; closed segments come back as they end, the rest
    from `finish(end)`. `labels` name the score columns; `track` is copied into each segment."""

    def __init__(
        self, labels: list[str], config: SegmentConfig = SegmentConfig(), *, track: int | None = None
    ):
        self.labels, self.config, self.track = list(labels), config, track
        self.recent: deque = deque()  # (time, scores) within the smoothing window
        n = len(self.labels)
        self.open = np.zeros(n, bool)
        self.start = np.zeros(n)
        self.peak = np.zeros(n)
        self.last_time: float | None = None

    def update(self, time: float, scores) -> list[dict]:
        """Scores `(labels,)` at `time` (seconds, increasing): the segments that closed now."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(self.labels),):
            raise ConfigError(f"expected {len(self.labels)} scores, got shape {scores.shape}")
        if self.last_time is not None and time < self.last_time:
            raise ConfigError(f"scores must come in time order ({time} after {self.last_time})")
        self.last_time = time
        self.recent.append((time, scores))
        while self.recent[0][0] <= time - self.config.smooth:
            self.recent.popleft()
        smoothed = np.mean([s for _, s in self.recent], axis=0)
        rising = ~self.open & (smoothed >= self.config.on)
        self.start[rising], self.peak[rising] = time, 0.0
        self.open |= rising
        self.peak[self.open] = np.maximum(self.peak[self.open], smoothed[self.open])
        falling = self.open & (smoothed < self.config.off)
        return self._close(falling, time)

    def finish(self, end: float | None = None) -> list[dict]:
        """Close every open segment at `end` (default: the last update's time)."""
        end = self.last_time if end is None else end
        return self._close(self.open.copy(), end) if end is not None else []

    def _close(self, which: np.ndarray, time: float) -> list[dict]:
        out = []
        for i in np.flatnonzero(which):
            if time - self.start[i] >= self.config.min_length:
                out.append(
                    {
                        "label": self.labels[i],
                        "start": round(float(self.start[i]), 3),
                        "end": round(float(time), 3),
                        "peak": round(float(self.peak[i]), 4),
                        "track": self.track,
                    }
                )
        self.open &= ~which
        return out


class ScoreTimeline:
    """A whole frame's scores over time: its `Segmenter`, the segments so far, and (with
    `history`) a sparse history of the scores (those >= 0.05; enough for the plot) for
    `plot(path)`; without it memory stays bounded on an endless live stream."""

    def __init__(self, labels: list[str], config: SegmentConfig = SegmentConfig(), *, history: bool = True):
        self.segmenter = Segmenter(labels, config)
        self.history = history
        self.labels = self.segmenter.labels
        self.segments: list[dict] = []
        self.times: list[float] = []
        self.rows: list[dict[int, float]] = []

    def update(self, time: float, probs) -> list[dict]:
        """Scores `(labels,)` at `time`: the segments that closed now."""
        probs = np.asarray(probs, dtype=np.float32)
        new = self.segmenter.update(time, probs)
        self.segments += new
        if not self.history:
            return new
        self.times.append(time)
        self.rows.append({int(i): float(probs[i]) for i in np.flatnonzero(probs >= 0.05)})
        return new

    def finish(self, end: float | None = None) -> list[dict]:
        """Close what is open (at `end`, default the last time): the segments that closed now."""
        new = self.segmenter.finish(end)
        self.segments += new
        return new

    def plot(self, path: str) -> None:
        """The timeline PNG (`plot_timeline`) of the scores and segments so far."""
        scores = np.zeros((len(self.times), len(self.labels)), np.float32)
        for row, sparse in enumerate(self.rows):
            scores[row, list(sparse)] = list(sparse.values())
        plot_timeline(path, self.times, scores, self.labels, self.segments)


class TrackSegments:
    """One `Segmenter` per person: `update(time, tracks, alive)` with a look's tracks (each with
    `"id"` and `"probs"`) and the ids still tracked; a person's open segments close where the
    person was last seen, once the tracker has let them go."""

    def __init__(self, labels: list[str], config: SegmentConfig = SegmentConfig()):
        self.labels, self.config = labels, config
        self.segmenters: dict[int, Segmenter] = {}
        self.segments: list[dict] = []

    def update(self, time: float, tracks: list[dict], alive: set[int]) -> list[dict]:
        """One look: each track's probabilities into its segmenter; people no longer tracked
        closed. Returns the segments that closed now."""
        new = []
        for t in tracks:
            seg = self.segmenters.setdefault(t["id"], Segmenter(self.labels, self.config, track=t["id"]))
            new += seg.update(time, np.asarray(t["probs"]))
        for i in [i for i in self.segmenters if i not in alive]:
            new += self.segmenters.pop(i).finish()
        self.segments += new
        return new

    def finish(self) -> list[dict]:
        """Every segment, the open ones closed, in time order."""
        for seg in self.segmenters.values():
            self.segments += seg.finish()
        self.segmenters = {}
        return sorted(self.segments, key=lambda x: (x["start"], x["track"]))


__all__ = ["ScoreTimeline", "SegmentConfig", "Segmenter", "TrackSegments"]
