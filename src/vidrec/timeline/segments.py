"""When: per-time action scores (a whole frame's, or one person's) turned into segments
`{label, start, end, peak, track}` as they close, with smoothing and hysteresis, in memory bounded
by the smoothing window whatever the video's length; then counts, durations and a timeline PNG.

    scores at t ─> mean over the last `smooth` s ─> label rises >= `on`: open (start = t)
                                                   label falls < `off`: close (end = t)
                                                   shorter than `min_length`: dropped
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vidrec.errors import ConfigError


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


def statistics(segments: list[dict]) -> dict:
    """Per label (and per track and label): how many segments and their total seconds."""
    by_label: dict[str, dict] = {}
    by_track: dict[str, dict] = {}
    for s in segments:
        length = s["end"] - s["start"]
        for table, key in ((by_label, s["label"]), (by_track, f"{s['track']}: {s['label']}")):
            entry = table.setdefault(key, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] = round(entry["seconds"] + length, 3)
    out = {"labels": dict(sorted(by_label.items(), key=lambda kv: -kv[1]["seconds"]))}
    if any(s["track"] is not None for s in segments):
        out["tracks"] = by_track
    return out


def plot_timeline(
    path: str, times: list[float], scores: np.ndarray, labels: list[str], segments: list[dict]
) -> None:
    """A PNG: the scores `(T, C)` of the labels that made segments over time, and the segments as
    bars (the best-scoring label alone when there are none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidrec.utils import atomic_write

    shown = sorted({s["label"] for s in segments}) or [labels[int(np.argmax(np.max(scores, 0)))]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=[3, 1])
    for label in shown:
        top.plot(times, scores[:, labels.index(label)], label=label)
    top.set_ylabel("score")
    top.legend(fontsize=7, loc="upper right")
    for row, label in enumerate(shown):
        spans = [(s["start"], s["end"] - s["start"]) for s in segments if s["label"] == label]
        bottom.broken_barh(spans, (row - 0.4, 0.8))
    bottom.set_yticks(range(len(shown)), shown, fontsize=7)
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def plot_track_timeline(path: str, segments: list[dict], seen: dict[int, tuple[float, float]]) -> None:
    """A PNG with one lane per person (`seen`: id -> first and last time tracked, drawn grey):
    their action segments as bars, one colour per label, the label written on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidrec.utils import atomic_write

    ids = sorted(seen)
    labels = sorted({s["label"] for s in segments})
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.4 * max(len(ids), 1)))
    for row, i in enumerate(ids):
        first, last = seen[i]
        ax.broken_barh([(first, max(last - first, 0.05))], (row - 0.1, 0.2), color="0.8")
        for s in (s for s in segments if s["track"] == i):
            ax.broken_barh(
                [(s["start"], s["end"] - s["start"])], (row - 0.35, 0.7), color=colours[s["label"]]
            )
            ax.text(s["start"], row, f" {s['label']}", va="center", fontsize=6, clip_on=True)
    ax.set_yticks(range(len(ids)), [f"person {i}" for i in ids], fontsize=7)
    ax.set_ylim(-0.6, max(len(ids), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in labels]
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lanes
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


__all__ = [
    "SegmentConfig",
    "Segmenter",
    "TrackSegments",
    "plot_timeline",
    "plot_track_timeline",
    "statistics",
]
