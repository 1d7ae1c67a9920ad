"""Person tracking: stable ids through motion, missed frames, weak detections and newcomers."""

import numpy as np
import pytest

from vidrec.people.tracker import KalmanBox, Tracker, TrackerConfig


def walker(x0: float, y0: float, vx: float, frame: int, size=(40.0, 100.0)) -> list[float]:
    x = x0 + vx * frame
    return [x, y0, x + size[0], y0 + size[1]]


def test_two_people_keep_their_ids_through_misses_and_weak_frames():
    tracker = Tracker(TrackerConfig(max_missed=4))
    seen = {}
    for f in range(30):
        boxes, scores = [walker(0, 50, 6, f)], [0.6]
        if not 10 <= f < 13:  # the second person is missed for three frames ...
            boxes.append(walker(400, 60, -5, f))
            scores.append(0.35 if 20 <= f < 25 else 0.6)  # ... and later scored weakly for five
        for track in tracker.update(np.array(boxes), np.array(scores)):
            seen.setdefault(track.id, []).append(f)
    assert len(seen) == 2  # no id switch, no new id after the gap
    first, second = sorted(seen.values(), key=len, reverse=True)
    assert first == list(range(1, 30))  # reported from its second hit on
    assert second == [f for f in range(1, 30) if not 10 <= f < 13]
    # while missed, the second track coasted on its velocity: it matched again where it really was
    track = next(t for t in tracker.tracks if t.id != 1)
    assert np.abs(track.box - walker(400, 60, -5, 29)).max() < 3.0


def test_new_people_get_new_ids_and_one_frame_alarms_are_not_reported():
    tracker = Tracker()
    ids = []
    for f in range(12):
        boxes, scores = [walker(0, 0, 4, f)], [0.7]
        if f == 3:
            boxes.append([500, 500, 540, 600])  # a one-frame false alarm
            scores.append(0.9)
        if f >= 6:
            boxes.append(walker(300, 0, 0, f))  # someone walks in at frame 6
            scores.append(0.55)
        if f == 8:
            boxes.append([700, 0, 740, 100])  # a weak detection never starts a track
            scores.append(0.4)
        ids.append(sorted(t.id for t in tracker.update(np.array(boxes), np.array(scores))))
    assert ids[2] == [1] and ids[3] == [1] and ids[4] == [1]  # the alarm (id 2) never reported
    assert ids[6] == [1] and ids[7] == [1, 3] and ids[11] == [1, 3]
    assert all(t.id != 4 for t in tracker.tracks) and max(t.id for t in tracker.tracks) == 3


def test_a_track_ends_after_max_missed_frames():
    tracker = Tracker(TrackerConfig(max_missed=2))
    for f in range(3):
        tracker.update(np.array([walker(0, 0, 2, f)]), np.array([0.8]))
    for _ in range(3):
        assert tracker.update(np.zeros((0, 4)), np.zeros(0)) == []
    assert tracker.tracks == []
    reported = tracker.update(np.array([walker(0, 0, 2, 6)]), np.array([0.8]))
    assert reported == [] and tracker.tracks[0].id == 2  # a returning person starts a new track


def test_kalman_filter_learns_velocity():
    k = KalmanBox(np.array([0.0, 0.0, 10.0, 20.0]))
    for f in range(1, 10):
        k.predict()
        k.update(np.array([3.0 * f, 0.0, 3.0 * f + 10, 20.0]))
    assert k.x[4] == pytest.approx(3.0, abs=0.2)  # centre x velocity, pixels per frame
    assert k.predict()[0] == pytest.approx(30.0, abs=1.0)
