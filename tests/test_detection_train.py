"""Training and evaluating action detectors through vidrec's engine on a tiny SynthMotion-AVA."""

import json

import numpy as np
import pytest
import torch

from vidrec.cli import main
from vidrec.data.ava import read_boxes
from vidrec.data.ava_dataset import KeyframeDataset, build_keyframes, find_videos, keyframe_indices
from vidrec.data.synthetic_ava import SynthAvaConfig, generate_ava_dataset
from vidrec.errors import ConfigError
from vidrec.metrics.ava import frame_map
from vidrec.models.ava_detector import SYNTH_AVA_PREP
from vidrec.train.config import config_from_dict
from vidrec.train.loop import train


@pytest.fixture(scope="module")
def sava(tmp_path_factory):
    out = tmp_path_factory.mktemp("sava")
    cfg = SynthAvaConfig(size=96, num_frames=24, cell=48)
    generate_ava_dataset(
        str(out), counts={"train": 6, "val": 2, "test": 2}, cfg=cfg, workers=1, progress=False
    )
    return out


def run_config(sava, out, **extra):
    tree = {
        "task": "detection",
        "model": {"name": "tsn_small_ava"},
        "data": {"train": str(sava), "batch_size": 4, "workers": 0, "crop_size": 80, "resize": 96},
        "detection": {"videos": str(sava / "videos"), "labels": str(sava / "labels.pbtxt")},
        "schedule": {"epochs": 1},
        "run": {"out": str(out), "tensorboard": False},
    }
    for key, value in extra.items():
        tree.setdefault(key, {}).update(value)
    return config_from_dict(tree)


def test_keyframe_clip_is_pyslowfasts_clamped_sequence():
    assert keyframe_indices(10, num_frames=4, sampling_rate=2, num_video_frames=40).tolist() == [6, 8, 10, 12]
    assert keyframe_indices(1, num_frames=4, sampling_rate=2, num_video_frames=40).tolist() == [0, 0, 1, 3]
    assert keyframe_indices(38, num_frames=4, sampling_rate=2, num_video_frames=40).tolist() == [
        34,
        36,
        38,
        39,
    ]


def test_boxes_follow_the_pixels(sava):
    """A box drawn where the actor is stays on the actor through the test resize and the training
    crop: the mean colour inside it differs from the frame's."""
    gt = read_boxes(sava / "train.csv")
    keyframes, missing = build_keyframes(gt, videos=find_videos(str(sava / "videos")), num_classes=13)
    assert not missing and len({(k.video_id, k.sec) for k in keyframes}) == len({r.key for r in gt})
    for training in (False, True):
        item = KeyframeDataset(keyframes, prep=SYNTH_AVA_PREP, train=training)[0]
        clip, boxes = item["video"], item["boxes"]
        size = 112 if training else 128
        assert clip.shape[-2:] == (size, size) and (boxes >= 0).all() and (boxes <= size).all()
        assert item["labels"].sum(1).min() >= 1  # every ground-truth person does something


def test_person_boxes_take_the_actions_of_the_truth_they_overlap(sava):
    gt = read_boxes(sava / "train.csv")[:3]
    near = [type(r)(r.video_id, r.sec, r.box, None, None, 0.95) for r in gt]  # IoU 1
    far = [type(gt[0])(gt[0].video_id, gt[0].sec, (0.0, 0.0, 0.05, 0.05), None, None, 0.99)]
    low = [type(gt[0])(gt[0].video_id, gt[0].sec, gt[0].box, None, None, 0.5)]  # below the threshold
    keyframes, _ = build_keyframes(
        gt,
        videos=find_videos(str(sava / "videos")),
        num_classes=13,
        detected=near + far + low,
        use_groundtruth=False,
    )
    labels = np.concatenate([k.labels for k in keyframes])
    assert sorted(labels.sum(1).tolist()) == [0, 1, 1, 1]  # the low-scored box is dropped


def test_train_and_eval_write_the_official_files(sava, tmp_path, capsys):
    cfg = run_config(sava, tmp_path / "run", model={"init": None})
    summary = train(cfg, progress=False)
    assert 0 <= summary["val_mAP"] <= 100 and 0 <= summary["test_mAP"] <= 100
    out = tmp_path / "run"
    for name in ("detections.csv", "ap_table.md", "detections.png", "test_report.json", "model.safetensors"):
        assert (out / name).exists(), name
    report = json.loads((out / "test_report.json").read_text())
    rows = read_boxes(out / "detections.csv", kind="detections")
    assert {r.action_id for r in rows} == set(range(1, 14))  # every box scored for every class
    from vidrec.data.ava import read_label_map

    again = frame_map(read_boxes(sava / "test.csv"), rows, read_label_map(sava / "labels.pbtxt"))
    assert again.mAP == pytest.approx(report["mAP"], abs=1e-4)  # the CSV reproduces the metric
    (tmp_path / "cfg.yaml").write_text(cfg.to_yaml())
    assert main(["eval", str(tmp_path / "cfg.yaml"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["mAP"] == pytest.approx(report["mAP"]) and printed["split"] == "test"
    assert (out / "eval" / "detections.csv").exists()


def test_detector_starts_from_a_classifier_and_reports_the_keys(sava, tmp_path, capsys):
    from vidrec import create_model

    classifier = create_model("tsn_small", num_classes=12)
    classifier.save_pretrained(tmp_path / "cls")
    cfg = run_config(sava, tmp_path / "run", model={"init": str(tmp_path / "cls")}, schedule={"epochs": 1})
    from vidrec.train.setup import build_model

    lines = []
    model, _ = build_model(cfg, num_classes=13, log=lines.append)
    assert "new (re-initialised): head.projection.bias, head.projection.weight" in lines[0]
    assert "dropped (e.g. backbone.head.bias, backbone.head.weight)" in lines[0]
    torch.testing.assert_close(model.backbone.backbone[0].weight, classifier.backbone[0].weight)


def test_detection_config_errors(sava, tmp_path):
    with pytest.raises(ConfigError, match="task detection needs detection.videos"):
        config_from_dict({"task": "detection", "model": {"name": "tsn_small_ava"}})
    with pytest.raises(ConfigError, match="unknown task 'detect'"):
        config_from_dict({"task": "detect", "model": {"name": "tsn_small_ava"}})
    with pytest.raises(
        ConfigError, match="tsn_small is not an action detector: task detection needs a \\*_ava"
    ):
        train(run_config(sava, tmp_path / "a", model={"name": "tsn_small"}), progress=False)
    with pytest.raises(ConfigError, match="mixup / cutmix / label_smoothing are for classification"):
        run_config(sava, tmp_path / "b", augment={"mixup": 0.8})


def test_frame_folders_and_proposal_pickles(sava, tmp_path):
    """PySlowFast's layout (frames/VIDEO_ID/*.jpg at 30 fps) reads like the video; mmaction2's
    dense proposals (.pkl) give the same person boxes as the CSV they came from."""
    import pickle

    from PIL import Image

    from vidrec.io import read_video
    from vidrec.train.ava import read_person_boxes

    frames_dir = tmp_path / "frames" / "train_00000"
    frames_dir.mkdir(parents=True)
    for i, frame in enumerate(read_video(sava / "videos" / "train" / "train_00000.mp4")):
        Image.fromarray(frame).save(frames_dir / f"train_00000_{i + 1:06d}.png")
    videos = find_videos(str(tmp_path / "frames"))
    assert videos == {"train_00000": str(frames_dir)}
    gt = [r for r in read_boxes(sava / "train.csv") if r.video_id == "train_00000"]
    from_frames, _ = build_keyframes(gt, videos=videos, num_classes=13)
    from_video, _ = build_keyframes(gt, videos=find_videos(str(sava / "videos")), num_classes=13)
    a = KeyframeDataset(from_frames, prep=SYNTH_AVA_PREP, train=False, fps=10)[0]
    b = KeyframeDataset(from_video, prep=SYNTH_AVA_PREP, train=False)[0]
    torch.testing.assert_close(a["video"], b["video"])
    torch.testing.assert_close(a["boxes"], b["boxes"])

    rows = read_boxes(sava / "test_boxes.csv", kind="boxes")
    proposals = {}
    for r in rows:
        proposals.setdefault(r.key, []).append([*r.box, r.score])
    with open(tmp_path / "dense_proposals.pkl", "wb") as f:
        pickle.dump({k: np.array(v, dtype=np.float32) for k, v in proposals.items()}, f)
    again = read_person_boxes(str(tmp_path / "dense_proposals.pkl"))
    assert len(again) == len(rows)
    by_key = lambda boxes: sorted((r.key, *r.box, r.score) for r in boxes)  # noqa: E731
    assert [r[0] for r in by_key(again)] == [r[0] for r in by_key(rows)]
    np.testing.assert_allclose([r[1:] for r in by_key(again)], [r[1:] for r in by_key(rows)], atol=1e-6)


@pytest.mark.slow
def test_two_processes_train_and_score_detector_boxes_once(sava, tmp_path):
    """torchrun with 2 CPU processes (gloo): a detection run trains, scores the detector's test
    boxes (not the ground truth) once each, and its test mAP is what one process gets from the
    saved model."""
    import os
    import sys

    from helpers import run_checked, torchrun

    cfg = run_config(
        sava,
        tmp_path / "run",
        data={"batch_size": 2},
        detection={"test_boxes": str(sava / "test_boxes.csv"), "score_thresh": 0.5},
        run={"device": "cpu", "seed": 3},
    )
    (tmp_path / "cfg.yaml").write_text(cfg.to_yaml())
    run_checked([*torchrun(2, 29533), "-m", "vidrec", "train", str(tmp_path / "cfg.yaml"), "--quiet"])
    out = tmp_path / "run"
    report = json.loads((out / "test_report.json").read_text())
    rows = read_boxes(out / "detections.csv", kind="detections")
    person = [r for r in read_boxes(sava / "test_boxes.csv", kind="boxes") if r.score >= 0.5]
    rounded = lambda boxes: sorted((r.key, tuple(round(v, 4) for v in r.box)) for r in boxes)  # noqa: E731
    assert rounded(r for r in rows if r.action_id == 1) == rounded(person)
    assert len(rows) == 13 * len(person)  # every detector box once, every class, across both ranks
    assert not os.path.exists(out / "rank1")
    single = run_checked([sys.executable, "-m", "vidrec", "eval", str(tmp_path / "cfg.yaml"), "--json"])
    assert json.loads(single.stdout.strip().splitlines()[-1])["mAP"] == pytest.approx(report["mAP"], abs=1e-6)


@pytest.mark.slow
def test_a_detector_learns_synthmotion_ava_far_above_chance(tmp_path):
    """configs/fast_small_ava_synth.yaml (from the shipped fast_small.synthmotion), as `vidrec
    train` runs it, on a small SynthMotion-AVA: its test frame-mAP is far above what the same
    ground-truth boxes score with random actions (each class's AP is then about its share)."""
    import os

    from vidrec.data.ava import AvaBox, read_label_map
    from vidrec.train.config import load_config

    data = tmp_path / "sava"
    generate_ava_dataset(
        str(data),
        counts={"train": 120, "val": 10, "test": 20},
        cfg=SynthAvaConfig(),
        workers=2,
        progress=False,
    )
    config = os.path.join(os.path.dirname(__file__), "..", "configs", "fast_small_ava_synth.yaml")
    cfg = load_config(
        config,
        [f"data.train={data}", f"detection.videos={data / 'videos'}",
         f"detection.labels={data / 'labels.pbtxt'}", f"run.out={tmp_path / 'run'}",
         "run.tensorboard=false", "data.workers=0", "schedule.epochs=6"],
    )  # fmt: skip
    summary = train(cfg, progress=False)

    truth, labels = read_boxes(data / "test.csv"), read_label_map(data / "labels.pbtxt")
    rng = np.random.default_rng(0)
    boxes = {(r.video_id, r.sec, r.box) for r in truth}
    guesses = [AvaBox(v, s, b, lab.id, None, float(rng.random())) for v, s, b in boxes for lab in labels]
    chance = 100.0 * frame_map(truth, guesses, labels).mAP
    print(f"\ntest frame-mAP {summary['test_mAP']:.1f} against {chance:.1f} for random scores")
    assert summary["test_mAP"] >= chance + 30.0 and summary["test_mAP"] >= 2 * chance
