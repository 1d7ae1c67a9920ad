"""Something-Something V2 and Kinetics-700 as released: their annotation layouts, SSv2's
segment sampling, flips that follow direction labels, and tiny datasets in each layout trained
through the shipped recipes."""

import json
import os

import av
import numpy as np
import pytest
import torch

from vidrec.data.datasets import VideoClipDataset, load_annotations
from vidrec.data.mirror import mirror_labels, mirrored_names
from vidrec.data.preprocessing import Preprocessing
from vidrec.data.sampling import ClipSampling, random_clip_indices, uniform_clip_indices
from vidrec.train.config import load_config
from vidrec.train.setup import load_splits
from vidrec.utils import write_video

from conftest import run_vidrec

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
TEMPLATES = [  # labels.json's order is not alphabetical: the index is what counts
    "Pushing something from right to left",
    "Holding something",
    "Pushing something from left to right",
    "Turning the camera left while filming something",  # its mirror is not a class: never flipped
]


def _webm(path: str, frames: np.ndarray, fps: int = 12) -> None:
    with av.open(path, "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _motion(kind: int, n: int, rng) -> np.ndarray:
    """32x32 frames: a bright square pushed right (2) or left (0), held still (1), or a dark bar
    at the left edge with the view panning (3)."""
    frames = np.full((n, 32, 32, 3), 90, np.uint8) + rng.integers(0, 20, (n, 32, 32, 3), dtype=np.uint8)
    for t in range(n):
        x = {0: 22 - round(20 * t / (n - 1)), 1: 12, 2: round(20 * t / (n - 1)), 3: 12}[kind]
        frames[t, 12:20, x : x + 8] = 250
        if kind == 3:
            frames[t, :, :10] = 0
    return frames


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory) -> str:
    """SSv2 as released: labels.json, train.json, validation.json, test.json (ids only), videos
    20bn-something-something-v2/ID.webm of 12 to 30 frames."""
    root = tmp_path_factory.mktemp("ssv2")
    (root / "20bn-something-something-v2").mkdir()
    rng = np.random.default_rng(0)
    splits = {"train": [], "validation": []}
    for i in range(40):
        kind = i % 4
        _webm(
            str(root / "20bn-something-something-v2" / f"{1000 + i}.webm"),
            _motion(kind, int(rng.integers(12, 31)), rng),
        )
        template = TEMPLATES[kind].replace("something", "[something]")
        item = {
            "id": str(1000 + i),
            "label": template.replace("[something]", "a cup"),
            "template": template,
            "placeholders": ["a cup"],
        }
        splits["train" if i < 32 else "validation"].append(item)
    (root / "labels.json").write_text(json.dumps({t: str(k) for k, t in enumerate(TEMPLATES)}))
    for name, items in splits.items():
        (root / f"{name}.json").write_text(json.dumps(items))
    (root / "test.json").write_text(json.dumps([{"id": "1039"}]))
    return str(root)


@pytest.fixture(scope="module")
def kinetics700(tmp_path_factory) -> str:
    """Kinetics-700 as released: train.csv / validate.csv (label,youtube_id,time_start,time_end,
    split), test.csv without labels, videos as SPLIT/LABEL/YOUTUBEID_START_END.mp4 beneath; one
    listed video is gone from YouTube."""
    root = tmp_path_factory.mktemp("k700")
    rng = np.random.default_rng(1)
    header = "label,youtube_id,time_start,time_end,split"
    rows = {"train": [header], "validate": [header], "test": ["youtube_id,time_start,time_end,split"]}
    for i in range(26):
        label = ["abseiling", "zumba"][i % 2]
        split = "train" if i < 18 else "validate" if i < 24 else "test"
        youtube_id, start = f"yt{i:03d}-_x", 10 * i
        frames = rng.integers(60, 196, (8, 32, 32, 3)).astype(np.uint8)
        frames[:, 8:24, 8:24] = 250 if label == "zumba" else 5
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        write_video(str(folder / f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"), frames, fps=8)
        fields = [youtube_id, str(start), str(start + 10), split]
        rows[split].append(",".join(fields if split == "test" else [label, *fields]))
    rows["train"].append("zumba,gone_from_youtube,0,10,train")
    for name, lines in rows.items():
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return str(root)


def test_ssv2_layout_loads_as_released(ssv2, capsys):
    cfg = load_config(os.path.join(CONFIGS, "videomae_s_ssv2.yaml"), [f"data.train={ssv2}"])
    train, val, test, classes = load_splits(cfg)
    assert classes == TEMPLATES
    assert (len(train), len(val), test) == (32, 8, None)  # test.json has no labels: not a test split
    assert train[5].path == os.path.join(ssv2, "20bn-something-something-v2", "1005.webm")
    assert [r.label for r in train[:4]] == [0, 1, 2, 3]
    # a model's labels in another order: the split's labels are read against them
    records, _ = load_annotations(os.path.join(ssv2, "validation.json"), classes=TEMPLATES[::-1])
    assert [r.label for r in records[:4]] == [3, 2, 1, 0]
    unlabelled, _ = load_annotations(os.path.join(ssv2, "test.json"))
    assert [r.label for r in unlabelled] == [-1]


def test_kinetics_csv_as_released(kinetics700, capsys):
    cfg = load_config(os.path.join(CONFIGS, "slowfast_r50_8x8_k700.yaml"), [f"data.train={kinetics700}"])
    train, val, test, classes = load_splits(cfg)
    assert classes == ["abseiling", "zumba"]
    assert (len(train), len(val), test) == (18, 6, None)  # test.csv has no labels
    assert train[1].path == os.path.join(kinetics700, "train", "zumba", "yt001-_x_000010_000020.mp4")
    assert [r.label for r in train[:4]] == [0, 1, 0, 1]
    assert "1 of 19 videos are not under" in capsys.readouterr().err
    moved = load_annotations(
        os.path.join(kinetics700, "validate.csv"), videos=os.path.join(kinetics700, "validate")
    )
    assert len(moved[0]) == 6


def test_segments_take_each_part_of_the_video():
    """SSv2 sampling: a frame from each sixteenth; VideoMAE's two test clips take each part's
    first frame and its middle one, a single test clip the middles."""
    s = ClipSampling(num_frames=16, mode="segments")
    for n in (10, 16, 47, 120):
        tick = n / 16
        two = uniform_clip_indices(n, s, num_clips=2)
        assert two.tolist() == [
            [int(tick * x) for x in range(16)],
            [int(tick / 2 + tick * x) for x in range(16)],
        ]
        assert uniform_clip_indices(n, s, num_clips=1).tolist() == [
            [int(tick * (x + 0.5)) for x in range(16)]
        ]
        for seed in range(20):
            idx = random_clip_indices(n, s, rng=np.random.default_rng(seed))
            assert all(
                int(tick * x) <= i <= max(int(tick * x), int(np.ceil(tick * (x + 1))) - 1)
                for x, i in enumerate(idx)
            )
    with pytest.raises(Exception, match="frame sampling"):
        ClipSampling(mode="dense")


def _square_starts_left(clip: torch.Tensor) -> bool:
    first = clip[:, 0].mean(0)  # (H, W) of the first frame
    columns = first.mean(0)
    return bool(columns[: len(columns) // 2].mean() > columns[len(columns) // 2 :].mean())


def test_flips_follow_direction_labels(ssv2):
    """Every training clip agrees with its label after flipping: a push labelled "left to right"
    starts on the left; the unpaired camera turn is never mirrored."""
    records, classes = load_annotations(os.path.join(ssv2, "train.json"))
    prep = Preprocessing(
        num_frames=4,
        resize=32,
        crop_size=32,
        frame_sampling="segments",
        flip=True,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    ds = VideoClipDataset(records, prep=prep, train=True, mirror=mirror_labels(classes))
    swapped = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i, record in enumerate(records):
            item = ds[i]
            clip, label = item["video"], item["label"]
            if record.label in (0, 2):
                assert label in (0, 2)
                swapped += label != record.label
                assert _square_starts_left(clip) == (label == 2)
            elif record.label == 3:
                assert label == 3  # the dark bar stays on the left
                assert clip[:, :, :, 0].mean() < clip[:, :, :, -1].mean() - 0.2
            else:
                assert label == 1
    assert 0 < swapped < 48  # both ways, at random


def _train_tiny(config: str, data: str, out, settings: list[str]):
    """`vidrec train configs/CONFIG` on `data` from scratch, shrunk by `settings` (`--set`s)."""
    base = [
        f"data.train={data}",
        f"run.out={out}",
        "model.init=null",
        "data.batch_size=4",
        "data.workers=0",
        "run.precision=fp32",
        "run.device=cpu",
        "run.tensorboard=false",
        "schedule.warmup_epochs=0",
        "eval.batch_size=4",
    ]
    sets = [a for v in [*base, *settings] for a in ("--set", v)]
    proc = run_vidrec("train", os.path.join(CONFIGS, config), "--quiet", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return proc, rows


# ViT-S/B and SlowFast R50 shrunk to seconds on 32 px clips
_SMALL_VIT = [
    "dim=32",
    "depth=1",
    "num_heads=2",
    "mlp_dim=64",
    "data.num_frames=4",
    "data.resize=32",
    "data.crop_size=32",
]
_SMALL_SLOWFAST = [
    "width=8",
    "stage_depths=[1, 1, 1, 1]",
    "data.num_frames=8",
    "data.resize=32",
    "data.crop_size=32",
    "data.test_crop_size=32",
]


def test_videomae_ssv2_recipe_trains_on_the_released_layout(ssv2, tmp_path):
    proc, rows = _train_tiny(
        "videomae_s_ssv2.yaml", ssv2, tmp_path / "run", [*_SMALL_VIT, "schedule.epochs=2"]
    )
    flips = "flip: 2 classes swap with their mirrored class; 1 name a direction without one"
    assert flips in proc.stderr + proc.stdout
    epochs = [r for r in rows if "val_top1" in r]
    assert len(epochs) == 2 and all(0 <= r["val_top1"] <= 100 for r in epochs)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["labels"] == TEMPLATES and saved["preprocessing"]["frame_sampling"] == "segments"


@pytest.mark.slow
def test_slowfast_ssv2_recipe_trains_with_stepped_lr(ssv2, tmp_path):
    """PySlowFast's SSv2 recipe: 64 segments (8 here), lr x0.1 at each step epoch (1 here)."""
    extra = [*_SMALL_SLOWFAST, "schedule.epochs=2", "schedule.steps=[1]", "schedule.lrs=[0.1]"]
    _, rows = _train_tiny("slowfast_r50_ssv2.yaml", ssv2, tmp_path / "run", extra)
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    per_epoch = 8  # 32 videos, batches of 4
    assert all(lr == pytest.approx(0.03) for step, lr in lrs.items() if step <= per_epoch)
    assert all(lr == pytest.approx(0.003) for step, lr in lrs.items() if step > per_epoch + 1)
    assert len([r for r in rows if "val_top1" in r]) == 2


@pytest.mark.slow
def test_kinetics700_recipes_train_on_the_released_layout(kinetics700, tmp_path):
    for config, extra in (
        ("slowfast_r50_8x8_k700.yaml", _SMALL_SLOWFAST),
        ("videomae_b_ft_k700.yaml", _SMALL_VIT),
    ):
        out = tmp_path / config
        proc, rows = _train_tiny(config, kinetics700, out, [*extra, "schedule.epochs=1"])
        assert "1 of 19 videos are not under" in proc.stderr
        assert [r for r in rows if "val_top1" in r]
        assert json.loads((out / "config.json").read_text())["labels"] == ["abseiling", "zumba"]


def test_mirrored_labels():
    classes = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "move left",
        "move right",
        "rotate clockwise",
        "rotate counter-clockwise",
        "Turning the camera left while filming something",
        "bright flash",  # "right" inside a word is no direction
        "Putting something on something",
        "spin anticlockwise",
    ]
    assert mirror_labels(classes) == [1, 0, 3, 2, 5, 4, None, 7, 8, None]
    assert mirrored_names("Spin Clockwise")[:2] == ["Spin Counterclockwise", "Spin Anticlockwise"]
    assert mirrored_names("LEFT hand raise") == ["RIGHT hand raise"]
