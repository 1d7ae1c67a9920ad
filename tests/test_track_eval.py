"""Tracking scores (`vidrec track-eval`, `vidrec.metrics.tracking`) equal the reference packages:
motmetrics' own published scores of the tracker output its wheel ships with TUD-Campus, motmetrics
itself, and TrackEval (MOTChallenge's evaluator, HOTA included) reading the same files, MOT15
and MOT17 layouts, on generated sequences with misses, false alarms, id switches, distractors
and ignored rows. The reference packages come from tests/references.txt (the Makefile)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vidrec.errors
from vidrec.cli import main
from vidrec.io.mot import read_mot
from vidrec.metrics.tracking import score_files, score_tracks

TOLERANCE = 1e-9  # the same arithmetic in float64: equal up to summation order


def motmetrics_data() -> str:
    import motmetrics

    return os.path.join(os.path.dirname(motmetrics.__file__), "data", "TUD-Campus")


def test_published_motmetrics_scores_of_tud_campus():
    """motmetrics' test expects IDF1 0.557659, MOTA 0.526462, FP 13, FN 150, IDSW 7."""
    s = score_files(os.path.join(motmetrics_data(), "gt.txt"), os.path.join(motmetrics_data(), "test.txt"))
    assert s.IDF1 == pytest.approx(0.557659, abs=1e-6)
    assert s.MOTA == pytest.approx(0.526462, abs=1e-6)
    assert (s.FP, s.FN, s.IDSW) == (13, 150, 7)


def motmetrics_scores(gt: str, tracks: str) -> dict:
    import motmetrics as mm

    if not hasattr(np, "asfarray"):  # motmetrics 1.4.0 calls what NumPy 2 removed
        np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)
    acc = mm.utils.compare_to_groundtruth(
        mm.io.loadtxt(gt, fmt="mot15-2D", min_confidence=1),
        mm.io.loadtxt(tracks, fmt="mot15-2D"),
        "iou",
        distth=0.5,
    )
    names = ["idf1", "idp", "idr", "mota", "motp", "num_false_positives", "num_misses", "num_switches",
             "precision", "recall"]  # fmt: skip
    return mm.metrics.create().compute(acc, metrics=names, name="x").iloc[0].to_dict()


def trackeval_scores(folder: str, benchmark: str, frames: int) -> dict:
    """TrackEval's MOTChallenge reader and its HOTA, CLEAR and Identity on `folder`/gt/s/gt.txt
    and `folder`/trackers/t/data/s.txt."""
    from trackeval.datasets import MotChallenge2DBox
    from trackeval.metrics import CLEAR, HOTA, Identity

    dataset = MotChallenge2DBox({
        "GT_FOLDER": os.path.join(folder, "gt"), "TRACKERS_FOLDER": os.path.join(folder, "trackers"),
        "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True, "SEQ_INFO": {"s": frames}, "TRACKERS_TO_EVAL": ["t"],
        "PRINT_CONFIG": False,
    })  # fmt: skip
    data = dataset.get_preprocessed_seq_data(dataset.get_raw_seq_data("t", "s"), "pedestrian")
    out = {}
    for metric in (
        HOTA({"PRINT_CONFIG": False}),
        CLEAR({"PRINT_CONFIG": False}),
        Identity({"PRINT_CONFIG": False}),
    ):
        out.update({k: float(np.mean(v)) for k, v in metric.eval_sequence(data).items()})
    return out


def write_layout(folder, gt_rows: list[str], track_rows: list[str]) -> tuple[str, str]:
    gt = folder / "gt" / "s" / "gt" / "gt.txt"
    tracks = folder / "trackers" / "t" / "data" / "s.txt"
    for path, rows in ((gt, gt_rows), (tracks, track_rows)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(rows))
    return str(gt), str(tracks)


def generated(seed: int, *, classes: bool) -> tuple[list[str], list[str], int]:
    """A sequence of walkers and the rows of a flawed tracker: misses, jittered and loose boxes,
    false alarms, swapped and fragmented ids; with `classes` (MOT17), some ground truth is a
    distractor (a static person, a reflection) or flagged 0 (ignored)."""
    rng = np.random.default_rng(seed)
    frames, people = int(rng.integers(20, 60)), int(rng.integers(2, 9))
    gt_rows, track_rows = [], []
    start = rng.uniform(0, 500, (people, 2))
    velocity = rng.normal(0, 4, (people, 2))
    size = rng.uniform([20, 50], [80, 200], (people, 2))
    kind = rng.choice([1, 1, 1, 1, 7, 8, 12, 2], people) if classes else np.full(people, -1)
    flag = (rng.random(people) > 0.15).astype(int) if classes else np.ones(people, int)
    kind[:2], flag[:2] = (1 if classes else -1), 1  # the two who swap ids are scored
    swap_at = int(rng.integers(frames))
    next_id = 100
    fragments = {}
    for f in range(1, frames + 1):
        for p in range(people):
            if rng.random() < 0.1:  # not in view
                continue
            x, y = start[p] + velocity[p] * f
            w, h = size[p]
            gt_rows.append(f"{f},{p + 1},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{flag[p]},{kind[p]},1\n")
            if rng.random() < 0.2:  # missed
                continue
            tid = p + 1
            if f >= swap_at and p < 2 and people > 1:  # two ids swap for good
                tid = 2 - p
            if rng.random() < 0.05:  # a fragment: a new id from here on
                fragments[p] = next_id
                next_id += 1
            tid = fragments.get(p, tid)
            j = rng.normal(0, 0.12 * min(w, h), 4)  # localisation error: IoU from ~0.3 to 1
            track_rows.append(
                f"{f},{tid},{x + j[0]:.2f},{y + j[1]:.2f},{w + j[2]:.2f},{h + j[3]:.2f},0.9,-1,-1,-1\n"
            )
        for _ in range(rng.poisson(0.7)):  # false alarms
            x, y = rng.uniform(0, 600, 2)
            track_rows.append(f"{f},{next_id},{x:.2f},{y:.2f},40.00,90.00,0.5,-1,-1,-1\n")
            next_id += 1
    return gt_rows, track_rows, frames


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("benchmark", ["MOT15", "MOT17"])
def test_every_score_equals_trackeval(tmp_path, seed, benchmark):
    gt_rows, track_rows, frames = generated(seed, classes=benchmark == "MOT17")
    gt, tracks = write_layout(tmp_path, gt_rows, track_rows)
    ours = score_files(gt, tracks).to_dict()
    ref = trackeval_scores(str(tmp_path), benchmark, frames)
    same = (
        "HOTA DetA AssA DetRe DetPr AssRe AssPr LocA MOTA MOTP IDF1 IDP IDR IDSW Frag MT PT ML IDTP IDFN IDFP"
    )
    pairs = {k: k for k in same.split()}
    pairs.update(precision="CLR_Pr", recall="CLR_Re", TP="CLR_TP", FN="CLR_FN", FP="CLR_FP")
    for ours_key, ref_key in pairs.items():
        assert ours[ours_key] == pytest.approx(ref[ref_key], abs=TOLERANCE), ours_key
    assert 0 < ours["HOTA"] < 1 and ours["IDSW"] > 0  # the case is not trivial


@pytest.mark.parametrize("seed", range(4))
def test_clear_and_identity_equal_motmetrics(tmp_path, seed):
    gt_rows, track_rows, _ = generated(seed, classes=False)
    gt, tracks = write_layout(tmp_path, gt_rows, track_rows)
    cases = [
        (gt, tracks),
        (os.path.join(motmetrics_data(), "gt.txt"), os.path.join(motmetrics_data(), "test.txt")),
    ]
    for g, t in cases:
        ours, ref = score_files(g, t), motmetrics_scores(g, t)
        assert ours.IDF1 == pytest.approx(ref["idf1"], abs=TOLERANCE)
        assert ours.IDP == pytest.approx(ref["idp"], abs=TOLERANCE)
        assert ours.IDR == pytest.approx(ref["idr"], abs=TOLERANCE)
        assert ours.MOTA == pytest.approx(ref["mota"], abs=TOLERANCE)
        assert ours.MOTP == pytest.approx(1 - ref["motp"], abs=TOLERANCE)  # motmetrics: mean 1 - IoU
        assert (ours.FP, ours.FN, ours.IDSW) == (
            ref["num_false_positives"],
            ref["num_misses"],
            ref["num_switches"],
        )
        assert ours.precision == pytest.approx(ref["precision"], abs=TOLERANCE)
        assert ours.recall == pytest.approx(ref["recall"], abs=TOLERANCE)


def test_perfect_and_empty_tracks(tmp_path):
    gt_rows, _, _ = generated(0, classes=False)
    gt, _ = write_layout(tmp_path, gt_rows, [])
    perfect = score_tracks(read_mot(gt), read_mot(gt))
    assert (perfect.HOTA, perfect.MOTA, perfect.IDF1, perfect.IDSW, perfect.FP) == (1.0, 1.0, 1.0, 0, 0)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    none = score_files(gt, str(empty))
    assert (none.HOTA, none.MOTA, none.IDF1, none.recall) == (0.0, 0.0, 0.0, 0.0)
    assert none.FN == len(gt_rows)


def test_track_eval_command(tmp_path, capsys):
    gt, tracks = os.path.join(motmetrics_data(), "gt.txt"), os.path.join(motmetrics_data(), "test.txt")
    assert main(["track-eval", "--gt", gt, "--tracks", tracks, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == pytest.approx(score_files(gt, tracks).to_dict())
    assert main(["track-eval", "--gt", gt, "--tracks", tracks]) == 0
    text = capsys.readouterr().out
    assert "MOTA 0.526" in text and "IDF1 0.558" in text and "ID switches 7" in text


@pytest.mark.parametrize(
    "content, message",
    [
        ("1,1,10,10,5\n", "expected frame,id,x,y,w,h"),
        ("0,1,10,10,5,5\n", "frames are whole numbers from 1"),
        ("1,a,10,10,5,5\n", "not numbers"),
        ("1,1,10,10,5,5\n1,1,20,20,5,5\n", "id 1 appears twice in frame 1"),
    ],
)
def test_bad_tracks_are_one_line_errors(tmp_path, capsys, content, message):
    gt, bad = tmp_path / "gt.txt", tmp_path / "bad.txt"
    gt.write_text("1,1,10,10,5,5,1,-1,-1,-1\n")
    bad.write_text(content)
    assert main(["track-eval", "--gt", str(gt), "--tracks", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with pytest.raises(vidrec.errors.ConfigError):
        score_files(str(gt), str(bad))
    assert main(["track-eval", "--gt", str(tmp_path / "missing.txt"), "--tracks", str(gt)]) == 2


@pytest.mark.slow
def test_detect_tracks_tud_campus_as_the_readme_says(tmp_path, shared_videos, ssd_tflite, movinet_tflite):
    """`vidrec detect` with its defaults on every frame of TUD-Campus (MOTChallenge ground truth),
    scored by `vidrec track-eval`: the README's floor, MOTA >= 0.70, IDF1 >= 0.70, HOTA >= 0.50."""
    from conftest import MOVINET_DIR, SSD_DIR, run_vidrec

    folder = os.path.join(shared_videos, "mot", "TUD-Campus")
    tracks = tmp_path / "tracks.txt"
    weights = os.pathsep.join([MOVINET_DIR, SSD_DIR])
    done = run_vidrec(
        "detect", os.path.join(folder, "video.mp4"), "--fps", "25", "--mot", str(tracks), "--weights", weights
    )
    assert done.returncode == 0, done.stderr
    assert "(tiles: 480, then sized to the people)" in done.stderr  # 4:3: square tiles of its short side
    s = score_files(os.path.join(folder, "gt.txt"), str(tracks))
    assert s.MOTA >= 0.70 and s.IDF1 >= 0.70 and s.HOTA >= 0.50, s
