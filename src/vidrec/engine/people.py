"""Finding people in frames, behind one small interface: a `PersonDetector` takes uint8 frames
`(N, H, W, 3)` and gives, per frame, `Persons` (boxes in frame pixels, scores). Two kinds here:

- `SSDPersons`: an image detector model (the imported SSD MobileNet) on the whole frame and, for
  wide shots, on overlapping square tiles. In a 3072x1728 soccer frame players are a few dozen
  pixels tall, and the whole frame squeezed to 300x300 leaves them 5-10 px: below the detector's
  smallest anchors (30 px). Tiles of ~400 px bring them to 30+ px. Boxes from every tile go back to
  frame pixels and are merged: NMS across tiles, then a box mostly inside a better one is dropped
  (the same person cut by one tile's edge and seen whole by the next).
- `CSVPersons`: boxes read from an AVA-style boxes CSV (video_id, sec, x1, y1, x2, y2, [action],
  score), for footage whose people were found elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torchvision.ops import box_area, nms

from vidrec.data.ava import frame_key, read_boxes
from vidrec.errors import ConfigError


@dataclass
class Persons:
    """The people in one frame: `boxes (K, 4)` x1 y1 x2 y2 in frame pixels, `scores (K,)`."""

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class PersonDetector(Protocol):
    def __call__(self, frames: np.ndarray) -> list[Persons]: ...


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
    boxes: torch.Tensor, scores: torch.Tensor, *, iou: float = 0.5, inside: float = 0.7
) -> torch.Tensor:
    """Indices kept of boxes found in overlapping tiles: NMS at `iou`; then two boxes one of which
    lies mostly (`inside` of its area) within the other are one person, cut by one tile's edge
    and seen whole by the next, or boxed at two scales: the outer box stays."""
    kept: list[int] = []
    for i in nms(boxes, scores, iou).tolist():  # best first
        if kept:
            other = boxes[kept]
            lt = torch.maximum(other[:, :2], boxes[i, :2])
            rb = torch.minimum(other[:, 2:], boxes[i, 2:])
            overlap = (rb - lt).clamp(min=0).prod(1)
            if (overlap / box_area(boxes[i : i + 1]).clamp(min=1e-9)).max() >= inside:
                continue  # i is the part
            whole = (overlap / box_area(other).clamp(min=1e-9)) >= inside
            if whole.any():  # a kept box is the part: i takes its place
                kept[int(whole.nonzero()[0])] = i
                continue
        kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


class SSDPersons:
    """People from an image detector with `detect_frames` (SSDMobileNetV1): class `person_class`
    scored at least `min_score`, on the whole frame and, with `tile`, on overlapping tiles."""

    def __init__(
        self,
        model,
        *,
        person_class: int = 0,
        min_score: float = 0.5,
        tile: int | None = None,
        overlap: float = 0.25,
        batch_size: int = 16,
    ):
        self.model, self.person_class, self.min_score = model.eval(), person_class, min_score
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.tiles_per_frame = 1

    def _crops(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        h, w = frame.shape[:2]
        whole = [(0, 0, w, h)]
        if self.tile is None or max(h, w) <= self.tile:
            return whole
        return whole + tile_grid(h, w, tile=self.tile, overlap=self.overlap)

    def _detect(self, crops: list[np.ndarray]) -> list[dict]:
        out = []
        for start in range(0, len(crops), self.batch_size):
            out += self.model.detect_frames(crops[start : start + self.batch_size])
        return out

    def __call__(self, frames: np.ndarray) -> list[Persons]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"expected uint8 frames (N, H, W, 3), got {frames.shape} {frames.dtype}")
        results = []
        for frame in frames:
            h, w = frame.shape[:2]
            regions = self._crops(frame)
            self.tiles_per_frame = len(regions)
            found = self._detect([frame[y0:y1, x0:x1] for x0, y0, x1, y1 in regions])
            boxes, scores = [], []
            for (x0, y0, x1, y1), d in zip(regions, found):
                mine = (d["classes"] == self.person_class) & (d["scores"] >= self.min_score)
                scale = torch.tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
                b = d["boxes"][mine] * scale + torch.tensor([x0, y0, x0, y0])  # frame pixels
                b[:, 0::2] = b[:, 0::2].clamp(0, w)
                b[:, 1::2] = b[:, 1::2].clamp(0, h)
                boxes.append(b)
                scores.append(d["scores"][mine])
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            keep = merge_tiles(boxes, scores) if len(regions) > 1 else torch.arange(len(scores))
            results.append(Persons(boxes[keep].numpy(), scores[keep].numpy()))
        return results


class CSVPersons:
    """People from an AVA-style boxes CSV: `persons(video_id, sec, width, height)` -> the boxes of
    that keyframe (scores as written), in pixels of a `width` x `height` frame."""

    def __init__(self, path: str, *, min_score: float = 0.0):
        self.by_key: dict[str, list] = {}
        for row in read_boxes(path, kind="boxes"):
            if row.score is None or row.score >= min_score:
                self.by_key.setdefault(row.key, []).append(row)

    def persons(self, video_id: str, sec: int, width: int, height: int) -> Persons:
        """The boxes of keyframe (`video_id`, `sec`) in pixels of a `width` x `height` frame."""
        rows = self.by_key.get(frame_key(video_id, sec), [])
        size = np.array([width, height, width, height], dtype=np.float32)
        boxes = np.array([r.box for r in rows], dtype=np.float32).reshape(-1, 4) * size
        return Persons(boxes, np.array([1.0 if r.score is None else r.score for r in rows], dtype=np.float32))


__all__ = ["CSVPersons", "PersonDetector", "Persons", "SSDPersons", "merge_tiles", "tile_grid"]
