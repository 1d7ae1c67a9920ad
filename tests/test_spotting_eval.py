"""`vidrec spot-eval` equals SoccerNet's evaluator (soccernet 0.2.0) on generated games: several
games and both halves, tied scores, two predictions on one frame, a game without predictions, a
class without events, unshown events, labels outside the classes; and the event files round trip."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vidrec.io.events import Event, read_events, write_events
from vidrec.metrics.spotting import SOCCERNET_V2, spotting_map, spotting_map_files

CLASSES = ["serve", "shot", "goal", "foul"]  # "foul" never happens


def _games(seed: int, n_games: int = 3) -> tuple[list[Event], list[Event]]:
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for g in range(n_games):
        video = f"league/2026/game {g}"
        for half in (1, 2):
            for _ in range(rng.integers(5, 15)):
                label = CLASSES[rng.integers(3)]
                t = round(float(rng.uniform(0, 600)), 3)
                gt.append(Event(video, t, label, half=half, visible=bool(rng.random() > 0.2)))
                if g == 1:  # this game gets no predictions at all
                    continue
                for _ in range(rng.integers(0, 3)):  # near it, scores on a coarse grid: ties
                    dt = float(rng.normal(0, 0.7))
                    conf = float(rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]))
                    pred.append(Event(video, round(max(0.0, t + dt), 3), label, conf, half=half))
            for _ in range(rng.integers(3, 10)):  # false alarms, one in another label set
                label = (CLASSES + ["throw-in"])[rng.integers(5)]
                conf = round(float(rng.random()), 2)
                pred.append(Event(video, round(float(rng.uniform(0, 600)), 3), label, conf, half=half))
            if pred and pred[-1].video == video:  # a second prediction on the same 0.5 s frame
                e = pred[-1]
                pred.append(Event(video, e.time + 0.01, e.label, 0.3, half=half))
    if n_games > 1:  # the game without predictions still has a file: the evaluator needs one
        pred.append(Event("league/2026/game 1", 10.0, "throw-in", 0.9))
    return gt, pred


def _official(gt_dir, pred_dir, metric, classes):
    from SoccerNet.Evaluation.ActionSpotting import evaluate

    return evaluate(
        SoccerNet_path=gt_dir, Predictions_path=pred_dir, prediction_file="results_spotting.json",
        label_files="Labels-v2.json", split="test", version=2, framerate=2, metric=metric,
        dataset=None, EVENT_DICTIONARY={name: i for i, name in enumerate(classes)},
    )  # fmt: skip


@pytest.mark.parametrize("seed,metric", [(0, "tight"), (1, "loose"), (2, "at1"), (3, "at5"), (4, "tight")])
def test_equals_soccernet_evaluator(tmp_path, seed, metric):
    pytest.importorskip("SoccerNet")
    gt, pred = _games(seed)
    write_events(gt, str(tmp_path / "gt"))
    write_events(pred, str(tmp_path / "pred"))
    official = _official(str(tmp_path / "gt"), str(tmp_path / "pred"), metric, CLASSES)
    ours = spotting_map_files(
        str(tmp_path / "gt"), str(tmp_path / "pred"), classes=",".join(CLASSES), metric=metric
    )
    assert ours.a_mAP > 0.05  # a case that exercises the matching, not all zeros
    assert ours.per_class["foul"] == 0.0  # a class without events scores 0, in the mean
    for key in ("a_mAP", "a_mAP_visible", "a_mAP_unshown"):
        assert getattr(ours, key) == pytest.approx(official[key], abs=1e-12), key
    for ours_key, key in (("per_class", "a_mAP_per_class"), ("per_class_visible", "a_mAP_per_class_visible"),
                          ("per_class_unshown", "a_mAP_per_class_unshown")):  # fmt: skip
        assert list(getattr(ours, ours_key).values()) == pytest.approx(list(official[key]), abs=1e-12)


def test_empty_predictions_and_perfect_predictions(tmp_path):
    pytest.importorskip("SoccerNet")
    gt, _ = _games(5, n_games=1)
    write_events(gt, str(tmp_path / "gt"))
    video = gt[0].video
    os.makedirs(tmp_path / "empty" / video)
    (tmp_path / "empty" / video / "results_spotting.json").write_text(json.dumps({"predictions": []}))
    perfect = [Event(e.video, e.time, e.label, 1.0, half=e.half) for e in gt]
    write_events(perfect, str(tmp_path / "perfect"))
    for folder, expected in (("empty", 0.0), ("perfect", None)):
        official = _official(str(tmp_path / "gt"), str(tmp_path / folder), "tight", CLASSES[:3])
        ours = spotting_map_files(str(tmp_path / "gt"), str(tmp_path / folder), classes=",".join(CLASSES[:3]))
        assert ours.a_mAP == pytest.approx(official["a_mAP"], abs=1e-12)
        if expected is not None:
            assert ours.a_mAP == expected
    # two events of a class in one 0.5 s frame are one on the grid: perfect predictions score 1 only
    # where no such pair exists, so this is < 1 exactly when the evaluator says so
    assert spotting_map(gt, perfect, CLASSES[:3]).a_mAP == pytest.approx(official["a_mAP"], abs=1e-12)


def test_soccernet_classes_and_single_files(tmp_path):
    gt = [Event("match", 65.2, "Goal"), Event("match", 300.0, "Corner", half=2)]
    pred = [Event("other name", 65.0, "Goal", 0.9), Event("other name", 301.0, "Corner", 0.8, half=2)]
    write_events(gt, str(tmp_path / "Labels-v2.json"))
    write_events(pred, str(tmp_path / "results_spotting.json"))
    score = spotting_map_files(
        str(tmp_path / "Labels-v2.json"), str(tmp_path / "results_spotting.json"), classes="soccernet-v2"
    )
    assert list(score.per_class) == list(SOCCERNET_V2)
    assert score.per_class["Goal"] == 1.0 and score.per_class["Corner"] > 0  # 1 s off: within 3 of 5
    assert score.a_mAP == pytest.approx((score.per_class["Goal"] + score.per_class["Corner"]) / 17)


def test_event_files_round_trip(tmp_path):
    events = [
        Event("a", 1.5, "serve", 0.75, track=3),
        Event("a", 2.25, 'shot, "long"', 0.5),
        Event("b", 0.0, "goal", 1.0, half=2),
    ]
    for name in ("events.csv", "folder"):
        write_events(events, str(tmp_path / name))
        back = read_events(str(tmp_path / name))
        key = lambda e: (e.video, e.half, e.time)  # noqa: E731
        assert sorted(back, key=key) == sorted(events, key=key)
    (tmp_path / "plain.csv").write_text("clip.mp4,12.5,shot,4\nclip.mp4,3,serve\n")
    assert read_events(str(tmp_path / "plain.csv")) == [
        Event("clip.mp4", 12.5, "shot", track=4),
        Event("clip.mp4", 3.0, "serve"),
    ]


@pytest.mark.parametrize(
    "text,message",
    [
        ("video,time,label\nclip,soon,shot\n", "time 'soon' is not a number"),
        ("video,time,label,colour\nclip,1,shot,red\n", "unknown column 'colour'"),
        ("clip,1\n", "expected video, time, label, track"),
    ],
)
def test_bad_event_files_name_the_problem(tmp_path, text, message):
    from vidrec.errors import ConfigError

    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_events(str(path))


def test_cli_prints_the_score_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    from vidrec.cli import main

    (tmp_path / "gt.csv").write_text("video,time,label\nclip,3.0,shot\nclip,20,serve\n")
    (tmp_path / "pred.csv").write_text("video,time,label,confidence\nclip,3.4,shot,0.9\nclip,24,serve,0.8\n")
    assert (
        main(["spot-eval", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"), "--json"])
        == 0
    )
    tight = json.loads(capsys.readouterr().out)
    assert tight["a_mAP_per_class"] == {"serve": 0.0, "shot": 1.0}  # 4 s off is outside 1-5 s / 2
    args = ["spot-eval", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv")]
    assert main([*args, "--metric", "loose", "--json"]) == 0
    loose = json.loads(capsys.readouterr().out)["a_mAP_per_class"]  # serve: 0 at 5 s, 1 from 10 s
    assert loose == {"serve": pytest.approx((0.5 + 10) / 11), "shot": 1.0}
    assert main([*args, "--metric", "9"]) == 0
    assert "average-mAP 100.00 (tolerances 9 s" in capsys.readouterr().out
    for bad, message in ((["--metric", "fast"], "--metric fast"), (["--classes", ""], "no classes")):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_synth_spot_writes_events_that_score_themselves_perfectly(tmp_path):
    from vidrec.cli import main
    from vidrec.io import probe

    out = tmp_path / "spot"
    args = ["synth-spot", str(out), "--train", "1", "--val", "0", "--test", "2", "--min-seconds", "8"]
    assert main([*args, "--max-seconds", "12", "--workers", "1"]) == 0
    gt = read_events(str(out / "test.csv"))
    assert gt and {e.label for e in gt} <= {"bounce", "collide", "reverse", "appear", "vanish"}
    for video in {e.video for e in gt}:
        info = probe(str(out / video))
        assert 8 <= info.num_frames / info.fps <= 12.1
        assert all(0 <= e.time < info.num_frames / info.fps for e in gt if e.video == video)
    games = read_events(str(out / "soccernet" / "test"))  # the same events, one folder per video
    assert sorted((os.path.basename(e.video), e.time, e.label) for e in games) == sorted(
        (os.path.basename(e.video)[:-4], e.time, e.label) for e in gt
    )
    perfect = [Event(e.video, e.time, e.label, 1.0) for e in gt]
    write_events(perfect, str(tmp_path / "pred.csv"))
    score = spotting_map_files(str(out / "soccernet" / "test"), str(tmp_path / "pred.csv"))
    assert score.videos == ["test_00000", "test_00001"] and score.num_predictions == len(gt)
    # the same seed makes the same set; a second run keeps every video
    assert main([*args, "--max-seconds", "12", "--workers", "1"]) == 0
    assert read_events(str(out / "test.csv")) == gt
