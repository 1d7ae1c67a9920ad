"""Finding people in frames, behind one small interface: a `PersonDetector` takes uint8 frames
`(N, H, W, 3)` (and their times in seconds, which a detector may ignore) and gives, per frame,
`Persons` (boxes in frame pixels, scores). Two kinds here:

- `SSDPersons`: an image detector model (the imported SSD MobileNet) on the whole frame and, for
  wide shots, on overlapping square tiles. In a 3072x1728 soccer frame players are a few dozen
  pixels tall, and the whole frame squeezed to 300x300 leaves them 5-10 px: below the detector's
  smallest anchors (30 px). Tiles of ~400 px bring them to 30+ px. Boxes from every tile go back to
  frame pixels and are merged: NMS across tiles, then a box mostly inside a better one is dropped
  (the same person cut by one tile's edge and seen whole by the next).
- `CSVPersons`: boxes read from an AVA-style boxes CSV (video_id, sec, x1, y1, x2, y2, [action],
  score), for footage whose people were found elsewhere: a frame at time t gets the boxes of the
  nearest whole second (AVA's keyframes are 1 s apart).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torchvision.ops import box_area, nms

from vidrec.data.ava import frame_key, read_boxes
from vidrec.errors import ConfigError
from vidrec.models.base import ImageDetector

PEOPLE_PER_TILE = 2.5  # tile side / a person's height, when tiles fit the people found
WHOLE_SIDE = 0.9  # a fitted tile at least this part of the largest is the largest (one row, not two)


@dataclass
class Persons:
    """The people in one frame: `boxes (K, 4)` x1 y1 x2 y2 in frame pixels, `scores (K,)`."""

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class PersonDetector(Protocol):
    def __call__(self, frames: np.ndarray, *, times=None) -> list[Persons]: ...


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"expected uint8 frames (N, H, W, 3), got {frames.shape} {frames.dtype}")
    return frames


def tile_grid(height: int, width: int, *, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Square tiles `(x0, y0, x1, y1)` of side `tile` (the frame's short side if smaller) covering
    the frame, neighbours overlapping by `overlap` of a tile; the last row and column sit on the
    frame's edge."""
    if not 0 <= overlap < 1:
        raise ConfigError(f"tile overlap must be in [0, 1), got {overlap}")
    side = min(tile, height, width)
    step = max(1, int(side * (1 - overlap)))

    def starts(size: int) -> list[int]:
        out = list(range(0, max(size - side, 0) + 1, step))
        return out if out[-1] == size - side else out + [size - side]

    return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


def merge_tiles(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    cut: torch.Tensor | None = None,
    *,
    iou: float = 0.5,
    inside: float = 0.7,
) -> torch.Tensor:
    """Indices kept (best first) of boxes found in overlapping tiles: NMS at `iou`; then a box
    that a tile's edge `cut` (default: any box) and that lies mostly (`inside` of its area) within
    a larger kept box is the part of a person another tile saw whole: dropped, whatever the scores
    (a low-scored large box never removes a confident whole one)."""
    kept = nms(boxes, scores, iou)
    if len(kept) < 2:
        return kept
    b = boxes[kept]
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    overlap = (rb - lt).clamp(min=0).prod(-1)  # (K, K)
    area = box_area(b)
    part = (overlap / area[:, None].clamp(min=1e-9) >= inside) & (area[None] > area[:, None])
    is_cut = torch.ones(len(kept), dtype=torch.bool) if cut is None else cut[kept]
    return kept[~(part.any(1) & is_cut)]


class SSDPersons:
    """People from an `ImageDetector` (SSD MobileNet): class `person_class` scored at least
    `min_score`, on the whole frame and, with `tile`, on overlapping tiles."""

    def __init__(
        self,
        model,
        *,
        person_class: int = 0,
        min_score: float = 0.5,
        tile: int | None = None,
        overlap: float = 0.25,
        batch_size: int = 16,
        max_people: int = 100,
        fit: tuple[int, int] | None = None,
    ):
        self.model, self.person_class, self.min_score = model.eval(), person_class, min_score
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.max_people = max_people
        self.tiles_per_frame = 1
        self.fit = fit
        self.heights: deque = deque(maxlen=64)  # of the people found confidently, latest last

    def _fit_tiles(self, persons: Persons) -> None:
        """Tiles by person size (`fit` = (smallest, largest) side): about `PEOPLE_PER_TILE` x the
        median height of the people lately found with a score >= 0.7, so each is seen at a size the
        detector finds (on TUD-Campus shown at half size, people ~90 px tall, 240-320 px tiles
        find what 480 px tiles miss: results/tracking.md); within `WHOLE_SIDE` of the largest,
        the largest."""
        if self.fit is None:
            return
        boxes = persons.boxes[persons.scores >= 0.7]
        self.heights.extend((boxes[:, 3] - boxes[:, 1]).tolist())
        if len(self.heights) >= 4:
            lo, hi = self.fit
            side = min(max(PEOPLE_PER_TILE * float(np.median(self.heights)), lo), hi)
            # a tile a little short of the frame's short side takes a second row of tiles, almost
            # all overlap: the people are seen at nearly the same size in one row
            self.tile = hi if side >= WHOLE_SIDE * hi else int(side) // 16 * 16

    def _crops(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        h, w = frame.shape[:2]
        whole = [(0, 0, w, h)]
        if self.tile is None or max(h, w) <= self.tile:
            return whole
        return whole + tile_grid(h, w, tile=self.tile, overlap=self.overlap)

    def _detect(self, crops: list[np.ndarray]) -> list[dict]:
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            out += self.model.detect_frames(
                batch, only=self.person_class, max_detections=self.max_people, min_score=self.min_score
            )
        return out

    def __call__(self, frames: np.ndarray, *, times=None) -> list[Persons]:
        frames = _check_frames(frames)
        results = []
        for frame in frames:
            h, w = frame.shape[:2]
            regions = self._crops(frame)
            self.tiles_per_frame = len(regions)
            found = self._detect([frame[y0:y1, x0:x1] for x0, y0, x1, y1 in regions])
            boxes, scores, cut = [], [], []
            for (x0, y0, x1, y1), d in zip(regions, found):  # people only, >= min_score (`_detect`)
                scale = torch.tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
                b = d["boxes"] * scale + torch.tensor([x0, y0, x0, y0])  # frame pixels
                b[:, 0::2] = b[:, 0::2].clamp(0, w)
                b[:, 1::2] = b[:, 1::2].clamp(0, h)
                boxes.append(b)
                scores.append(d["scores"])
                cut.append(_cut_by_edge(b, (x0, y0, x1, y1), w, h))
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            keep = (
                merge_tiles(boxes, scores, torch.cat(cut)) if len(regions) > 1 else torch.arange(len(scores))
            )
            results.append(Persons(boxes[keep].numpy(), scores[keep].numpy()))
            self._fit_tiles(results[-1])
        return results


def _cut_by_edge(boxes: torch.Tensor, region, width: int, height: int, margin: float = 2.0) -> torch.Tensor:
    """Which boxes (frame pixels) touch an edge of their `region` that is inside the frame: the
    person may go on beyond it."""
    x0, y0, x1, y1 = region
    touches = [
        (boxes[:, 0] <= x0 + margin) & (x0 > 0),
        (boxes[:, 1] <= y0 + margin) & (y0 > 0),
        (boxes[:, 2] >= x1 - margin) & (x1 < width),
        (boxes[:, 3] >= y1 - margin) & (y1 < height),
    ]
    return torch.stack(touches).any(0)


class CSVPersons:
    """People from an AVA-style boxes CSV. `persons(video_id, sec, width, height)` -> the boxes of
    that keyframe (scores as written) in pixels of a `width` x `height` frame; as a
    `PersonDetector` (with `video_id`), each frame gets the keyframe nearest its time. A box
    written once per action (a detections CSV) counts once, at its best score."""

    def __init__(self, path: str, *, video_id: str | None = None, min_score: float = 0.0):
        self.video_id = video_id
        best: dict[str, dict[tuple, float]] = {}
        for row in read_boxes(path, kind="boxes"):
            score = 1.0 if row.score is None else row.score
            if score >= min_score:
                boxes = best.setdefault(row.key, {})
                boxes[row.box] = max(score, boxes.get(row.box, score))
        self.by_key = best
        if video_id is not None and not any(k.startswith(f"{video_id},") for k in best):
            videos = sorted({k.split(",")[0] for k in best})
            raise ConfigError(
                f"{path} has no boxes for video {video_id!r}"
                + (f" (it has {', '.join(videos[:5])}{'...' if len(videos) > 5 else ''})" if videos else "")
            )

    def persons(self, video_id: str, sec: int, width: int, height: int) -> Persons:
        """The boxes of keyframe (`video_id`, `sec`) in pixels of a `width` x `height` frame."""
        boxes = self.by_key.get(frame_key(video_id, sec), {})
        size = np.array([width, height, width, height], dtype=np.float32)
        return Persons(
            np.array(list(boxes), dtype=np.float32).reshape(-1, 4) * size,
            np.array(list(boxes.values()), dtype=np.float32),
        )

    def __call__(self, frames: np.ndarray, *, times=None) -> list[Persons]:
        frames = _check_frames(frames)
        if self.video_id is None or times is None or len(times) != len(frames):
            raise ConfigError("boxes from a CSV need the video's id and each frame's time")
        h, w = frames.shape[1:3]
        return [self.persons(self.video_id, int(round(t)), w, h) for t in times]


def person_detector(model, *, min_score: float = 0.5, tile: int | None = None) -> PersonDetector:
    """People from an image detector model (SSD MobileNet): class person, scored >= `min_score`,
    on `tile`-pixel tiles too for wide shots."""
    if not isinstance(model, ImageDetector):
        raise ConfigError(f"{model.arch} is not a person detector (e.g. ssd_mobilenet_v1.coco_uint8)")
    return SSDPersons(model, min_score=min_score, tile=tile)


__all__ = [
    "CSVPersons",
    "PersonDetector",
    "Persons",
    "SSDPersons",
    "merge_tiles",
    "person_detector",
    "tile_grid",
]
