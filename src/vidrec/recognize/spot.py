"""From a spotter's per-step probabilities to events: temporal non-maximum suppression. A step
becomes an event of a class when its probability is at least `threshold`, the highest of the class
within nms/2 s on either side (the earliest of equal ones), and no event of the class was taken
within nms/2 s before it.

One rule, offline and live: `pick_events` runs `LivePicker` over a whole video, so a live stream
reports exactly the events the offline run finds. Live, a step is decided once the nms/2 s after it
have arrived, so each event is reported nms/2 s of video after it happened (a step's features hold
the frames up to its time; the computing adds its own time): the delay from event to report.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from vidrec.errors import ConfigError
from vidrec.io.events import Event
from vidrec.io.live import is_live_source
from vidrec.models.base import ModelBase, SpottingModel
from vidrec.recognize.features import timeline_features


class LivePicker:
    """`update(time, probs)` step by step (probs `(1 + C,)`, column 0 "no event"): the events that
    became final; `finish()`: the rest at the end of the stream."""

    def __init__(self, classes: list[str], *, video: str = "", nms: float = 1.0, threshold: float = 0.01):
        if nms < 0 or not 0 <= threshold <= 1:
            raise ConfigError(
                f"peak picking needs nms >= 0 s and 0 <= threshold <= 1, got {nms}, {threshold}"
            )
        self.classes, self.video, self.nms, self.threshold = list(classes), video, nms, threshold
        self.steps: deque = deque()  # (time, probs (C,)): the undecided steps and nms/2 s before them
        self.undecided = 0  # index in `steps` of the first step not decided yet
        self.taken = np.full(len(self.classes), -np.inf)  # each class's last event time

    @property
    def delay(self) -> float:
        """Seconds from an event to its report (the picker's part)."""
        return self.nms / 2

    def _decide(self, upto: float) -> list[Event]:
        """Decide every step whose nms/2 s after it are all in (at `upto`)."""
        half, out = self.nms / 2, []
        while self.undecided < len(self.steps) and self.steps[self.undecided][0] <= upto - half + 1e-9:
            t, p = self.steps[self.undecided]
            near = [(u, q) for u, q in self.steps if abs(u - t) <= half + 1e-9]
            for c in np.flatnonzero(p >= self.threshold):
                if t - self.taken[c] <= half + 1e-9:
                    continue
                if all(q[c] < p[c] if u < t else q[c] <= p[c] for u, q in near if u != t):
                    self.taken[c] = t
                    out.append(Event(self.video, round(float(t), 3), self.classes[c], float(p[c])))
            self.undecided += 1
        while self.undecided and self.steps[0][0] < self.steps[self.undecided - 1][0] - half - 1e-9:
            self.steps.popleft()
            self.undecided -= 1
        return out

    def update(self, time: float, probs) -> list[Event]:
        """Probabilities `(1 + C,)` at `time` (s, increasing): the events final now."""
        probs = np.asarray(probs, np.float64)
        if probs.shape != (1 + len(self.classes),):
            raise ConfigError(f"expected {1 + len(self.classes)} probabilities, got shape {probs.shape}")
        self.steps.append((float(time), probs[1:]))
        return self._decide(float(time))

    def finish(self) -> list[Event]:
        """The events still undecided at the end of the stream."""
        return self._decide(np.inf)


def pick_events(
    probs: np.ndarray,
    times: np.ndarray,
    classes: list[str],
    *,
    video: str = "",
    nms: float = 1.0,
    threshold: float = 0.01,
) -> list[Event]:
    """The events of a whole video: `probs` `(T, 1 + C)` at `times` `(T,)`, in time order."""
    picker = LivePicker(classes, video=video, nms=nms, threshold=threshold)
    events = [e for t, p in zip(times, probs) for e in picker.update(t, p)]
    return events + picker.finish()


@torch.inference_mode()
def spot_events(
    spotter: SpottingModel,
    extractor: ModelBase,
    source: str,
    *,
    nms: float = 1.0,
    threshold: float = 0.01,
    video: str | None = None,
    device=None,
    realtime: bool = True,
    timeout: float = 10.0,
) -> Iterator[tuple[Event, float]]:
    """`(event, the video time it was final at)` for each event the spotter finds in `source` (a
    file, or a live source with a causal spotter). A causal spotter runs step by step over its
    receptive field (exactly its output on the whole video) and reports each event as soon as it
    is final; a two-sided one reads the whole video first."""
    if not isinstance(spotter, SpottingModel):
        raise ConfigError(f"{spotter.arch} is not an event spotter (a vidrec train run of task spotting)")
    c = spotter.config
    live = is_live_source(str(source))
    if live and not c.causal:
        raise ConfigError(
            f"{spotter.arch} looks ahead: a live source needs a causal spotter (spotter_conv_causal)"
        )
    device = device or spotter.device
    spotter.eval().to(device)
    name = video or os.path.splitext(os.path.basename(str(source).rstrip("/")))[0]
    steps = timeline_features(
        extractor,
        source,
        rate=c.rate,
        causal=c.causal_features,
        device=device,
        realtime=realtime,
        timeout=timeout,
    )
    picker = LivePicker(spotter.class_names, video=name, nms=nms, threshold=threshold)
    if c.causal:
        recent: deque = deque(maxlen=spotter.receptive_field)
        t = 0.0
        for t, features in steps:
            recent.append(features.to(device))
            probs = spotter.probabilities(torch.stack(list(recent)))[-1]  # the newest step's
            yield from ((e, t) for e in picker.update(t, probs))
        yield from ((e, t) for e in picker.finish())
        return
    collected = list(steps)
    if not collected:
        raise ConfigError(f"{source}: no frames")
    times = [t for t, _ in collected]
    probs = spotter.probabilities(torch.stack([f for _, f in collected]))
    for t, p in zip(times, probs):
        yield from ((e, t) for e in picker.update(t, p))
    yield from ((e, times[-1]) for e in picker.finish())


__all__ = ["LivePicker", "pick_events", "spot_events"]
