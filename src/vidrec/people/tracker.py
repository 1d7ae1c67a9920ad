"""Person tracks from per-frame boxes: SORT's constant-velocity Kalman filter on each box (Bewley
et al., 2016) with ByteTrack's two-round association (Zhang et al., 2022): confident detections
are matched to the predicted tracks first, then the weak ones (a person half hidden, or scored
0.3-0.5 by a small detector) to the tracks still unmatched, so a track survives a dip in score
instead of ending. Matching is optimal (Hungarian, scipy) on IoU. A track missed for up to
`max_missed` frames keeps its id and coasts on its velocity; new tracks start only from confident
detections that matched nothing.

    boxes, scores (frame t) ─┬─ score >= high ──> match to predicted tracks (IoU) ──> update
                             └─ low <= score < high ──> match to the tracks left ──> update
    tracks unmatched: missed += 1 (dropped after max_missed); confident boxes unmatched: new tracks
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack's thresholds, set for detectors whose people score 0.4-0.7 (SSD MobileNet)."""

    high: float = 0.5  # confident detections: matched first, and the only ones that start tracks
    low: float = 0.3  # weaker detections only extend existing tracks; below this they are ignored
    match_iou: float = 0.3  # least IoU between a predicted track and a detection to match them
    max_missed: int = 5  # frames a track may go unmatched before it ends
    min_hits: int = 2  # matched frames before a track is reported (filters one-frame false alarms)


def _to_state(box: np.ndarray) -> np.ndarray:
    """x1 y1 x2 y2 -> centre x, centre y, area, aspect ratio (SORT's measurement)."""
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w * h, w / max(h, 1e-9)])


def _to_box(state: np.ndarray) -> np.ndarray:
    area, ratio = max(state[2], 1e-12), state[3]
    w = np.sqrt(area * ratio)
    h = area / max(w, 1e-12)
    return np.array([state[0] - w / 2, state[1] - h / 2, state[0] + w / 2, state[1] + h / 2])


class KalmanBox:
    """SORT's filter: state (cx, cy, area, ratio, vx, vy, v_area), constant velocity, the ratio
    constant; noise as SORT sets it (uncertain velocities at the start)."""

    F = np.eye(7) + np.eye(7, k=4)  # x += v each frame for cx, cy, area
    H = np.eye(4, 7)
    R = np.diag([1.0, 1.0, 10.0, 10.0])
    Q = np.diag([1.0, 1.0, 1.0, 1.0, 0.01, 0.01, 0.0001])

    def __init__(self, box: np.ndarray):
        self.x = np.zeros(7)
        self.x[:4] = _to_state(box)
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])

    def predict(self) -> np.ndarray:
        """One frame ahead: the predicted box (x1, y1, x2, y2)."""
        if self.x[2] + self.x[6] <= 0:  # an area about to go negative stops shrinking
            self.x[6] = 0.0
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q
        return _to_box(self.x)

    def update(self, box: np.ndarray) -> None:
        """Correct the state with a matched detection (x1, y1, x2, y2)."""
        y = _to_state(box) - self.H @ self.x
        S = self.H @ self.P @ self.H.T + self.R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(7) - K @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        """The filtered box (x1, y1, x2, y2)."""
        return _to_box(self.x)


@dataclass
class Track:
    """One person: a stable id, its filtered box, its last detection score."""

    id: int
    filter: KalmanBox
    score: float
    hits: int = 1  # frames matched
    missed: int = 0  # consecutive frames unmatched
    history: list = field(default_factory=list)  # (frame index, box) while matched

    @property
    def box(self) -> np.ndarray:
        """The track's filtered box (x1, y1, x2, y2)."""
        return self.filter.box


def _match(tracks: list[Track], boxes: np.ndarray, predicted: dict[int, np.ndarray], min_iou: float):
    """Optimal one-to-one matching on IoU: ([(track, box index)], unmatched tracks, unmatched boxes)."""
    if not tracks or not len(boxes):
        return [], list(tracks), list(range(len(boxes)))
    before = torch.from_numpy(np.stack([predicted[t.id] for t in tracks]))
    iou = box_iou(before, torch.from_numpy(boxes)).numpy()  # (tracks, boxes)
    rows, cols = linear_sum_assignment(-iou)
    pairs = [(tracks[r], c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    matched_t, matched_b = {id(t) for t, _ in pairs}, {c for _, c in pairs}
    return (
        pairs,
        [t for t in tracks if id(t) not in matched_t],
        [i for i in range(len(boxes)) if i not in matched_b],
    )


class Tracker:
    """`update(boxes (K, 4) x1 y1 x2 y2, scores (K,))` once per frame -> the frame's reported tracks."""

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def update(self, boxes, scores) -> list[Track]:
        """One frame's detections: the tracks matched in it that have enough hits to report."""
        c = self.config
        self.frame += 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        predicted = {t.id: t.filter.predict() for t in self.tracks}
        strong, weak = scores >= c.high, (scores >= c.low) & (scores < c.high)
        pairs, left, new = _match(self.tracks, boxes[strong], predicted, c.match_iou)
        strong_index, weak_index = np.flatnonzero(strong), np.flatnonzero(weak)
        pairs = [(t, strong_index[i]) for t, i in pairs]
        weak_pairs, left, _ = _match(left, boxes[weak], predicted, c.match_iou)
        pairs += [(t, weak_index[i]) for t, i in weak_pairs]
        for track, i in pairs:
            track.filter.update(boxes[i])
            track.score, track.hits, track.missed = float(scores[i]), track.hits + 1, 0
            track.history.append((self.frame, track.box))
        for track in left:
            track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= c.max_missed]
        for i in strong_index[new]:
            track = Track(self._next_id, KalmanBox(boxes[i]), float(scores[i]))
            track.history.append((self.frame, boxes[i]))
            self.tracks.append(track)
            self._next_id += 1
        return [t for t in self.tracks if t.missed == 0 and t.hits >= c.min_hits]


__all__ = ["KalmanBox", "Track", "Tracker", "TrackerConfig"]
