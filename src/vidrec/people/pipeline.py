"""Who does what: people found in frames sampled at a steady rate, linked into tracks, and each
track's crops recognised by a stream model holding one state per person (MoViNet-A0 Stream by
default, which reads about 5 frames per second), or every track's box scored at once by an AVA
action detector on the most recent frames (`BoxRecognizer`).

    frames at `fps` ─> PersonDetector ─> boxes ─> Tracker ─> tracks (stable ids)
                                                    └─> per track, at the model's rate (5/s):
                                                          square crop with context
                                                          ─> model.step(crop, state[id]) ─> top-k

One decoded frame is held at a time; a track's state is dropped when the track ends, so memory
follows the number of people in view, not the video's length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vidrec.data.sampling import resample_timeline
from vidrec.errors import ConfigError
from vidrec.io.live import LiveReader, is_live_source, sample_live
from vidrec.io.video import VideoReader, read_ahead
from vidrec.metrics.topk import top_predictions
from vidrec.people.detectors import PersonDetector
from vidrec.people.motion import CameraMotion
from vidrec.people.recognizers import PersonRecognizer
from vidrec.people.tracker import Tracker, TrackerConfig


@dataclass(frozen=True)
class PeopleConfig:
    """How often to look and how much of each person the recognizer sees."""

    fps: float = 5.0  # frames per second detected and tracked; each person recognised at most
    # this often, at the model's own rate (`StepClock`; MoViNet: 5)
    context: float = 2.0  # crop side = context x the box's longer side, around the box (`square_crop`)
    top_k: int = 3  # actions reported per track
    camera_motion: bool = True  # shift the tracks by the camera's pan between looks (`CameraMotion`)
    settle: float = 1.0  # seconds a person is followed before their action is named
    min_action: float = 0.3  # least probability of a named action (below it: no action)


def named_action(best: dict, *, seen: float, config: PeopleConfig) -> dict | None:
    """The action a user is told a person does: the most probable one (`best`, `{"label",
    "score"}`), once the person has been followed for `settle` seconds (a new track's first crops
    say little) and if its probability reaches `min_action`; else None ("no action"). Results:
    results/people_actions.md."""
    return best if seen >= config.settle and best["score"] >= config.min_action else None


class StepClock:
    """Which tracked people a look recognises: each one at the recogniser's `rate` (MoViNet reads
    5 frames a second, as `vidrec stream` feeds it; looks at 10 or 25 a second would show it
    motion slower than it learnt, and cost one step a person a look), from their first look on;
    everyone at every look when the looks come no faster. A person is due at the first look at or
    after (within half a look) a period since their last step."""

    def __init__(self, rate: float | None, fps: float):
        self.period = 0.0 if rate is None or rate >= fps else 1.0 / rate
        self.slack = 0.5 / fps
        self.next: dict[int, float] = {}

    def due(self, track_id: int, time: float) -> bool:
        """Whether `track_id` is recognised at the look at `time` (and if so, its next due time)."""
        upcoming = self.next.get(track_id)
        if upcoming is not None and time < upcoming - self.slack:
            return False
        late = upcoming is None or time > upcoming + self.period  # first look, or back after a gap
        self.next[track_id] = (time if late else upcoming) + self.period
        return True

    def keep(self, ids: set[int]) -> None:
        """Forget the people not in `ids` (no longer tracked)."""
        self.next = {i: t for i, t in self.next.items() if i in ids}


def people_actions(
    path: str | os.PathLike,
    *,
    detector: PersonDetector,
    recognizer: PersonRecognizer,
    config: PeopleConfig = PeopleConfig(),
    tracking: TrackerConfig = TrackerConfig(),
    every_frame: bool = False,
    probs: bool = False,
    realtime: bool = True,
    timeout: float = 10.0,
) -> Iterator[dict]:
    """Per frame looked at (`fps`), `{"time", "frame", "tracks": [{"id", "box" (pixels), "score",
    "seen" (seconds since first seen), "action" ({"label", "score"} or None: `named_action`),
    "actions": [{"label", "score"}] (the top-k, named or not)}]}` (action scores: softmax over
    the model's classes; an AVA detector's: one sigmoid each). With
    `every_frame`, every decoded frame is yielded with its `"image"` (RGB uint8) and the latest
    tracks (`"keyframe": False` between looks): what an annotated video needs. `probs` adds each
    track's full distribution (`"probs"`, a tensor) for per-person segments. `path` may be a live
    source (`vidrec.io.live`; `realtime` and `timeout` as there)."""
    if config.fps <= 0:
        raise ConfigError(f"fps must be > 0, got {config.fps}")
    tracker = Tracker(tracking, fps=config.fps)
    motion = CameraMotion() if config.camera_motion else None
    clock = StepClock(recognizer.rate, config.fps)
    latest: list[dict] = []
    first_seen: dict[int, float] = {}
    held: dict[int, object] = {}  # per track, its probabilities at its latest step
    for index, time, rgb, look in _frames(path, config.fps, realtime=realtime, timeout=timeout):
        recognizer.observe(rgb)
        if look:
            persons = detector(rgb[None], times=[time])[0]
            shift = motion(rgb) if motion is not None else None
            tracks = tracker.update(persons.boxes, persons.scores, shift=shift)
            due = [t for t in tracks if clock.due(t.id, time)]
            held.update(zip((t.id for t in due), recognizer.recognize(rgb, due, context=config.context)))
            latest = []
            for track in tracks:
                p = held[track.id]
                seen = time - first_seen.setdefault(track.id, time)
                actions = top_predictions(p, recognizer.model, config.top_k)
                entry = {
                    "id": track.id,
                    "box": [round(float(v), 1) for v in track.box],
                    "score": round(track.score, 4),
                    "seen": round(seen, 3),
                    "action": named_action(actions[0], seen=seen, config=config),
                    "actions": actions,
                }
                latest.append({**entry, "probs": p} if probs else entry)
            recognizer.keep({t.id for t in tracker.tracks})
            clock.keep(recognizer.alive)
            first_seen = {i: t for i, t in first_seen.items() if i in recognizer.alive}
            held = {i: p for i, p in held.items() if i in recognizer.alive}
        if look or every_frame:
            out = {"time": round(time, 3), "frame": index, "tracks": latest}
            yield {**out, "keyframe": look, "image": rgb} if every_frame else out


def _frames(
    path, fps: float, *, realtime: bool, timeout: float
) -> Iterator[tuple[int, float, np.ndarray, bool]]:
    """`(index, time, rgb, looked at)` of each frame of a file (looks evenly at `fps` by
    timestamps), or of a live source (looks at the first frame taken at or after each tick)."""
    if is_live_source(str(path)):
        reader = LiveReader(str(path), realtime=realtime, timeout=timeout)
        for index, (t, f, look) in enumerate(sample_live(reader, fps)):
            yield index, t, f.rgb, look
        return
    with VideoReader(path) as video:
        looked_at = set(resample_timeline(video.timestamps, fps).tolist())
        for index, rgb in read_ahead(video.indexed_frames()):  # the next frames decode meanwhile
            yield index, float(video.timestamps[index]), rgb, index in looked_at


__all__ = ["PeopleConfig", "StepClock", "named_action", "people_actions"]
