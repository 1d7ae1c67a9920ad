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
        boxes, scores = [walker(0, 50, 6, f)], [0.8]
        if not 10 <= f < 13:  # the second person is missed for three frames ...
            boxes.append(walker(400, 60, -5, f))
            scores.append(0.45 if 20 <= f < 25 else 0.8)  # ... and later scored weakly for five
        for track in tracker.update(np.array(boxes), np.array(scores)):
            seen.setdefault(track.id, []).append(f)
    assert len(seen) == 2  # no id switch, no new id after the gap
    first, second = sorted(seen.values(), key=len, reverse=True)
    assert first == list(range(30))  # reported from its first hit (min_hits 1)
    assert second == [f for f in range(30) if not 10 <= f < 13]
    # while missed, the second track coasted on its velocity: it matched again where it really was
    track = next(t for t in tracker.tracks if t.id != 1)
    assert np.abs(track.box - walker(400, 60, -5, 29)).max() < 3.0


def test_only_confident_detections_start_tracks():
    tracker = Tracker()  # tracks start at 0.7; from 0.4 a box only extends one
    ids = []
    for f in range(12):
        boxes, scores = [walker(0, 0, 4, f)], [0.8]
        if f >= 6:
            boxes.append(walker(300, 0, 0, f))  # someone walks in at frame 6, scored 0.55 ...
            scores.append(0.55 if f < 9 else 0.75)  # ... then confidently from frame 9
        ids.append(sorted(t.id for t in tracker.update(np.array(boxes), np.array(scores))))
    assert ids[:9] == [[1]] * 9  # the weak newcomer extends nothing and starts nothing
    assert ids[9:] == [[1, 2]] * 3


def test_one_frame_alarms_are_hidden_with_min_hits():
    tracker = Tracker(TrackerConfig(min_hits=2))
    reported = []
    for f in range(6):
        boxes, scores = [walker(0, 0, 4, f)], [0.8]
        if f == 3:
            boxes.append([500, 500, 540, 600])  # a one-frame false alarm
            scores.append(0.9)
        reported.append(sorted(t.id for t in tracker.update(np.array(boxes), np.array(scores))))
    assert reported == [[]] + [[1]] * 5  # the alarm (id 2) never reported; the walker from its 2nd hit
    assert [t.id for t in tracker.tracks] == [1]  # an unconfirmed track ends at its first miss


def test_a_weak_box_must_sit_where_the_track_is():
    """A confident box matches the predicted track from IoU 0.2, a weak one only from 0.5: a
    half-seen neighbour scored weakly does not carry the track away."""
    for score, kept in ((0.8, True), (0.5, False)):
        tracker = Tracker()
        for _ in range(3):
            tracker.update(np.array([[0.0, 0.0, 40.0, 100.0]]), np.array([0.8]))
        shifted = np.array([[20.0, 0.0, 60.0, 100.0]])  # IoU 1/3 with the track
        assert bool(tracker.update(shifted, np.array([score]))) is kept


def test_tracks_are_kept_for_seconds_whatever_the_rate():
    assert Tracker(fps=5).max_missed == 5 and Tracker(fps=25).max_missed == 25  # lost after 1 s
    assert Tracker(TrackerConfig(lost=0.2), fps=25).max_missed == 5
    assert Tracker(TrackerConfig(max_missed=3), fps=25).max_missed == 3


def test_a_track_ends_after_max_missed_frames():
    tracker = Tracker(TrackerConfig(max_missed=2))
    for f in range(3):
        tracker.update(np.array([walker(0, 0, 2, f)]), np.array([0.8]))
    for _ in range(3):
        assert tracker.update(np.zeros((0, 4)), np.zeros(0)) == []
    assert tracker.tracks == []
    reported = tracker.update(np.array([walker(0, 0, 2, 6)]), np.array([0.8]))
    assert [t.id for t in reported] == [2]  # a returning person starts a new track


def test_kalman_filter_learns_velocity():
    k = KalmanBox(np.array([0.0, 0.0, 10.0, 20.0]))
    for f in range(1, 10):
        k.predict()
        k.update(np.array([3.0 * f, 0.0, 3.0 * f + 10, 20.0]))
    assert k.x[4] == pytest.approx(3.0, abs=0.2)  # centre x velocity, pixels per frame
    assert k.predict()[0] == pytest.approx(30.0, abs=1.0)


def test_middling_detections_start_tentative_tracks_confirmed_after_seconds():
    """A person the detector scores 0.5-0.7 all along is reported once followed for `confirm`
    seconds running, with the next id; a confident box confirms at once; a miss ends it unconfirmed."""
    tracker = Tracker(TrackerConfig(confirm=1.0), fps=5)  # 5 looks
    reported = []
    for f in range(8):
        boxes, scores = [walker(0, 0, 3, f)], [0.6]
        if f < 3:
            boxes.append(walker(300, 0, 0, f))  # a middling alarm for 3 looks, then gone
            scores.append(0.6)
        reported.append([t.id for t in tracker.update(np.array(boxes), np.array(scores))])
    assert reported == [[]] * 4 + [[1]] * 4
    assert len(tracker.tracks) == 1  # the alarm ended unconfirmed: no id spent on it
    tracker = Tracker(TrackerConfig(confirm=1.0), fps=5)
    for f, score in enumerate([0.6, 0.6, 0.8]):
        out = tracker.update(np.array([walker(0, 0, 3, f)]), np.array([score]))
    assert [t.id for t in out] == [1]  # confirmed by the confident box at its third look
