"""Multi-object tracking scores against MOTChallenge ground truth, as TrackEval (Luiten et al.)
defines them, so that a figure here is the figure the benchmarks publish:

- HOTA (Luiten et al., 2021): per IoU threshold alpha in 0.05, 0.10, ..., 0.95, detections are
  matched per frame (Hungarian on IoU weighted by how well the two ids align over the whole
  sequence); DetA = TP / (TP + FN + FP), AssA = the mean over true positives of the alignment of
  their two ids (TPA / (TPA + FNA + FPA)), HOTA = sqrt(DetA x AssA); each figure is the mean
  over the 19 thresholds.
- CLEAR MOT (Bernardin & Stiefelhagen, 2008) at IoU 0.5: a ground-truth object keeps the id it
  was matched to in the previous frame when it still overlaps; MOTA = 1 - (FN + FP + IDSW) / GT,
  MOTP the mean IoU of matches, mostly tracked (> 80% of its frames) / partly / mostly lost (< 20%).
- Identity (Ristani et al., 2016) at IoU 0.5: one global one-to-one assignment of ground-truth ids
  to tracker ids; IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).

The ground truth is read as TrackEval reads MOTChallenge: rows flagged 0 are ignored; where the
file has classes (MOT16 and later) only pedestrians are scored, and tracker boxes matching a
distractor (a person on a vehicle, a static person, a reflection) are removed first. The tests
check every figure against TrackEval and motmetrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from vidrec.errors import ConfigError
from vidrec.io.mot import MOTRows, read_mot

EPS = np.finfo(float).eps
ALPHAS = np.arange(0.05, 0.99, 0.05)  # HOTA's 19 IoU thresholds
PEDESTRIAN, DISTRACTORS = 1, (2, 7, 8, 12)  # person on vehicle, static person, distractor, reflection
MOT_CLASSES = set(range(1, 14))


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU `(len(a), len(b))` of boxes x y w h; degenerate boxes overlap nothing."""
    a = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], 1)
    b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
    lo, hi = np.maximum(a[:, None], b[None]), np.minimum(a[:, None], b[None])
    inter = np.maximum(hi[..., 2] - lo[..., 0], 0) * np.maximum(hi[..., 3] - lo[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None] - inter
    inter[area_a <= EPS] = 0
    inter[:, area_b <= EPS] = 0
    inter[union <= EPS] = 0
    return inter / np.where(union <= EPS, 1.0, union)


@dataclass
class Sequence:
    """One sequence ready to score: per frame, ground-truth and tracker ids (0-based, contiguous)
    and their IoU matrix."""

    gt_ids: list[np.ndarray]
    tracker_ids: list[np.ndarray]
    similarity: list[np.ndarray]
    num_gt_ids: int
    num_tracker_ids: int

    @property
    def num_gt_dets(self) -> int:
        """Ground-truth boxes scored."""
        return sum(map(len, self.gt_ids))

    @property
    def num_tracker_dets(self) -> int:
        """Tracker boxes scored."""
        return sum(map(len, self.tracker_ids))


def _check_unique(rows: MOTRows, what: str) -> None:
    pairs, counts = np.unique(np.stack([rows.frames, rows.ids], 1), axis=0, return_counts=True)
    if (counts > 1).any():
        frame, track = pairs[counts > 1][0]
        raise ConfigError(f"{what}: id {track} appears twice in frame {frame}")


def prepare(gt: MOTRows, tracks: MOTRows) -> Sequence:
    """Ground truth and a tracker's rows as TrackEval's MOTChallenge reader prepares them."""
    _check_unique(gt, "ground truth")
    _check_unique(tracks, "tracks")
    classed = len(gt) > 0 and set(np.unique(gt.classes).tolist()) <= MOT_CLASSES  # MOT16 and later
    frames = np.union1d(gt.frames, tracks.frames)
    gt_ids, tracker_ids, similarity = [], [], []
    for frame in frames:
        g, t = gt.select(gt.frames == frame), tracks.select(tracks.frames == frame)
        sim = box_iou_xywh(g.boxes, t.boxes)
        keep_t = np.ones(len(t), bool)
        if classed and len(g) and len(t):  # tracker boxes on distractors are not scored
            score = np.where(sim < 0.5 - EPS, 0.0, sim)
            rows, cols = linear_sum_assignment(-score)
            matched = score[rows, cols] > EPS
            keep_t[cols[matched][np.isin(g.classes[rows[matched]], DISTRACTORS)]] = False
        keep_g = g.conf != 0
        if classed:
            keep_g &= g.classes == PEDESTRIAN
        gt_ids.append(g.ids[keep_g])
        tracker_ids.append(t.ids[keep_t])
        similarity.append(sim[keep_g][:, keep_t])
    gt_ids, num_gt = _relabel(gt_ids)
    tracker_ids, num_tracker = _relabel(tracker_ids)
    return Sequence(gt_ids, tracker_ids, similarity, num_gt, num_tracker)


def _relabel(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    unique = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    return [np.searchsorted(unique, i) for i in ids], len(unique)


def hota(seq: Sequence) -> dict[str, float]:
    """HOTA, DetA, AssA, DetRe, DetPr, AssRe, AssPr and LocA, each the mean over `ALPHAS`."""
    n = len(ALPHAS)
    tp, fn, fp, loc = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    if seq.num_tracker_dets == 0 or seq.num_gt_dets == 0:
        fn[:], fp[:] = seq.num_gt_dets, seq.num_tracker_dets
        zero = dict.fromkeys(["HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr"], 0.0)
        return {**zero, "LocA": 1.0}
    potential = np.zeros((seq.num_gt_ids, seq.num_tracker_ids))
    gt_count, tracker_count = np.zeros((seq.num_gt_ids, 1)), np.zeros((1, seq.num_tracker_ids))
    for g, t, sim in zip(seq.gt_ids, seq.tracker_ids, seq.similarity):
        denom = sim.sum(0)[None] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > EPS
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[g[:, None], t[None]] += sim_iou
        gt_count[g] += 1
        tracker_count[0, t] += 1
    alignment = potential / (gt_count + tracker_count - potential)
    matches = np.zeros((n, seq.num_gt_ids, seq.num_tracker_ids))
    for g, t, sim in zip(seq.gt_ids, seq.tracker_ids, seq.similarity):
        if len(g) == 0 or len(t) == 0:
            fp += len(t)
            fn += len(g)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], t[None]] * sim))
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - EPS
            r, c = rows[ok], cols[ok]
            tp[a] += len(r)
            fn[a] += len(g) - len(r)
            fp[a] += len(t) - len(r)
            loc[a] += sim[r, c].sum()
            matches[a, g[r], t[c]] += 1
    union = gt_count[None] + tracker_count[None] - matches
    ass_a = (matches * matches / np.maximum(1, union)).sum((1, 2)) / np.maximum(1, tp)
    ass_re = (matches * matches / np.maximum(1, gt_count[None])).sum((1, 2)) / np.maximum(1, tp)
    ass_pr = (matches * matches / np.maximum(1, tracker_count[None])).sum((1, 2)) / np.maximum(1, tp)
    det_a = tp / np.maximum(1, tp + fn + fp)
    out = {
        "HOTA": np.sqrt(det_a * ass_a),
        "DetA": det_a,
        "AssA": ass_a,
        "DetRe": tp / np.maximum(1, tp + fn),
        "DetPr": tp / np.maximum(1, tp + fp),
        "AssRe": ass_re,
        "AssPr": ass_pr,
        "LocA": np.maximum(1e-10, loc) / np.maximum(1e-10, tp),
    }
    return {k: float(v.mean()) for k, v in out.items()}


def clear(seq: Sequence, threshold: float = 0.5) -> dict[str, float]:
    """CLEAR MOT at IoU `threshold`: MOTA, MOTP, TP, FN, FP, IDSW, fragmentations, mostly
    tracked / partly tracked / mostly lost (ground-truth ids), precision and recall."""
    n = seq.num_gt_ids
    if seq.num_tracker_dets == 0 or seq.num_gt_dets == 0:  # nothing to match: TrackEval's figures
        empty = dict.fromkeys(["MOTA", "MOTP", "precision", "recall"], 0.0)
        counts = dict.fromkeys(["TP", "IDSW", "Frag", "MT", "PT"], 0)
        missed = seq.num_tracker_dets == 0
        return {
            **empty,
            **counts,
            "FN": seq.num_gt_dets,
            "FP": seq.num_tracker_dets,
            "ML": n if missed else 0,
        }
    tp = fn = fp = idsw = 0
    motp = 0.0
    gt_count, gt_matched, gt_frag = np.zeros(n), np.zeros(n), np.zeros(n)
    last_match = np.full(n, np.nan)  # the tracker id each object was last matched to
    previous = np.full(n, np.nan)  # ... in the previous frame only
    for g, t, sim in zip(seq.gt_ids, seq.tracker_ids, seq.similarity):
        if len(g) == 0:
            fp += len(t)
            continue
        gt_count[g] += 1
        if len(t) == 0:
            fn += len(g)
            continue
        score = 1000.0 * (t[None] == previous[g][:, None]) + sim
        score[sim < threshold - EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > EPS
        rows, cols = rows[ok], cols[ok]
        mg, mt = g[rows], t[cols]
        before = last_match[mg]
        idsw += int((~np.isnan(before) & (mt != before)).sum())
        gt_matched[mg] += 1
        was_tracked = ~np.isnan(previous)
        last_match[mg] = mt
        previous[:] = np.nan
        previous[mg] = mt
        gt_frag += ~was_tracked & ~np.isnan(previous)
        tp += len(mg)
        fn += len(g) - len(mg)
        fp += len(t) - len(mg)
        motp += float(sim[rows, cols].sum())
    seen = gt_count > 0
    ratio = gt_matched[seen] / gt_count[seen]
    mostly = int((ratio > 0.8).sum())
    partly = int((ratio >= 0.2).sum()) - mostly
    return {
        "MOTA": (tp - fp - idsw) / max(1, tp + fn),
        "MOTP": motp / max(1, tp),
        "TP": tp,
        "FN": fn,
        "FP": fp,
        "IDSW": idsw,
        "Frag": int((gt_frag[gt_frag > 0] - 1).sum()),
        "MT": mostly,
        "PT": partly,
        "ML": n - mostly - partly,
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, tp + fn),
    }


def identity(seq: Sequence, threshold: float = 0.5) -> dict[str, float]:
    """IDF1, IDP, IDR (and IDTP, IDFN, IDFP) at IoU `threshold`."""
    ng, nt = seq.num_gt_ids, seq.num_tracker_ids
    potential = np.zeros((ng, nt))
    gt_count, tracker_count = np.zeros(ng), np.zeros(nt)
    for g, t, sim in zip(seq.gt_ids, seq.tracker_ids, seq.similarity):
        r, c = np.nonzero(sim >= threshold - EPS)
        potential[g[r], t[c]] += 1
        gt_count[g] += 1
        tracker_count[t] += 1
    fp_mat, fn_mat = np.zeros((ng + nt, ng + nt)), np.zeros((ng + nt, ng + nt))
    fp_mat[ng:, :nt] = 1e10
    fn_mat[:ng, nt:] = 1e10
    fn_mat[:ng, :nt] = gt_count[:, None] - potential
    fn_mat[np.arange(ng), nt + np.arange(ng)] = gt_count
    fp_mat[:ng, :nt] = tracker_count[None] - potential
    fp_mat[ng + np.arange(nt), np.arange(nt)] = tracker_count
    rows, cols = linear_sum_assignment(fn_mat + fp_mat)
    idfn, idfp = int(fn_mat[rows, cols].sum()), int(fp_mat[rows, cols].sum())
    idtp = int(gt_count.sum()) - idfn
    return {
        "IDF1": idtp / max(1, idtp + 0.5 * idfp + 0.5 * idfn),
        "IDP": idtp / max(1, idtp + idfp),
        "IDR": idtp / max(1, idtp + idfn),
        "IDTP": idtp,
        "IDFN": idfn,
        "IDFP": idfp,
    }


@dataclass
class TrackingScores:
    """Every score of one sequence (see the module's docstring)."""

    HOTA: float
    DetA: float
    AssA: float
    DetRe: float
    DetPr: float
    AssRe: float
    AssPr: float
    LocA: float
    MOTA: float
    MOTP: float
    IDF1: float
    IDP: float
    IDR: float
    precision: float
    recall: float
    TP: int
    FN: int
    FP: int
    IDSW: int
    Frag: int
    MT: int
    PT: int
    ML: int
    IDTP: int
    IDFN: int
    IDFP: int
    gt_ids: int
    tracker_ids: int
    gt_boxes: int
    tracker_boxes: int

    def to_dict(self) -> dict:
        """Every score by its name (what `track-eval --json` prints)."""
        return asdict(self)


def score_tracks(gt: MOTRows, tracks: MOTRows) -> TrackingScores:
    """HOTA, CLEAR MOT and identity scores of a tracker's rows against ground truth."""
    seq = prepare(gt, tracks)
    counts = {
        "gt_ids": seq.num_gt_ids,
        "tracker_ids": seq.num_tracker_ids,
        "gt_boxes": seq.num_gt_dets,
        "tracker_boxes": seq.num_tracker_dets,
    }
    return TrackingScores(**hota(seq), **clear(seq), **identity(seq), **counts)


def score_files(gt: str, tracks: str) -> TrackingScores:
    """`score_tracks` of two MOTChallenge files."""
    rows = read_mot(gt)
    if not len(rows):
        raise ConfigError(f"{gt}: no ground-truth rows")
    return score_tracks(rows, read_mot(tracks))


__all__ = ["ALPHAS", "Sequence", "TrackingScores", "box_iou_xywh", "clear", "hota", "identity", "prepare",
           "score_files", "score_tracks"]  # fmt: skip
