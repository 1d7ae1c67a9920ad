"""Person tracks from per-frame boxes: SORT's constant-velocity Kalman filter on each box (Bewley
et al., 2016) with ByteTrack's two-round association (Zhang et al., 2022): confident detections
are matched to the predicted tracks first, then the weak ones (a person half hidden, or scored
0.3-0.5 by a small detector) to the tracks still unmatched, so a track survives a dip in score
instead of ending; a weak detection must overlap the track's prediction well (IoU 0.5, as BoT-SORT's
second round), so a half-seen neighbour does not extend it. Matching is optimal (Hungarian, scipy)
on IoU. A track missed for up to `lost` seconds keeps its id and coasts on its velocity; new tracks
start from confident detections that matched nothing, or tentatively from middling ones.

    boxes, scores (frame t) ─┬─ score >= high ──> match to predicted tracks (IoU) ──> update
                             └─ low <= score < high ──> match to the tracks left ──> update
    tracks unmatched: missed += 1 (dropped after `lost`); boxes unmatched: >= high a new track,
    >= start a tentative one, reported once matched for `confirm` seconds running (a person the
    detector scores 0.5-0.7 all along, as SSD MobileNet does a close-up arm wrestler, is tracked; a
    passing false alarm is not)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack's thresholds, set on TUD-Campus (MOTChallenge ground truth, `bench/tracking.py`)
    for SSD MobileNet, whose people score 0.4-0.9 and whose false alarms rarely reach 0.7."""

    high: float = 0.7  # confident detections: matched first; one unmatched starts a track at once
    start: float = 0.5  # from here an unmatched detection starts a tentative track ...
    confirm: float = 2.0  # ... reported once matched for this many seconds running (a miss ends it)
    low: float = 0.4  # weaker detections only extend existing tracks; below this they are ignored
    match_iou: float = 0.2  # least IoU between a predicted track and a confident detection to match
    low_iou: float = 0.5  # ... and a weak one: it must sit where the track is
    lost: float = 1.0  # seconds a track may go unmatched before it ends (it coasts meanwhile)
    max_missed: int | None = None  # ... in frames looked at, instead of `lost`
    min_hits: int = 1  # matched frames before a confident track is reported (2: hides one-frame alarms)

    def missed_frames(self, fps: float) -> int:
        """Frames a track may go unmatched when `fps` frames a second are looked at."""
        return self.max_missed if self.max_missed is not None else max(1, round(self.lost * fps))

    def confirm_frames(self, fps: float) -> int:
        """Frames a tentative track must be matched in, running, to be reported."""
        return max(self.min_hits, round(self.confirm * fps))


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
    """One person: a stable id (0 while tentative), its filtered box, its last detection score."""

    id: int
    filter: KalmanBox
    score: float
    hits: int = 1  # frames matched
    missed: int = 0  # consecutive frames unmatched
    history: list = field(default_factory=list)  # (frame index, box) while matched
    needed: int = 1  # hits before it is reported (`min_hits`, or `confirm` for a tentative start)

    @property
    def confirmed(self) -> bool:
        """Matched often enough to be reported."""
        return self.hits >= self.needed

    @property
    def box(self) -> np.ndarray:
        """The track's filtered box (x1, y1, x2, y2)."""
        return self.filter.box


def _match(tracks: list[Track], boxes: np.ndarray, predicted: dict[int, np.ndarray], min_iou: float):
    """Optimal one-to-one matching on IoU: ([(track, box index)], unmatched tracks, unmatched boxes)."""
    if not tracks or not len(boxes):
        return [], list(tracks), list(range(len(boxes)))
    before = torch.from_numpy(np.stack([predicted[id(t)] for t in tracks]))
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
    """`update(boxes (K, 4) x1 y1 x2 y2, scores (K,))` once per frame looked at (`fps` a second)
    -> the frame's reported tracks."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), *, fps: float = 5.0):
        self.config = config
        self.max_missed = config.missed_frames(fps)
        self.confirm = config.confirm_frames(fps)
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def update(self, boxes, scores, *, shift: tuple[float, float] | None = None) -> list[Track]:
        """One frame's detections: the confirmed tracks matched in it. `shift`: how far the camera
        moved the scene since the last frame, in pixels (`CameraMotion`); tracks move with it."""
        c = self.config
        self.frame += 1
        if shift is not None:
            for t in self.tracks:
                t.filter.x[:2] += shift
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        predicted = {id(t): t.filter.predict() for t in self.tracks}
        strong = np.flatnonzero(scores >= c.high)
        weak = np.flatnonzero((scores >= c.low) & (scores < c.high))
        pairs, left = [], []

        def assign(tracks: list[Track], index: np.ndarray, min_iou: float):
            """Match `tracks` to the boxes `index`: (tracks left, box indices left)."""
            found, tracks, rest = _match(tracks, boxes[index], predicted, min_iou)
            pairs.extend((t, index[i]) for t, i in found)
            return tracks, index[rest]

        # confirmed tracks choose first; tentative ones take what is left
        for tracks in ([t for t in self.tracks if t.confirmed], [t for t in self.tracks if not t.confirmed]):
            tracks, strong = assign(tracks, strong, c.match_iou)
            tracks, weak = assign(tracks, weak, c.low_iou)
            left += tracks
        for track, i in pairs:
            track.filter.update(boxes[i])
            track.score, track.hits, track.missed = float(scores[i]), track.hits + 1, 0
            if scores[i] >= c.high:  # a confident box confirms a tentative track as it would start one
                track.needed = min(track.needed, max(track.hits, c.min_hits))
            track.history.append((self.frame, track.box))
        for track in left:
            track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= (self.max_missed if t.confirmed else 0)]
        starts = [(i, c.min_hits) for i in strong]
        starts += [(i, self.confirm) for i in weak if scores[i] >= c.start]
        for i, needed in starts:
            track = Track(0, KalmanBox(boxes[i]), float(scores[i]), needed=needed)
            track.history.append((self.frame, boxes[i]))
            self.tracks.append(track)
        for track in self.tracks:
            if track.id == 0 and track.confirmed:  # ids in the order people are confirmed
                track.id, self._next_id = self._next_id, self._next_id + 1
        return [t for t in self.tracks if t.missed == 0 and t.confirmed]


__all__ = ["KalmanBox", "Track", "Tracker", "TrackerConfig"]
