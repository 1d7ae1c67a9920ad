"""The AVA annotation formats (https://research.google.com/ava/download.html), read strictly (a
malformed row names its file, line and fault) and written so the official tools read them back.

    ground truth   video_id, sec, x1, y1, x2, y2, action_id, person_id   one row per (person, action)
    detections     video_id, sec, x1, y1, x2, y2, action_id, score       a model's output
    person boxes   video_id, sec, x1, y1, x2, y2, [action_id], score     a person detector's (PySlowFast)
    label map      label { name: "..." label_id: N label_type: ... }     .pbtxt ("item { id: N }" too)
    excluded       video_id, sec                                         keyframes left out of the metric
    frame lists    original_vido_id video_id frame_id path labels        PySlowFast's, space separated
    proposals      mmaction2's dense proposals .pkl                      {"video_id,0902": (N, 5) array}

Coordinates are normalised to [0, 1] (x right, y down); keyframes are whole seconds (AVA: 902 to
1798, one per second)."""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vidrec.errors import AnnotationError
from vidrec.utils import atomic_write_text, load_arrays_pickle

KINDS = ("gt", "detections", "boxes")
PAST_EDGE = 0.5  # how far past [0, 1] a normalised coordinate may reach (a box past the frame's edge)

# AVA v2.x's three action groups, by label id, for label maps without `label_type`.
AVA_GROUP_RANGES = {
    "PERSON_MOVEMENT": (1, 14),
    "OBJECT_MANIPULATION": (15, 63),
    "PERSON_INTERACTION": (64, 80),
}


@dataclass(frozen=True)
class AvaBox:
    """One row of an AVA CSV: a person's box at a keyframe, with an action (or none) and a score."""

    video_id: str
    sec: int  # keyframe time in whole seconds
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, normalised to [0, 1]
    action_id: int | None = None  # None in person-box files
    person_id: int | None = None  # ground truth only (None where the file has no such column)
    score: float | None = None  # detections and person boxes only

    @property
    def key(self) -> str:
        """The keyframe's key in the official evaluator (`video_id,0902`)."""
        return frame_key(self.video_id, self.sec)


@dataclass(frozen=True)
class ActionLabel:
    """One class of a label map."""

    id: int
    name: str
    group: str | None = None  # AVA's label_type (PERSON_MOVEMENT, ...) where the file gives one


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU `(N, M)` of `(N, 4)` and `(M, 4)` boxes in any one corner order (continuous areas: no +1)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def frame_key(video_id: str, sec: int) -> str:
    """The official evaluator's keyframe key: `video_id,0902`."""
    return f"{video_id},{int(sec):04d}"


def _read_text(path: str) -> str:
    try:
        with open(path, newline="") as f:
            return f.read()
    except OSError as e:
        raise AnnotationError(path, None, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise AnnotationError(path, None, "cannot read: not a text file") from None


def _number(path: str, line: int, name: str, text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise AnnotationError(
            path, line, f"{name} '{text}' is not {'an integer' if kind is int else 'a number'}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise AnnotationError(path, line, f"{name} '{text}' is not a finite number")
    return value


def _sec(path: str, line: int, text: str) -> int:
    value = _number(path, line, "sec", text)
    if value != int(value):
        raise AnnotationError(path, line, f"sec '{text}' is not a whole second (AVA keyframes are 1 s apart)")
    return int(value)


def _parse_row(path: str, line: int, row: list[str], kind: str) -> AvaBox:
    allowed = {"gt": (7, 8), "detections": (7, 8), "boxes": (6, 7, 8)}[kind]
    if len(row) not in allowed:
        raise AnnotationError(
            path,
            line,
            f"expected {' or '.join(map(str, allowed))} columns for {kind} "
            f"(video_id, sec, x1, y1, x2, y2, ...), got {len(row)}",
        )
    if not row[0].strip():
        raise AnnotationError(path, line, "empty video_id")
    names = ("x1", "y1", "x2", "y2")
    box = tuple(_number(path, line, n, t) for n, t in zip(names, row[2:6], strict=True))
    for n, v in zip(names, box, strict=True):
        if not -PAST_EDGE <= v <= 1 + PAST_EDGE:
            raise AnnotationError(
                path, line, f"{n} = {v} is outside [0, 1]: AVA boxes are normalised, not pixels"
            )
    if box[2] < box[0] or box[3] < box[1]:
        raise AnnotationError(path, line, f"box {box} has x2 < x1 or y2 < y1")
    if kind == "boxes" and len(row) == 7:  # video, sec, box, score
        return AvaBox(
            row[0].strip(), _sec(path, line, row[1]), box, None, None, _number(path, line, "score", row[6])
        )
    action = row[6].strip() if len(row) > 6 else ""
    if kind != "boxes" and not action:
        raise AnnotationError(path, line, "empty action_id")
    action_id = _number(path, line, "action_id", action, int) if action else None
    last = row[7].strip() if len(row) > 7 else ""
    person = score = None
    if kind == "gt":
        person = _number(path, line, "person_id", last, int) if last else None
    else:
        score = _number(path, line, "score", last) if last else 1.0  # as the official reader: 1.0 if absent
    return AvaBox(row[0].strip(), _sec(path, line, row[1]), box, action_id, person, score)


def read_boxes(path: str | os.PathLike, *, kind: str = "gt") -> list[AvaBox]:
    """Rows of an AVA CSV, in file order. `kind`: "gt" (8th column person_id), "detections"
    (8th column score) or "boxes" (a person detector's boxes; action_id may be empty). Boxes
    reaching a little past the frame (a detector's box at y2 = 1.03) are kept as written, as the
    official evaluator scores them, with one warning per file; coordinates beyond `PAST_EDGE`
    of it are pixels, not normalised: an error."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = os.fspath(path)
    text = _read_text(path)
    rows = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (line == 1 and row[0].strip().lower() in ("video_id", "video")):
            continue  # blank lines, and a header where a tool wrote one
        rows.append(_parse_row(path, line, row, kind))
    past = [r for r in rows if min(r.box) < 0 or max(r.box) > 1]
    if past:
        worst = max((v for r in past for v in r.box), key=lambda v: max(-v, v - 1))
        print(
            f"warning: {path}: {len(past)} box{'es' if len(past) > 1 else ''} reach past the frame "
            f"(outside [0, 1], e.g. {worst:g}); kept as written, as the official evaluator scores them",
            file=sys.stderr,
        )
    return rows


def _fmt(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if x else "0"


def write_boxes(path: str | os.PathLike, rows: Iterable[AvaBox], *, kind: str = "gt") -> None:
    """Write rows as the official files are written (no header), atomically."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    lines = []
    for r in rows:
        cells = [r.video_id, f"{int(r.sec):04d}", *map(_fmt, r.box)]
        if kind == "gt":
            cells += [str(r.action_id), str(-1 if r.person_id is None else r.person_id)]
        else:
            action = "" if r.action_id is None else str(r.action_id)
            cells += [action, f"{1.0 if r.score is None else r.score:.6f}"]
        lines.append(",".join(cells))
    atomic_write_text(path, "".join(line + "\n" for line in lines))


_BLOCK = re.compile(r"(?:item|label)\s*\{(.*?)\}", re.S)


def read_label_map(path: str | os.PathLike) -> list[ActionLabel]:
    """The classes of a `.pbtxt` label map (AVA's `label { name label_id label_type }` or the
    object-detection API's `item { name id }`), in file order."""
    path = os.fspath(path)
    text = _read_text(path)
    labels, seen = [], {}
    for m in _BLOCK.finditer(text):
        line, body = text.count("\n", 0, m.start()) + 1, m.group(1)
        name = re.search(r'\bname:\s*"([^"]*)"', body) or re.search(r"\bdisplay_name:\s*\"([^\"]*)\"", body)
        ident = re.search(r"\b(?:label_)?id:\s*(-?\w+)", body)
        if not name or not ident:
            raise AnnotationError(path, line, f"a label needs a name and an id, got {{{body.strip()}}}")
        class_id = _number(path, line, "id", ident.group(1), int)
        if class_id < 1:
            raise AnnotationError(path, line, f"label ids start at 1, got {class_id}")
        if class_id in seen:
            raise AnnotationError(
                path, line, f"id {class_id} is used twice ('{seen[class_id]}', '{name.group(1)}')"
            )
        seen[class_id] = name.group(1)
        group = re.search(r"\blabel_type:\s*(\w+)", body)
        labels.append(ActionLabel(class_id, name.group(1), group.group(1) if group else None))
    if not labels:
        raise AnnotationError(
            path, None, 'no labels found (expected blocks like: label { name: "x" label_id: 1 })'
        )
    return labels


def write_label_map(path: str | os.PathLike, labels: Iterable[ActionLabel]) -> None:
    """AVA's layout (two-space indented fields, which the official evaluator's reader needs)."""
    blocks = []
    for lab in labels:
        group = f"\n  label_type: {lab.group}" if lab.group else ""
        blocks.append(f'label {{\n  name: "{lab.name}"\n  label_id: {lab.id}{group}\n}}\n')
    atomic_write_text(path, "".join(blocks))


def action_groups(labels: list[ActionLabel]) -> dict[str, list[int]]:
    """Class ids per group: the label map's `label_type`, else AVA's id ranges when the ids fit
    AVA's 80 classes; empty when neither applies."""
    if any(lab.group for lab in labels):
        groups: dict[str, list[int]] = {}
        for lab in labels:
            groups.setdefault(lab.group or "OTHER", []).append(lab.id)
        return groups
    if labels and max(lab.id for lab in labels) <= 80:
        return {
            g: [lab.id for lab in labels if lo <= lab.id <= hi] for g, (lo, hi) in AVA_GROUP_RANGES.items()
        }
    return {}


def read_excluded(path: str | os.PathLike) -> set[str]:
    """Keyframe keys (`frame_key`) of an excluded-timestamps CSV."""
    path = os.fspath(path)
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    keys = set()
    for line, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != 2:
            raise AnnotationError(path, line, f"expected 2 columns (video_id, sec), got {len(row)}")
        keys.add(frame_key(row[0].strip(), _sec(path, line, row[1])))
    return keys


@dataclass(frozen=True)
class FrameListEntry:
    """One frame of PySlowFast's AVA frame lists."""

    original_video_id: str
    video_index: int
    frame_index: int
    path: str
    labels: str = '""'


FRAME_LIST_HEADER = "original_vido_id video_id frame_id path labels"  # PySlowFast's spelling


def read_frame_list(path: str | os.PathLike) -> dict[str, list[str]]:
    """PySlowFast's frame list: video id -> its frame image paths in frame order."""
    path = os.fspath(path)
    lines = _read_text(path).splitlines()
    videos: dict[str, list[tuple[int, str]]] = {}
    for line, text in enumerate(lines, start=1):
        parts = text.split()
        if not parts or (line == 1 and parts[0] == "original_vido_id"):
            continue
        if len(parts) < 4:
            raise AnnotationError(
                path, line, f"expected 'original_vido_id video_id frame_id path labels', got {text!r}"
            )
        frame = _number(path, line, "frame_id", parts[2], int)
        videos.setdefault(parts[0], []).append((frame, parts[3]))
    return {v: [p for _, p in sorted(frames)] for v, frames in videos.items()}


def write_frame_list(path: str | os.PathLike, entries: Iterable[FrameListEntry]) -> None:
    """PySlowFast's frame list (space separated, with its header), atomically."""
    lines = [FRAME_LIST_HEADER] + [
        f"{e.original_video_id} {e.video_index} {e.frame_index} {e.path} {e.labels}" for e in entries
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_proposals(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """mmaction2's dense proposals (`{"video_id,0902": (N, 4 or 5) float array}`: normalised
    x1, y1, x2, y2 and a score) through `_ArraysOnly`; anything else in the file is refused."""
    path = os.fspath(path)
    try:
        data = load_arrays_pickle(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, OSError) as e:
        raise AnnotationError(path, None, f"not a proposals file: {e}") from None
    if not isinstance(data, dict):
        raise AnnotationError(path, None, f"expected a dict of keyframe -> array, got {type(data).__name__}")
    out = {}
    for key, boxes in data.items():
        arr = np.asarray(boxes, dtype=np.float64)
        if not isinstance(key, str) or "," not in key or arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise AnnotationError(path, None, f"entry {key!r}: expected 'video_id,sec' -> (N, 4 or 5) array")
        out[key] = arr
    return out


def proposals_to_boxes(proposals: dict[str, np.ndarray], *, min_score: float = 0.0) -> list[AvaBox]:
    """Person-box rows from `read_proposals`, keeping boxes scored at least `min_score`."""
    rows = []
    for key, arr in proposals.items():
        video, sec = key.rsplit(",", 1)
        for b in arr:
            score = float(b[4]) if len(b) == 5 else 1.0
            if score >= min_score:
                rows.append(AvaBox(video, int(sec), tuple(float(v) for v in b[:4]), None, None, score))
    return rows
