"""Action spotting's average-mAP, exactly as SoccerNet's evaluator computes it
(`SoccerNet.Evaluation.ActionSpotting.evaluate`, soccernet 0.2.0; the tests compare the two).

    events -> a 2 fps grid per (video, half), 2 h long   one event per frame and class (the last
                                                          prediction written to a frame wins)
    for each tolerance d (s):  a prediction matches the best-scoring unmatched prediction within
                               d/2 of a ground-truth event; precision and recall at 200
                               confidence thresholds in [0, 1]; 11-point interpolated AP per class
                               (0 for a class without events); mAP = their mean
    average-mAP = the mean of the mAP curve over the tolerances (trapezoids)
    "tight": d = 1..5 s;  "loose": d = 5, 10, ..., 60 s;  a number: that one tolerance

Also as the evaluator: predictions only count with confidence >= 0; halves other than 1 and 2
are not scored; positions past 2 h land on the last frame; the "unshown" a-mAP is scaled by 17/13
(SoccerNet-v2's 17 classes of which 13 have unshown events), whatever the classes.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from vidrec.errors import ConfigError
from vidrec.io.events import Event, read_events
from vidrec.io.video import VIDEO_EXTENSIONS

FRAMERATE = 2  # SoccerNet's evaluation grid (frames per second)
HALF_MINUTES = 120  # the grid's length per half: positions past it are clipped to its last frame
TIGHT = tuple(range(1, 6))  # seconds (SoccerNet v3 / the 2023 challenge)
LOOSE = tuple(range(5, 65, 5))  # seconds (SoccerNet v1 / v2)
THRESHOLDS = np.linspace(0, 1, 200)
# SoccerNet-v2's 17 classes, in its EVENT_DICTIONARY_V2 order.
SOCCERNET_V2 = (
    "Penalty", "Kick-off", "Goal", "Substitution", "Offside", "Shots on target", "Shots off target",
    "Clearance", "Ball out of play", "Throw-in", "Foul", "Indirect free-kick", "Direct free-kick",
    "Corner", "Yellow card", "Red card", "Yellow->red card",
)  # fmt: skip


def tolerances(metric: str | float) -> tuple[float, ...]:
    """The tolerances (seconds) of "tight", "loose", "atN" or a number of seconds."""
    if metric == "tight":
        return TIGHT
    if metric == "loose":
        return LOOSE
    text = str(metric)
    try:
        seconds = float(text[2:] if text.startswith("at") else text)
    except ValueError:
        raise ConfigError(f"--metric {metric}: use tight, loose or a tolerance in seconds") from None
    if not seconds > 0:
        raise ConfigError(f"--metric {metric}: a tolerance must be > 0 seconds")
    return (seconds,)


@dataclass
class SpottingScore:
    """average-mAP over `tolerances` (fractions in [0, 1], as SoccerNet reports them)."""

    a_mAP: float
    per_class: dict[str, float]
    a_mAP_visible: float
    per_class_visible: dict[str, float]
    a_mAP_unshown: float
    per_class_unshown: dict[str, float]
    tolerances: tuple[float, ...]
    mAP: list[float]  # the mAP at each tolerance
    num_events: dict[str, int] = field(default_factory=dict)  # ground-truth events scored, per class
    num_predictions: int = 0
    videos: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """As `vidrec spot-eval --json` prints it (SoccerNet's keys, per-class values by name)."""
        return {
            "a_mAP": self.a_mAP,
            "a_mAP_per_class": self.per_class,
            "a_mAP_visible": self.a_mAP_visible,
            "a_mAP_per_class_visible": self.per_class_visible,
            "a_mAP_unshown": self.a_mAP_unshown,
            "a_mAP_per_class_unshown": self.per_class_unshown,
            "tolerances_s": list(self.tolerances),
            "mAP_at_tolerance": self.mAP,
            "num_events": self.num_events,
            "num_predictions": self.num_predictions,
            "videos": self.videos,
        }


def _frame(event: Event, framerate: int, size: int) -> int:
    """The evaluator's frame: int(framerate * ms / 1000) of the integer milliseconds, clipped."""
    ms = int(round(event.time * 1000, 6))
    return min(int(framerate * (ms / 1000)), size - 1)


def _grids(gt: list[Event], pred: list[Event], videos, index: dict, framerate: int):
    """Per (video, half): targets (+1 visible, -1 unshown), detections (confidence, -1 none) and
    the value of the closest target, each `(frames, classes)`."""
    size = HALF_MINUTES * 60 * framerate
    grids = {}
    for video in videos:
        for half in (1, 2):
            grids[video, half] = (np.zeros((size, len(index))), np.zeros((size, len(index))) - 1)
    for e in gt:
        if (e.video, e.half) in grids and e.label in index:
            grids[e.video, e.half][0][_frame(e, framerate, size), index[e.label]] = 1 if e.visible else -1
    for e in pred:  # in the order given: a later prediction on the same frame replaces an earlier
        if (e.video, e.half) in grids and e.label in index:
            grids[e.video, e.half][1][_frame(e, framerate, size), index[e.label]] = e.confidence
    return [(target, detection, _closest(target)) for target, detection in grids.values()]


def _closest(target: np.ndarray) -> np.ndarray:
    """For each frame, the value of the nearest target of its class (the evaluator's midpoints);
    -1 where the class has none."""
    closest = np.zeros(target.shape) - 1
    n = closest.shape[0]
    for c in range(target.shape[1]):
        indexes = np.where(target[:, c] != 0)[0].tolist()
        if not indexes:
            continue
        indexes = [-indexes[0], *indexes, 2 * n]
        for i in range(1, len(indexes) - 1):
            start = max(0, (indexes[i - 1] + indexes[i]) // 2)
            stop = min(n, (indexes[i] + indexes[i + 1]) // 2)
            closest[start:stop, c] = target[indexes[i], c]
    return closest


def _match(target: np.ndarray, closest: np.ndarray, detection: np.ndarray, delta: float):
    """One class of one grid: rows (score, matched, closest) per prediction, and the numbers of
    visible and unshown targets. Each target, in time order, takes the best-scoring prediction not
    yet taken within delta/2 frames (the first of equal scores)."""
    gt = np.where(target != 0)[0]
    frames = np.where(detection >= 0)[0]
    rows = np.zeros((len(frames), 3))
    rows[:, 0] = detection[frames]
    rows[:, 2] = closest[frames]
    taken = np.zeros(len(frames), bool)
    for g in gt:
        lo = np.searchsorted(frames, g - delta / 2, side="left")
        hi = np.searchsorted(frames, g + delta / 2, side="right")
        free = np.where(~taken[lo:hi])[0]
        if len(free):
            best = lo + free[np.argmax(rows[lo + free, 0])]
            taken[best] = True
            rows[best, 1] = 1
    return rows, int(np.sum(target > 0)), int(np.sum(target < 0))


def _precision_recall(rows: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each of THRESHOLDS (0 where undefined, as the evaluator's nan_to_num)."""
    scores, matched = rows[:, 0], rows[:, 1]
    order = np.argsort(scores, kind="stable")
    scores, cumulative = scores[order], np.concatenate([[0.0], np.cumsum(matched[order])])
    first = np.searchsorted(scores, THRESHOLDS, side="left")  # predictions >= each threshold start here
    count = len(scores) - first
    tp = cumulative[-1] - cumulative[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(tp / count), np.nan_to_num(tp / n_gt)


def _eleven_point_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    total = 0.0
    for level in np.arange(11) / 10:
        reached = precision[recall >= level]
        total += reached.max() if len(reached) else 0.0
    return total / 11


def _average(curve: list) -> np.ndarray:
    """The mean of a curve over the tolerances by trapezoids (the one value for one tolerance)."""
    curve = np.asarray(curve, dtype=np.float64)
    if len(curve) == 1:
        return curve[0]
    return sum((curve[i] + curve[i + 1]) / 2 for i in range(len(curve) - 1)) / (len(curve) - 1)


def spotting_map(
    gt: list[Event],
    pred: list[Event],
    classes: list[str] | None = None,
    *,
    metric: str | float = "tight",
    framerate: int = FRAMERATE,
) -> SpottingScore:
    """SoccerNet's average-mAP of `pred` against `gt` over the videos of `gt`. `classes` is the
    evaluator's EVENT_DICTIONARY (its order; a class without events scores 0); None: the labels of
    `gt`, sorted. Events of other labels are not scored."""
    classes = sorted({e.label for e in gt}) if classes is None else list(classes)
    if not classes:
        raise ConfigError("no classes to score: the ground truth has no events and no classes were given")
    if len(set(classes)) != len(classes):
        raise ConfigError("the classes repeat a name")
    if any(e.time < 0 for e in [*gt, *pred]):
        raise ConfigError("an event has a negative time")
    if any(e.confidence is None for e in pred):
        raise ConfigError("a prediction has no confidence (predictions need a confidence column or key)")
    other_halves = sorted({e.half for e in [*gt, *pred]} - {1, 2})
    if other_halves:
        warnings.warn(
            f"events of half {other_halves[0]} are not scored (SoccerNet scores halves 1 and 2)", stacklevel=2
        )
    pred = pair_videos(gt, pred)
    videos = list(dict.fromkeys(e.video for e in gt))
    index = {name: i for i, name in enumerate(classes)}
    grids = _grids(gt, pred, videos, index, framerate)
    deltas = np.asarray(tolerances(metric), dtype=np.float64) * framerate
    curves = {"all": [], "visible": [], "unshown": []}
    for delta in deltas:
        aps = {kind: [] for kind in curves}
        for c in range(len(classes)):
            parts = [_match(t[:, c], cl[:, c], d[:, c], delta) for t, d, cl in grids]
            rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3))
            visible, unshown = sum(p[1] for p in parts), sum(p[2] for p in parts)
            aps["all"].append(_eleven_point_ap(*_precision_recall(rows, visible + unshown)))
            seen = rows[rows[:, 2] > 0.5]  # predictions whose closest event is visible
            aps["visible"].append(_eleven_point_ap(*_precision_recall(seen, visible)))
            hidden = rows[rows[:, 2] < -0.5]
            aps["unshown"].append(_eleven_point_ap(*_precision_recall(hidden, unshown)))
        for kind in curves:
            curves[kind].append(aps[kind])
    per_class = {kind: _average(curves[kind]) for kind in curves}  # (classes,)
    overall = {kind: float(_average([np.mean(aps) for aps in curves[kind]])) for kind in curves}
    counts = {name: sum(1 for e in gt if e.label == name and e.half in (1, 2)) for name in classes}
    return SpottingScore(
        a_mAP=overall["all"],
        per_class=dict(zip(classes, map(float, per_class["all"]))),
        a_mAP_visible=overall["visible"],
        per_class_visible=dict(zip(classes, map(float, per_class["visible"]))),
        a_mAP_unshown=overall["unshown"] * (17 / 13 if len(deltas) > 1 else 1),
        per_class_unshown=dict(zip(classes, map(float, per_class["unshown"]))),
        tolerances=tuple(float(t) for t in tolerances(metric)),
        mAP=[float(np.mean(aps)) for aps in curves["all"]],
        num_events=counts,
        num_predictions=sum(1 for e in pred if e.video in set(videos) and e.label in index),
        videos=videos,
    )


def video_key(name: str) -> str:
    """A video's name without folders and extension: `videos/test/a.mp4`, `a` and `x/a/` match."""
    base = os.path.basename(name.rstrip("/"))
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() in VIDEO_EXTENSIONS else base


def pair_videos(gt: list[Event], pred: list[Event]) -> list[Event]:
    """Predictions renamed to the ground truth's video names where the names differ only in folders
    and extension (a CSV's `videos/a.mp4` and SoccerNet's game `a`), or where each side holds one
    video (two single files)."""
    gt_videos, pred_videos = {e.video for e in gt}, {e.video for e in pred}
    if len(gt_videos) == 1 and len(pred_videos) == 1:
        rename = {next(iter(pred_videos)): next(iter(gt_videos))}
    else:
        by_key: dict[str, list[str]] = {}
        for video in gt_videos:
            by_key.setdefault(video_key(video), []).append(video)
        rename = {
            v: by_key[video_key(v)][0]
            for v in pred_videos - gt_videos
            if len(by_key.get(video_key(v), [])) == 1
        }
    return [dataclasses.replace(e, video=rename.get(e.video, e.video)) for e in pred]


def read_classes(spec: str | None) -> list[str] | None:
    """--classes: "soccernet-v2", a file with one class per line, or "a,b,c"; None: from the labels."""
    if spec is None:
        return None
    if spec == "soccernet-v2":
        return list(SOCCERNET_V2)
    if os.path.isfile(spec):
        with open(spec) as f:
            return [line.strip() for line in f if line.strip()]
    return [name.strip() for name in spec.split(",") if name.strip()]


def spotting_map_files(
    gt_path: str, pred_path: str, *, classes: str | None = None, metric: str | float = "tight"
) -> SpottingScore:
    """`vidrec spot-eval`: the files (or SoccerNet folders) read, then `spotting_map`."""
    gt, pred = read_events(gt_path), read_events(pred_path)
    return spotting_map(gt, pred, read_classes(classes), metric=metric)


__all__ = [
    "FRAMERATE",
    "LOOSE",
    "SOCCERNET_V2",
    "TIGHT",
    "SpottingScore",
    "pair_videos",
    "read_classes",
    "spotting_map",
    "spotting_map_files",
    "tolerances",
    "video_key",
]
