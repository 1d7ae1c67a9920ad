"""Per-person action recognisers, behind one `PersonRecognizer` protocol: `observe(frame)` sees
every decoded frame, `recognize(frame, tracks, context=...)` scores each tracked person at a look,
`keep(ids)` forgets the people no longer tracked, `alive` says who still is.

- `TrackRecognizer`: a stream model holding one state per person, fed that person's square crops.
- `BoxRecognizer`: an AVA action detector scoring every tracked box at once on the clip of the
  most recent frames.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from vidrec.data.transforms import frames_to_clip, normalize, resize_short_side
from vidrec.errors import ConfigError
from vidrec.models.base import DetectionModel, ModelBase, StreamingModel
from vidrec.recognize.stream import WindowPool


class PersonRecognizer(Protocol):
    """What the pipeline asks of a per-person recogniser."""

    model: ModelBase
    alive: set[int]
    rate: float | None  # crops a second each person's model reads (None: one at every look)

    def observe(self, rgb: np.ndarray) -> None:
        """Every decoded frame `(H, W, 3)` uint8, in order."""

    def recognize(self, rgb: np.ndarray, tracks: list, *, context: float) -> list[torch.Tensor]:
        """Per track, its action probabilities at this look."""

    def keep(self, ids: set[int]) -> None:
        """Forget the people not in `ids` (no longer tracked)."""


def square_crop(frame: np.ndarray, box, *, context: float, size: int) -> torch.Tensor:
    """A square of side `context` x the box's longer side around the box, from an `(H, W, 3)`
    uint8 frame, resized to `size`: `(3, size, size)` float 0-255. The square is at most the
    frame's short side and slides to lie inside the frame (the person off its centre near an
    edge), so the model sees the scene around a person rather than black borders (on the shared
    clips: results/people_actions.md); only a box larger than the frame leaves black beyond it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    h, w = frame.shape[:2]
    longer = max(x2 - x1, y2 - y1, 2.0)
    side = max(min(context * longer, h, w), longer)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    cx = min(max(cx, side / 2), w - side / 2) if side <= w else w / 2
    cy = min(max(cy, side / 2), h - side / 2) if side <= h else h / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = int(round(side))
    canvas = np.zeros((n, n, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + n, w), min(top + n, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = frame[sy0:sy1, sx0:sx1]
    x = torch.from_numpy(canvas).permute(2, 0, 1)[None]  # resized on uint8: PyTorch's fast kernel
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[
        0
    ].float()


class TrackRecognizer:
    """A stream model with one state per track: `step(track_id, crop)` -> logits after that
    person's crops so far, or with `window` (seconds) over that person's last crops only;
    `keep(ids)` forgets the others. Each person's crops are meant to come at `rate`, the rate the
    model reads a stream at (MoViNet: 5 a second), or at `fps`, the looks' rate, if that is
    lower (the pipeline steps each person on its own clock: `StepClock`)."""

    def __init__(self, model: StreamingModel, *, window: float | None = None, fps: float = 5.0):
        if not isinstance(model, StreamingModel):
            raise ConfigError(
                f"{model.arch} is not a stream model: per-person recognition needs one state per "
                f"person (e.g. movinet_a0_stream)"
            )
        self.model = model.eval()
        self.prep = model.preprocessing
        self.size = self.prep.test_crop_size or self.prep.crop_size
        self.rate = self.prep.target_fps
        steps = fps if self.rate is None else min(fps, self.rate)  # crops a second per person
        self.window = None if window is None else max(1, round(window * steps))
        self.states: dict[int, dict] = {}
        self.alive: set[int] = set()  # ids the tracker still follows (`keep`)
        self.pools: dict[int, WindowPool] = {}  # per track, its last `window` frames' features

    @torch.inference_mode()
    def step(self, track_id: int, crop: torch.Tensor) -> torch.Tensor:
        """`crop (3, S, S)` 0-255 -> logits `(classes,)`."""
        return self.step_all([track_id], crop[None])[0]

    @torch.inference_mode()
    def step_all(self, track_ids: list[int], crops: torch.Tensor) -> torch.Tensor:
        """Each track's next crop `(N, 3, S, S)` 0-255 -> logits `(N, classes)`: one step of the
        model for all of them (their states stacked, each at its own frame count) where the model
        is `batched`, else one step each."""
        if not self.model.batched and len(track_ids) > 1:
            return torch.cat([self.step_all([i], c[None]) for i, c in zip(track_ids, crops)])
        pixels = crops.round().clamp(0, 255).to(torch.uint8)[:, :, None]  # (N, 3, 1, S, S)
        clip = normalize(pixels, self.prep.mean, self.prep.std, centering=self.prep.centering)
        clip = clip.to(self.model.device)
        states = [
            self.states.get(i) or self.model.init_state(1, height=self.size, width=self.size)
            for i in track_ids
        ]
        state = states[0] if len(states) == 1 else self.model.stack_states(states)
        if self.window is None:
            logits, new = self.model.step(clip, state)
        else:
            feats, new = self.model.step_features(clip, state)  # (N, 1, P)
            means = []
            for i, f in zip(track_ids, feats):
                pool = self.pools.setdefault(i, WindowPool(self.model, self.window))
                pool.add(f)
                means.append(pool.mean())
            logits = self.model.forward_head(torch.cat(means))  # every track's window at once
        news = [new] if len(track_ids) == 1 else self.model.unstack_state(new, len(track_ids))
        self.states.update(zip(track_ids, news))
        return logits.float().cpu()

    def keep(self, ids: set[int]) -> None:
        """Forget the states of tracks not in `ids` (they ended)."""
        self.alive = set(ids)
        self.states = {i: s for i, s in self.states.items() if i in ids}
        self.pools = {i: p for i, p in self.pools.items() if i in ids}

    def observe(self, rgb: np.ndarray) -> None:
        """Every decoded frame passes here; a stream model needs only the frames it looks at."""

    def recognize(self, rgb: np.ndarray, tracks: list, *, context: float) -> list[torch.Tensor]:
        """Per track, its action probabilities (softmax) after this look's crop (one step for all)."""
        if not tracks:
            return []
        crops = torch.stack([square_crop(rgb, t.box, context=context, size=self.size) for t in tracks])
        return list(self.step_all([t.id for t in tracks], crops).softmax(-1))


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
        self.rate = None  # every look: its clip is the frames decoded, whatever the looks' rate

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
        device = self.model.device
        return list(torch.sigmoid(self.model(x.to(device), boxes.to(device)).float().cpu()))


def person_recognizer(
    model, *, window: float | None = 2.0, fps: float = 5.0
) -> TrackRecognizer | BoxRecognizer:
    """Per-person actions from `model`: a stream model holds one state per person (pooling its
    last `window` seconds; None or 0: since first seen); an AVA detector (`*_ava`) scores every
    box at once."""
    if isinstance(model, DetectionModel):
        return BoxRecognizer(model)
    return TrackRecognizer(model, window=window if window else None, fps=fps)


__all__ = ["BoxRecognizer", "PersonRecognizer", "TrackRecognizer", "person_recognizer", "square_crop"]
