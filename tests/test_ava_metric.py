"""AVA frame-mAP on hand-made cases whose answer is worked out in each test's docstring."""

import json
import math

import numpy as np
import pytest

from vidrec.cli import main
from vidrec.data.ava import ActionLabel, AvaBox, write_boxes, write_label_map
from vidrec.errors import VidrecError
from vidrec.metrics.ava import average_precision, box_iou, frame_map

LABELS = [ActionLabel(1, "stand", "PERSON_MOVEMENT"), ActionLabel(2, "talk", "PERSON_INTERACTION")]
A = (0.1, 0.1, 0.4, 0.6)
B = (0.5, 0.2, 0.9, 0.8)


def gt(video, sec, box, action, person=0):
    return AvaBox(video, sec, box, action, person)


def det(video, sec, box, action, score):
    return AvaBox(video, sec, box, action, None, score)


def test_box_iou_known_values():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0, 0.0]])


def test_perfect_detections_score_one():
    truth = [gt("v", 902, A, 1), gt("v", 902, B, 2), gt("v", 903, A, 1)]
    dets = [det(r.video_id, r.sec, r.box, r.action_id, 0.9) for r in truth]
    result = frame_map(truth, dets, LABELS)
    assert result.mAP == 1.0
    assert result.per_class == {"stand": 1.0, "talk": 1.0}
    assert result.groups == {"PERSON_MOVEMENT": 1.0, "PERSON_INTERACTION": 1.0}
    assert result.num_frames == 2 and result.num_gt == {"stand": 2, "talk": 1}


def test_ranked_average_precision():
    """Two people to find; ranked TP (0.9), FP (0.8), TP (0.7): precision 1, 1/2, 2/3 at recall
    1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6."""
    truth = [gt("v", 902, A, 1), gt("v", 903, A, 1)]
    dets = [det("v", 902, A, 1, 0.9), det("v", 902, B, 1, 0.8), det("v", 903, A, 1, 0.7)]
    result = frame_map(truth, dets, LABELS)
    assert result.per_class["stand"] == pytest.approx(5 / 6)
    assert math.isnan(result.per_class["talk"])  # no ground truth: NaN, and not in the mean
    assert result.mAP == pytest.approx(5 / 6)


def test_duplicate_detection_is_a_false_positive():
    """Two detections of one person: the higher-scored one matches, the other is a FP ranked
    second -> precision 1, 1/2 at recall 1, 1 -> AP 1. A third person missed halves it."""
    truth = [gt("v", 902, A, 1)]
    dets = [det("v", 902, A, 1, 0.6), det("v", 902, A, 1, 0.9)]
    assert frame_map(truth, dets, LABELS).mAP == 1.0
    truth.append(gt("v", 902, B, 1, person=1))
    assert frame_map(truth, dets, LABELS).mAP == pytest.approx(0.5)


def test_a_detection_takes_its_highest_iou_box_even_when_taken():
    """Detection 2 overlaps A a little (IoU 0.64) and A' more (IoU 0.8), but A' was taken by
    detection 1: it is a false positive, not re-matched to A. AP = 1/2 (the first detection finds
    one of two people; the FP adds no recall)."""
    a2 = (0.1, 0.1, 0.4, 0.5)  # A cut at y 0.5
    truth = [gt("v", 902, A, 1, person=0), gt("v", 902, a2, 1, person=1)]
    d2 = (0.1, 0.1, 0.4, 0.42)
    assert box_iou(np.array([d2]), np.array([A, a2])).round(2).tolist() == [[0.64, 0.8]]
    dets = [det("v", 902, a2, 1, 0.9), det("v", 902, d2, 1, 0.8)]
    assert frame_map(truth, dets, LABELS).mAP == pytest.approx(0.5)


def test_iou_below_half_is_a_miss():
    truth = [gt("v", 902, (0.0, 0.0, 0.4, 0.4), 1)]
    half = (0.0, 0.0, 0.4, 0.19)  # IoU 0.475
    assert frame_map(truth, [det("v", 902, half, 1, 0.9)], LABELS).mAP == 0.0


def test_ties_are_ranked_as_the_official_evaluator_ranks_them():
    """Equal scores, the TP listed first: numpy's argsort keeps them in order and the reversal
    puts the FP first -> precision 0, 1/2 at recall 0, 1 -> AP 1/2 (not 1)."""
    truth = [gt("v", 902, A, 1)]
    dets = [det("v", 902, A, 1, 0.5), det("v", 903, A, 1, 0.5)]
    assert frame_map(truth, dets, LABELS).mAP == pytest.approx(0.5)
    assert average_precision(np.array([0.5, 0.5]), np.array([False, True]), 1) == pytest.approx(1.0)


def test_excluded_keyframes_and_empty_frames():
    """Counted, keyframe 904's FP ranks first and its person is missed: precision 0, 1/2 at recall
    0, 1/2 -> AP 1/4. Excluded, neither counts -> AP 1. A detection on a keyframe without ground
    truth (905) is a false positive ranked first -> AP 1/2."""
    truth = [gt("v", 902, A, 1), gt("v", 904, B, 1)]
    dets = [det("v", 902, A, 1, 0.5), det("v", 904, A, 1, 0.99)]
    assert frame_map(truth, dets, LABELS).mAP == pytest.approx(0.25)
    assert frame_map(truth, dets, LABELS, excluded={"v,0904"}).mAP == 1.0
    dets.append(det("v", 905, A, 1, 0.95))
    result = frame_map(truth, dets, LABELS, excluded={"v,0904"})
    assert result.mAP == pytest.approx(0.5) and result.num_frames == 1


def test_only_fifty_detections_per_keyframe_count():
    """60 false positives scored above the one true positive: with the official cap the TP is cut
    (AP 0); without it the TP ranks 61st (AP 1/61)."""
    truth = [gt("v", 902, A, 1)]
    fps = [det("v", 902, B, 1, 0.9 - i * 1e-3) for i in range(60)]
    dets = [det("v", 902, A, 1, 0.1), *fps]
    assert frame_map(truth, dets, LABELS).mAP == 0.0
    assert frame_map(truth, dets, LABELS, max_detections=0).mAP == pytest.approx(1 / 61)


def test_classes_outside_the_label_map_are_ignored():
    truth = [gt("v", 902, A, 1), gt("v", 902, A, 7)]
    dets = [det("v", 902, A, 1, 0.9), det("v", 902, B, 7, 0.99)]
    result = frame_map(truth, dets, LABELS)
    assert result.mAP == 1.0 and set(result.per_class) == {"stand", "talk"}


def test_no_ground_truth_is_a_clear_error():
    with pytest.raises(VidrecError, match="no ground-truth box"):
        frame_map([gt("v", 902, A, 5)], [], LABELS)


def test_ava_eval_cli(tmp_path, capsys):
    truth = [gt("v", 902, A, 1), gt("v", 903, A, 1), gt("v", 902, B, 2, person=1)]
    dets = [
        det("v", 902, A, 1, 0.9),
        det("v", 902, B, 1, 0.8),
        det("v", 903, A, 1, 0.7),
        det("v", 902, B, 2, 0.3),
    ]
    write_boxes(tmp_path / "gt.csv", truth, kind="gt")
    write_boxes(tmp_path / "det.csv", dets, kind="detections")
    write_label_map(tmp_path / "labels.pbtxt", LABELS)
    (tmp_path / "excl.csv").write_text("v,0903\n")
    args = ["ava-eval", "--gt", str(tmp_path / "gt.csv"), "--detections", str(tmp_path / "det.csv")]
    args += ["--labels", str(tmp_path / "labels.pbtxt")]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert out["per_class"] == {"stand": pytest.approx(5 / 6), "talk": 1.0}
    assert main([*args, "--excluded", str(tmp_path / "excl.csv")]) == 0
    text = capsys.readouterr().out
    # 903 excluded: "stand" keeps its TP (0.9) above its FP (0.8): AP 1
    assert text.startswith("frame-mAP@0.5IOU: 1.0000 (1 keyframes)")
    assert "talk" in text and "PERSON_MOVEMENT: 1.0000" in text


def test_boxes_a_little_past_the_frame_are_scored_as_the_official_evaluator_scores_them(tmp_path, capsys):
    """A detector's box reaching y2 = 1.026 is kept as written (its IoU with the true box
    (0.1, 0.1, 0.4, 0.98) is 0.88 / 0.926: a true positive) with one warning for the file; the
    whole file is not refused. Pixels (beyond [-0.5, 1.5]) are still an error."""
    truth = [gt("v", 902, (0.1, 0.1, 0.4, 0.98), 1), gt("v", 903, A, 1)]
    dets = [det("v", 902, (0.1, 0.1, 0.4, 1.026), 1, 0.9), det("v", 903, (-0.01, 0.1, 0.4, 1.02), 1, 0.8)]
    write_boxes(tmp_path / "gt.csv", truth, kind="gt")
    write_boxes(tmp_path / "det.csv", dets, kind="detections")
    write_label_map(tmp_path / "labels.pbtxt", LABELS)
    args = ["ava-eval", "--gt", str(tmp_path / "gt.csv"), "--detections", str(tmp_path / "det.csv")]
    assert main([*args, "--labels", str(tmp_path / "labels.pbtxt"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["per_class"]["stand"] == pytest.approx(
        0.5
    )  # 902 found, 903 (IoU 0.40) not
    (warning,) = captured.err.splitlines()
    assert (
        warning.startswith("warning: ") and "2 boxes reach past the frame" in warning and "1.026" in warning
    )
    assert box_iou(np.array([[0.1, 0.1, 0.4, 1.026]]), np.array([[0.1, 0.1, 0.4, 0.98]]))[
        0, 0
    ] == pytest.approx(0.88 / 0.926)
    (tmp_path / "px.csv").write_text("v,0902,12,20,300,400,1,0.9\n")
    assert main([*args[:4], str(tmp_path / "px.csv"), "--labels", str(tmp_path / "labels.pbtxt")]) == 2
    assert "normalised, not pixels" in capsys.readouterr().err
