"""AVA frame-mAP at IoU 0.5, as the official ActivityNet evaluator computes it
(`get_ava_performance.py` with the TF object-detection API's `PascalDetectionEvaluator`):

    per keyframe (excluded keyframes dropped from both sides)
      detections: at most 50 kept, by score (a min-heap, as the official reader fills it), sorted by score
      per class: each detection in that order takes its highest-IoU ground truth (first on ties);
                 a true positive if IoU >= 0.5 and that box is still free, else a false positive
    per class: every keyframe's detections pooled, ranked by score (numpy argsort, reversed),
               VOC all-points AP (precision made non-increasing, summed over recall steps)
    mAP: mean over the classes that have ground truth (others are NaN and left out)

Where the usual re-implementations differ from it:
- PySlowFast (`slowfast/utils/ava_eval_helper.py`) keeps every detection (no 50 per keyframe)
  and does not sort a keyframe's detections by score before matching, so two detections of one
  class on one person are matched in box order; it also writes scores rounded to 4 decimals.
- mmaction2 (`mmaction/evaluation/functional/ava_utils.py`) keeps every detection, and skips
  excluded keyframes only when `verbose=True`.
Both agree with this one when no keyframe has more than 50 detections and no person has two
detections of one class.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from vidrec.data.ava import (
    ActionLabel,
    AvaBox,
    action_groups,
    box_iou,
    read_boxes,
    read_excluded,
    read_label_map,
)
from vidrec.errors import VidrecError

MAX_DETECTIONS_PER_FRAME = 50


@dataclass
class FrameMAP:
    """The evaluator's result: mAP, AP per class name (NaN: no ground truth), mean AP per group."""

    mAP: float
    per_class: dict[str, float]
    groups: dict[str, float] = field(default_factory=dict)
    num_frames: int = 0  # keyframes with ground truth, exclusions removed
    num_gt: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON values (NaN, for classes without ground truth, as null)."""

        def clean(x: float):
            return None if math.isnan(x) else x

        return {
            "mAP": clean(self.mAP),
            "per_class": {k: clean(v) for k, v in self.per_class.items()},
            "groups": {k: clean(v) for k, v in self.groups.items()},
            "num_frames": self.num_frames,
            "num_gt": self.num_gt,
        }


def _rank_value(r: AvaBox) -> float:
    """What the official reader sorts a keyframe's rows by: the 8th column, which for ground truth
    is the person id (so ground-truth boxes are matched in descending person id on IoU ties)."""
    if r.score is not None:
        return r.score
    return float(r.person_id) if r.person_id is not None else 1.0


def _by_frame(rows: list[AvaBox], whitelist: set[int], capacity: int) -> dict[str, list[tuple]]:
    """Keyframe key -> [(score, action_id, y1, x1, y2, x2)], score-descending; keys in order of
    first row. With `capacity`, only the top-scored `capacity` rows of a keyframe survive, chosen by
    the same min-heap the official reader uses (so ties at the cut resolve as it does)."""
    heaps: dict[str, list[tuple]] = {}
    for r in rows:
        if r.action_id not in whitelist:
            continue
        x1, y1, x2, y2 = r.box
        entry = (_rank_value(r), r.action_id, y1, x1, y2, x2)
        heap = heaps.setdefault(r.key, [])
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return {k: sorted(h, key=lambda e: -e[0]) for k, h in heaps.items()}


def _tp_fp(dets: list[tuple], gts: list[tuple], num_classes: int, iou_threshold: float):
    """Per class index: the scores and true-positive flags of one keyframe's detections."""
    out = {}
    gt_boxes = np.array([g[2:] for g in gts], dtype=float).reshape(-1, 4)
    gt_classes = np.array([g[1] for g in gts], dtype=int)
    det_boxes = np.array([d[2:] for d in dets], dtype=float).reshape(-1, 4)
    det_classes = np.array([d[1] for d in dets], dtype=int)
    det_scores = np.array([d[0] for d in dets], dtype=float)
    valid = (det_boxes[:, 0] < det_boxes[:, 2]) & (
        det_boxes[:, 1] < det_boxes[:, 3]
    )  # zero-area boxes dropped
    det_boxes, det_classes, det_scores = det_boxes[valid], det_classes[valid], det_scores[valid]
    for c in np.unique(det_classes):
        if not 1 <= c <= num_classes:
            continue
        boxes, scores = det_boxes[det_classes == c], det_scores[det_classes == c]
        truth = gt_boxes[gt_classes == c]
        tp = np.zeros(len(boxes), dtype=bool)
        if len(truth):
            iou = box_iou(boxes, truth)
            best = iou.argmax(axis=1)
            taken = np.zeros(len(truth), dtype=bool)
            for i, g in enumerate(best):
                if iou[i, g] >= iou_threshold and not taken[g]:
                    tp[i] = taken[g] = True
        out[int(c)] = (scores, tp)
    return out


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """VOC all-points AP of ranked detections (NaN without ground truth)."""
    if num_gt == 0:
        return math.nan
    if len(scores) == 0:
        return 0.0
    order = np.argsort(scores)[::-1]  # the official ranking, ties included
    hits = tp[order].astype(int)
    cum_tp, cum_fp = np.cumsum(hits), np.cumsum(1 - hits)
    precision = np.concatenate([[0.0], cum_tp / (cum_tp + cum_fp), [0.0]])
    recall = np.concatenate([[0.0], cum_tp / num_gt, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def frame_map(
    groundtruth: list[AvaBox],
    detections: list[AvaBox],
    labels: list[ActionLabel],
    *,
    excluded: set[str] = frozenset(),
    iou_threshold: float = 0.5,
    max_detections: int = MAX_DETECTIONS_PER_FRAME,
) -> FrameMAP:
    """Frame-mAP of `detections` against `groundtruth` over the classes of `labels` (rows of other
    classes are ignored, as the official evaluator's class whitelist does)."""
    whitelist = {lab.id for lab in labels}
    num_classes = max(whitelist)
    gt = {k: v for k, v in _by_frame(groundtruth, whitelist, 0).items() if k not in excluded}
    if not gt:
        raise VidrecError("no ground-truth box of the label map's classes outside the excluded keyframes")
    num_gt = np.zeros(num_classes + 1, dtype=int)
    for rows in gt.values():
        for r in rows:
            num_gt[r[1]] += 1
    pooled: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for key, dets in _by_frame(detections, whitelist, max_detections).items():
        if key in excluded:
            continue
        for c, result in _tp_fp(dets, gt.get(key, []), num_classes, iou_threshold).items():
            pooled.setdefault(c, []).append(result)
    ap = {}
    for c in range(1, num_classes + 1):
        parts = pooled.get(c, [])
        scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        tp = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=bool)
        ap[c] = average_precision(scores, tp, int(num_gt[c]))
    valid = [v for v in ap.values() if not math.isnan(v)]
    groups = {
        g: float(np.mean(vals)) if (vals := [ap[i] for i in ids if not math.isnan(ap[i])]) else math.nan
        for g, ids in action_groups(labels).items()
    }
    return FrameMAP(
        mAP=float(np.mean(valid)),
        per_class={lab.name: ap[lab.id] for lab in labels},
        groups=groups,
        num_frames=len(gt),
        num_gt={lab.name: int(num_gt[lab.id]) for lab in labels},
    )


def frame_map_files(
    groundtruth: str, detections: str, label_map: str, *, excluded: str | None = None
) -> FrameMAP:
    """`frame_map` on the official files (as `get_ava_performance.py -g -d -l -e`)."""
    return frame_map(
        read_boxes(groundtruth, kind="gt"),
        read_boxes(detections, kind="detections"),
        read_label_map(label_map),
        excluded=read_excluded(excluded) if excluded else frozenset(),
    )
