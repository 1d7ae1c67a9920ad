"""Who does what: people found in frames sampled at a steady rate, linked into tracks, and each
track's crops recognised by a stream model holding one state per person (MoViNet-A0 Stream by
default, which reads about 5 frames per second), or every track's box scored at once by an AVA
action detector on the most recent frames (`BoxRecognizer`).

    frames at `fps` ─> PersonDetector ─> boxes ─> Tracker ─> tracks (stable ids)
                                                    └─> per track: square crop with context
                                                          ─> model.step(crop, state[id]) ─> top-k

One decoded frame is held at a time; a track's state is dropped when the track ends, so memory
follows the number of people in view, not the video's length.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidrec.data.sampling import resample_timeline
from vidrec.data.transforms import frames_to_clip, normalize, resize_short_side
from vidrec.engine.people import PersonDetector
from vidrec.engine.topk import top_predictions
from vidrec.engine.tracking import Tracker, TrackerConfig
from vidrec.errors import ConfigError
from vidrec.io.live import LiveReader, is_live_source, sample_live
from vidrec.io.video import VideoReader
from vidrec.models.base import StreamingModel


@dataclass(frozen=True)
class PeopleConfig:
    """How often to look and how much of each person the recognizer sees."""

    fps: float = 5.0  # frames per second detected, tracked and recognised (MoViNet's rate)
    context: float = 1.5  # crop side = context x the box's longer side, centred on the box
    top_k: int = 3  # actions reported per track


def square_crop(frame: np.ndarray, box, *, context: float, size: int) -> torch.Tensor:
    """A square of side `context` x the box's longer side around its centre, from an `(H, W, 3)`
    uint8 frame (black beyond the frame's edges), resized to `size`: `(3, size, size)` float 0-255."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(context * max(x2 - x1, y2 - y1), 2.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = int(round(side))
    canvas = np.zeros((n, n, 3), np.uint8)
    h, w = frame.shape[:2]
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + n, w), min(top + n, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = frame[sy0:sy1, sx0:sx1]
    x = torch.from_numpy(canvas).permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


class TrackRecognizer:
    """A stream model with one state per track: `step(track_id, crop)` -> logits after that
    person's crops so far, or with `window` (seconds at `fps` crops a second) over that person's
    last crops only; `keep(ids)` forgets the others."""

    def __init__(self, model: StreamingModel, *, window: float | None = None, fps: float = 5.0):
        if not isinstance(model, StreamingModel):
            raise ConfigError(
                f"{model.arch} is not a stream model: per-person recognition needs one state per "
                f"person (e.g. movinet_a0_stream)"
            )
        if window is not None and not hasattr(model, "step_features"):
            raise ConfigError(f"{model.arch} cannot pool over a window (it has no step_features)")
        self.model = model.eval()
        self.prep = model.preprocessing
        self.size = self.prep.test_crop_size or self.prep.crop_size
        self.window = None if window is None else max(1, round(window * fps))
        self.states: dict[int, dict] = {}
        self.alive: set[int] = set()  # ids the tracker still follows (`keep`)
        self.recent: dict[int, deque] = {}  # per track, its last `window` frames' features (1, P)

    @torch.inference_mode()
    def step(self, track_id: int, crop: torch.Tensor) -> torch.Tensor:
        """`crop (3, S, S)` 0-255 -> logits `(classes,)`."""
        pixels = crop.round().clamp(0, 255).to(torch.uint8)[:, None]  # (3, 1, S, S)
        clip = normalize(pixels, self.prep.mean, self.prep.std, centering=self.prep.centering)
        clip = clip[None].to(next(self.model.parameters()).device)
        state = self.states.get(track_id)
        if state is None:
            state = self.model.init_state(1, height=self.size, width=self.size)
        if self.window is None:
            logits, self.states[track_id] = self.model.step(clip, state)
        else:
            feats, self.states[track_id] = self.model.step_features(clip, state)  # (1, 1, P)
            recent = self.recent.setdefault(track_id, deque(maxlen=self.window))
            recent.append(feats[:, -1])
            logits = self.model.forward_head(torch.cat(list(recent)).mean(0, keepdim=True))
        return logits[0].float().cpu()

    def keep(self, ids: set[int]) -> None:
        """Forget the states of tracks not in `ids` (they ended)."""
        self.alive = set(ids)
        self.states = {i: s for i, s in self.states.items() if i in ids}
        self.recent = {i: r for i, r in self.recent.items() if i in ids}

    def observe(self, rgb: np.ndarray) -> None:
        """Every decoded frame passes here; a stream model needs only the frames it looks at."""

    def recognize(self, rgb: np.ndarray, tracks: list, *, context: float) -> list[torch.Tensor]:
        """Per track, its action probabilities (softmax) after this look's crop."""
        return [
            self.step(t.id, square_crop(rgb, t.box, context=context, size=self.size)).softmax(-1)
            for t in tracks
        ]


class BoxRecognizer:
    """An AVA action detector (`*_ava`) on the tracks' boxes: the clip of its `num_frames x
    sampling_rate` most recent frames (the look is the clip's last frame: online, nothing from
    the future) with every person's box at once; per person, one sigmoid per action."""

    def __init__(self, model):
        from vidrec.models.base import DetectionModel

        if not isinstance(model, DetectionModel):
            raise ConfigError(f"{model.arch} is not an action detector (an *_ava model)")
        self.model = model.eval()
        self.prep = model.preprocessing
        self.frames: deque = deque(maxlen=self.prep.num_frames * self.prep.sampling_rate)
        self.scale = 1.0
        self.alive: set[int] = set()  # ids the tracker still follows (`keep`)

    def observe(self, rgb: np.ndarray) -> None:
        """Keep the frame, at the model's test size (short side `test_crop_size`)."""
        clip = resize_short_side(frames_to_clip(rgb[None]), self.prep.test_crop_size or self.prep.resize)
        self.scale = clip.shape[-1] / rgb.shape[1]
        self.frames.append(clip)

    def keep(self, ids: set[int]) -> None:
        """Nothing per person to forget (the clip is shared); `alive` says who is tracked."""
        self.alive = set(ids)

    @torch.inference_mode()
    def recognize(self, rgb: np.ndarray, tracks: list, *, context: float) -> list[torch.Tensor]:
        """Per track, its action probabilities (sigmoid) on the clip ending at this frame."""
        if not tracks:
            return []
        frames = list(self.frames)
        frames = [frames[0]] * (self.frames.maxlen - len(frames)) + frames  # the start repeated
        clip = torch.cat(frames[self.prep.sampling_rate - 1 :: self.prep.sampling_rate], dim=1)
        x = normalize(clip, self.prep.mean, self.prep.std, centering=self.prep.centering)[None]
        boxes = torch.tensor([[0.0, *(float(v) * self.scale for v in t.box)] for t in tracks])
        device = next(self.model.parameters()).device
        return list(torch.sigmoid(self.model(x.to(device), boxes.to(device)).float().cpu()))


def person_detector(model, *, min_score: float = 0.5, tile: int | None = None) -> PersonDetector:
    """People from an image detector model (SSD MobileNet): class person, scored >= `min_score`,
    on `tile`-pixel tiles too for wide shots."""
    from vidrec.engine.people import SSDPersons
    from vidrec.models.ssd import SSDMobileNetV1

    if not isinstance(model, SSDMobileNetV1):
        raise ConfigError(f"{model.arch} is not a person detector (e.g. ssd_mobilenet_v1.coco_uint8)")
    return SSDPersons(model, min_score=min_score, tile=tile)


def person_recognizer(
    model, *, window: float | None = 2.0, fps: float = 5.0
) -> TrackRecognizer | BoxRecognizer:
    """Per-person actions from `model`: a stream model holds one state per person (pooling its
    last `window` seconds; None or 0: since first seen); an AVA detector (`*_ava`) scores every
    box at once."""
    from vidrec.models.base import DetectionModel

    if isinstance(model, DetectionModel):
        return BoxRecognizer(model)
    return TrackRecognizer(model, window=window if window else None, fps=fps)


def people_actions(
    path: str | os.PathLike,
    *,
    detector: PersonDetector,
    recognizer: TrackRecognizer | BoxRecognizer,
    config: PeopleConfig = PeopleConfig(),
    tracking: TrackerConfig = TrackerConfig(),
    every_frame: bool = False,
    probs: bool = False,
    realtime: bool = True,
    timeout: float = 10.0,
) -> Iterator[dict]:
    """Per frame looked at (`fps`), `{"time", "frame", "tracks": [{"id", "box" (pixels), "score",
    "actions": [{"label", "score"}]}]}` (action scores: softmax over the model's classes). With
    `every_frame`, every decoded frame is yielded with its `"image"` (RGB uint8) and the latest
    tracks (`"keyframe": False` between looks): what an annotated video needs. `probs` adds each
    track's full distribution (`"probs"`, a tensor) for per-person segments. `path` may be a live
    source (`vidrec.io.live`; `realtime` and `timeout` as there)."""
    if config.fps <= 0:
        raise ConfigError(f"fps must be > 0, got {config.fps}")
    tracker = Tracker(tracking)
    latest: list[dict] = []
    for index, time, rgb, look in _frames(path, config.fps, realtime=realtime, timeout=timeout):
        recognizer.observe(rgb)
        if look:
            persons = detector(rgb[None], times=[time])[0]
            tracks = tracker.update(persons.boxes, persons.scores)
            latest = []
            for track, p in zip(tracks, recognizer.recognize(rgb, tracks, context=config.context)):
                entry = {
                    "id": track.id,
                    "box": [round(float(v), 1) for v in track.box],
                    "score": round(track.score, 4),
                    "actions": top_predictions(p, recognizer.model, config.top_k),
                }
                latest.append({**entry, "probs": p} if probs else entry)
            recognizer.keep({t.id for t in tracker.tracks})
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
        for index, rgb in video.indexed_frames():
            yield index, float(video.timestamps[index]), rgb, index in looked_at


_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def draw_tracks(image: np.ndarray, tracks: list[dict]) -> np.ndarray:
    """The frame with each track's box, id and top action drawn (one colour per id)."""
    from PIL import Image, ImageDraw

    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    width = max(2, image.shape[1] // 400)
    for t in tracks:
        colour = _COLOURS[t["id"] % len(_COLOURS)]
        x1, y1, x2, y2 = t["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        best = t["actions"][0] if t["actions"] else None
        text = f"{t['id']}" + (f" {best['label']} {best['score']:.2f}" if best else "")
        left, top, right, bottom = draw.textbbox((0, 0), text)
        tall = bottom - top + 4
        y = y1 - tall if y1 >= tall else y1  # above the box, or inside it at the frame's top edge
        draw.rectangle([x1, y, x1 + right - left + 4, y + tall], fill=colour)
        draw.text((x1 + 2, y + 1), text, fill=(0, 0, 0))
    return np.asarray(out)


__all__ = [
    "BoxRecognizer",
    "PeopleConfig",
    "TrackRecognizer",
    "draw_tracks",
    "people_actions",
    "person_detector",
    "person_recognizer",
    "square_crop",
]
