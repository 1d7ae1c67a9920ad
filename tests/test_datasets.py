import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidrec.data.datasets import VideoClipDataset, collate_clips, load_annotations, load_csv, load_ssv2
from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError
from vidrec.io import read_frames

from conftest import numbered_frame, read_number, write_numbered

PREP = Preprocessing(
    num_frames=4, sampling_rate=2, resize=64, crop_size=64, flip=False, mean=(0, 0, 0), std=(1, 1, 1)
)


@pytest.fixture
def videos(tmp_path):
    for name in ("a", "b", "c"):
        write_numbered(str(tmp_path / f"{name}.mp4"), 30)
    (tmp_path / "broken.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    return tmp_path


def test_csv_with_names_indices_and_classes_file(videos):
    (videos / "list.csv").write_text("path,label\na.mp4,jump\nb.mp4,run\nc.mp4,jump\n")
    records, classes = load_csv(str(videos / "list.csv"))
    assert classes == ["jump", "run"] and [r.label for r in records] == [0, 1, 0]
    assert records[0].path == str(videos / "a.mp4")
    (videos / "idx.txt").write_text("a.mp4 2\nb.mp4 0\n")  # MMAction2-style list
    records, classes = load_csv(str(videos / "idx.txt"))
    assert [r.label for r in records] == [2, 0] and classes == ["0", "1", "2"]
    (videos / "classes.txt").write_text("run\njump\n")
    records, classes = load_csv(str(videos / "list.csv"))
    assert classes == ["run", "jump"] and [r.label for r in records] == [1, 0, 1]
    (videos / "bad.csv").write_text("a.mp4,swim\n")
    with pytest.raises(ConfigError, match="unknown label 'swim'"):
        load_csv(str(videos / "bad.csv"))


def test_folder_per_class_with_frame_folders(tmp_path):
    from PIL import Image

    (tmp_path / "run").mkdir()
    (tmp_path / "walk" / "clip1").mkdir(parents=True)
    write_numbered(str(tmp_path / "run" / "x.mp4"), 10)
    for i in range(10):
        Image.fromarray(numbered_frame(i, 96, 64)).save(tmp_path / "walk" / "clip1" / f"{i:05d}.png")
    records, classes = load_annotations(str(tmp_path))
    assert classes == ["run", "walk"] and [r.label for r in records] == [0, 1]
    ds = VideoClipDataset(records, prep=PREP, train=False, num_clips=2)
    for i in range(2):
        views = ds[i]["video"]
        assert views.shape == (2, 3, 4, 64, 64)


def test_ssv2_format(tmp_path):
    labels = {"Putting something on something": "1", "Pushing something from left to right": "0"}
    split = [
        {"id": "42", "template": "Putting [something] on [something]", "label": "putting a cup on a box"},
        {"id": "7", "template": "Pushing [something] from left to right", "label": "pushing a pen"},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "train.json").write_text(json.dumps(split))
    records, classes = load_ssv2(
        str(tmp_path / "labels.json"), str(tmp_path / "train.json"), str(tmp_path / "v")
    )
    assert classes == ["Pushing something from left to right", "Putting something on something"]
    assert [(os.path.basename(r.path), r.label) for r in records] == [("42.webm", 1), ("7.webm", 0)]


def test_eval_views_are_exact_frames(videos):
    records, _ = load_csv_from(videos, ["a.mp4,0"])
    ds = VideoClipDataset(records, prep=PREP, train=False, num_clips=3, num_crops=3)
    views = ds[0]["video"]
    assert views.shape == (9, 3, 4, 64, 64)
    # Clip 0, view 1 (centre crop) is frames 0, 2, 4, 6 (stride 2) of the video, centre-cropped.
    frames = (views[1].permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy()
    source = read_frames(records[0].path, [0, 2, 4, 6])
    assert [read_number(f) for f in source] == [0, 2, 4, 6]
    np.testing.assert_array_equal(frames, source[:, :, 16:80])
    # Clip 2 ends on the last frame (29); view 3 of that clip is its right crop.
    last = (views[8].permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(last, read_frames(records[0].path, [23, 25, 27, 29])[:, :, 32:])


def load_csv_from(root, rows):
    (root / "l.csv").write_text("\n".join(rows) + "\n")
    return load_csv(str(root / "l.csv"))


def test_broken_videos_are_skipped_counted_and_reported(videos):
    records, _ = load_csv_from(
        videos, ["a.mp4,0", "broken.mp4,1", "b.mp4,1", "empty.mp4,0", "missing.mp4,0", "c.mp4,0"]
    )
    ds = VideoClipDataset(records, prep=PREP, train=True)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_clips)
    seen, failed = 0, []
    for batch in loader:
        failed += batch["failed"]
        if batch["video"] is not None:
            assert batch["video"].shape[1:] == (3, 4, 64, 64)
            seen += len(batch["label"])
    assert seen == 3
    assert sorted(os.path.basename(f.path) for f in failed) == ["broken.mp4", "empty.mp4", "missing.mp4"]
    assert all("\n" not in f.reason for f in failed)


def test_training_clips_change_with_epoch_and_repeat_with_seed(videos):
    records, _ = load_csv_from(videos, ["a.mp4,0"])
    ds = VideoClipDataset(records, prep=PREP, train=True, seed=1)
    a = ds[0]["video"]
    assert torch.equal(a, ds[0]["video"])
    starts = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        frame = (ds[0]["video"][:, 0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        starts.add(frame.mean())
    assert len(starts) > 1
