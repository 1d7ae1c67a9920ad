"""Each session's settings, one frozen dataclass per kind, with the one set of defaults that the
command line (its flags) and the service (its form fields) both take. A setting left out keeps the
default here; a bad one is refused with a one-line `ConfigError` before any model loads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vidrec.errors import ConfigError, unknown_name_message
from vidrec.train.config import SpottingSection


@dataclass(frozen=True)
class LiveOptions:
    """How a live source (a stream URL, a camera, stdin) is read; a file ignores these."""

    realtime: bool = True  # the newest frame when busy (False: every frame, may lag)
    timeout: float = 10.0  # seconds without a frame: the source has stalled

    def __post_init__(self):
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")


@dataclass(frozen=True)
class StreamOptions(LiveOptions):
    """`stream`: the running top-k of a stream model, segments of its scores as they close."""

    every: float = 1.0  # seconds of video between reports
    top_k: int = 5  # classes reported
    window: float | None = None  # seconds pooled per report (None or 0: everything since the start)
    segments: str | None = None  # write the segments here (JSON Lines)
    timeline: str | None = None  # write the scores and segments over time here (PNG)

    def __post_init__(self):
        super().__post_init__()
        _positive(every=self.every, top_k=self.top_k)
        if self.window is not None and self.window < 0:
            raise ConfigError(f"window must be >= 0 seconds, got {self.window}")


@dataclass(frozen=True)
class DetectOptions(LiveOptions):
    """`detect`: who does what, people found, tracked, and each one's actions recognised."""

    fps: float = 5.0  # frames per second looked at (people's actions: at most the model's rate)
    min_score: float = 0.7  # least person score that starts a track (weaker ones, from 0.4, only extend one)
    tile: str = "auto"  # tile side in px, "off", or "auto" (see `tile_side`, `fit_for`)
    context: float = 2.0  # crop side / the person box's longer side (at most the frame's short side)
    window: float = 2.0  # seconds of each person's crops pooled per score (0: since first seen)
    top_k: int = 3  # actions reported per person
    settle: float = 1.0  # seconds a person is followed before their action is named
    min_action: float = 0.3  # least probability of a named action (below it: "no action")
    boxes: str | None = None  # people's boxes from an AVA-style CSV instead of the detector
    video_id: str | None = None  # the video's id in `boxes` (default: the file name without extension)
    out: str | None = None  # write the video with boxes, ids and actions drawn (mp4)
    segments: str | None = None  # write each person's action segments (JSON Lines)
    timeline: str | None = None  # write each person's action segments over time (PNG)
    mot: str | None = None  # write the tracks as MOTChallenge rows (frame,id,x,y,w,h,score,-1,-1,-1)

    def __post_init__(self):
        super().__post_init__()
        _positive(fps=self.fps, context=self.context, top_k=self.top_k)
        if not 0 < self.min_score < 1:
            raise ConfigError(f"min_score must be in (0, 1), got {self.min_score}")
        if not 0 <= self.min_action <= 1:
            raise ConfigError(f"min_action must be in [0, 1], got {self.min_action}")
        if self.settle < 0:
            raise ConfigError(f"settle must be >= 0 seconds, got {self.settle}")
        if self.window < 0:
            raise ConfigError(f"window must be >= 0 seconds, got {self.window}")
        tile_side(self.tile, 0, 0)  # a bad value fails now

    def tile_for(self, width: int, height: int) -> int | None:
        """The tile side for frames of this size, at first (None: whole frames only)."""
        return tile_side(self.tile, width, height)

    def fit_for(self, width: int, height: int) -> tuple[int, int] | None:
        """With "auto" on a frame whose short side is under 1000 px: the least and the most tile
        side, between which the tiles follow the size of the people found (`SSDPersons`)."""
        short = min(width, height)
        return (min(240, short), short) if str(self.tile) == "auto" and 0 < short < 1000 else None


@dataclass(frozen=True)
class HighlightsOptions(LiveOptions):
    """`highlights`: the best segments of some labels cut into one reel (mp4, with audio)."""

    out: str = "reel.mp4"  # the reel; OUT.segments.jsonl and OUT.timeline.png beside it
    labels: tuple[str, ...] = ()  # actions kept (empty: any)
    top: int = 5  # segments in the reel, best peak first
    pad: float = 1.0  # seconds added before and after each segment
    window: float = 2.0  # seconds of frames pooled per score (0: since the start)
    every: float = 0.5  # seconds between scores
    on: float = 0.4  # smoothed score that opens a segment
    off: float = 0.2  # smoothed score below which it closes (at most `on`)
    duration: float = 60.0  # a live source: seconds recorded first
    record: str | None = None  # a live source: keep its recording here
    # events instead of segments: results_spotting.json / a CSV / a folder (vidrec spot --out); the
    # reel is cut around the most confident events, no model runs
    events: str | None = None

    def __post_init__(self):
        super().__post_init__()
        _positive(top=self.top, every=self.every, duration=self.duration)
        if self.pad < 0 or self.window < 0:
            raise ConfigError(f"pad and window must be >= 0 seconds, got {self.pad} and {self.window}")
        if not 0 <= self.on <= 1:
            raise ConfigError(f"on must be in [0, 1], got {self.on}")


@dataclass(frozen=True)
class PredictOptions(LiveOptions):
    """`predict`: the top-k of one video (a live source recorded for `duration` s first)."""

    top_k: int = 5  # classes reported
    num_clips: int | None = None  # clip models: uniform clips (default: the model's)
    num_crops: int | None = None  # 1 or 3 spatial crops per clip
    duration: float = 10.0  # a live source: seconds recorded first
    record: str | None = None  # a live source: keep its recording here
    flow_dir: str | None = None  # two-stream models: precomputed flow

    def __post_init__(self):
        super().__post_init__()
        _positive(top_k=self.top_k, duration=self.duration)


@dataclass(frozen=True)
class SpotOptions(LiveOptions):
    """`spot`: events in time found by a spotter (a run of task spotting) on its extractor's features."""

    nms: float = SpottingSection.nms  # seconds: a weaker peak within nms/2 of an event is dropped
    threshold: float = SpottingSection.threshold  # events below this probability are not reported
    out: str | None = None  # write the events: results_spotting.json, a .csv, or a folder
    video: str | None = None  # the name the events carry (default: the file's, without extension)

    def __post_init__(self):
        super().__post_init__()
        if self.nms < 0 or not 0 <= self.threshold <= 1:
            raise ConfigError(
                f"nms must be >= 0 s and threshold in [0, 1], got {self.nms} and {self.threshold}"
            )


OPTIONS = {
    "predict": PredictOptions,
    "stream": StreamOptions,
    "detect": DetectOptions,
    "highlights": HighlightsOptions,
    "spot": SpotOptions,
}
KINDS = tuple(OPTIONS)


def options_for(kind: str, **given) -> LiveOptions:
    """The options of a `kind` session from the settings given (None: the default); settings that
    kind does not take are ignored, so one form serves every kind."""
    if kind not in OPTIONS:
        raise ConfigError(unknown_name_message("session kind", kind, list(KINDS)))
    cls = OPTIONS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in given.items() if k in names and v is not None})


def tile_side(value: str, width: int, height: int) -> int | None:
    """A tile setting: a side in pixels, "off", or "auto": 400 px tiles on frames whose short side
    is 1000 px or more, where people are a few dozen pixels tall; else, on a frame that is not
    square, square tiles of its short side, because the detector's input is square and a 4:3 frame
    squeezed into it makes people thinner (results/tracking.md compares the two on TUD-Campus); off
    for a square frame and for a live source, whose size is not known before it starts (0 x 0)."""
    value = str(value)
    if value == "off":
        return None
    if value == "auto":
        short, long = sorted((width, height))
        if short >= 1000:
            return 400
        return short if short > 0 and long > 1.1 * short else None
    try:
        side = int(value)
    except ValueError:
        raise ConfigError(f"tile must be a number of pixels, 'auto' or 'off', got {value!r}") from None
    if side < 64:
        raise ConfigError(f"tile {side}: tiles smaller than 64 px leave nobody to find")
    return side


def _positive(**values) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"{name} must be > 0, got {value}")


__all__ = [
    "KINDS",
    "OPTIONS",
    "DetectOptions",
    "HighlightsOptions",
    "LiveOptions",
    "PredictOptions",
    "SpotOptions",
    "StreamOptions",
    "options_for",
    "tile_side",
]
