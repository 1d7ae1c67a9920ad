import os

import numpy as np
import pytest
import torch

import vidrec
from vidrec.cli import main
from vidrec.data.datasets import VideoClipDataset, VideoRecord
from vidrec.data.flow import dequantize, extract_flow, quantize, read_manifest, video_flow
from vidrec.data.preprocessing import Preprocessing
from vidrec.data.transforms import TrainTransform
from vidrec.utils import write_video

pytest.importorskip("cv2")


def moving_texture(path: str, *, dx: int, frames: int = 6, size: int = 64) -> str:
    """A smooth random texture sliding `dx` pixels to the right per frame."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (size // 8, (size + 48) // 8 + 2, 3)).astype(np.uint8)
    import cv2

    big = cv2.resize(coarse, (coarse.shape[1] * 8, coarse.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    video = np.stack([big[:, 40 - dx * t : 40 - dx * t + size] for t in range(frames)])
    write_video(path, np.ascontiguousarray(video), fps=10, crf=5)
    return path


def test_quantisation_round_trip():
    flow = np.array([-30.0, -20.0, -5.0, 0.0, 3.3, 20.0, 25.0], np.float32)
    q = quantize(flow)
    assert q.dtype == np.uint8 and q[0] == 0 and q[-1] == 255
    np.testing.assert_allclose(dequantize(q) * 20, np.clip(flow, -20, 20), atol=40 / 255)


@pytest.mark.parametrize("method", ["dis", "tvl1"])
def test_flow_measures_the_motion(tmp_path, method):
    path = moving_texture(str(tmp_path / "slide.mp4"), dx=2)
    flow = video_flow(path, method=method, short_side=64)
    assert flow.shape == (5, 64, 64, 2) and flow.dtype == np.uint8
    u, v = dequantize(flow[:, 16:48, 16:48]).mean(axis=(0, 1, 2)) * 20  # pixels per frame
    assert u == pytest.approx(2.0, abs=0.4) and abs(v) < 0.4


def test_extract_dataset_resumable_with_broken_video(tmp_path):
    good = [moving_texture(str(tmp_path / f"v{i}.mp4"), dx=1 + i) for i in range(2)]
    (tmp_path / "broken.mp4").write_text("nope")
    records = [VideoRecord(good[0], 0), VideoRecord(str(tmp_path / "broken.mp4"), 1), VideoRecord(good[1], 1)]
    out = str(tmp_path / "flow")
    result = extract_flow(records, out, classes=["a", "b"], method="dis", short_side=64, progress=False)
    assert (result["made"], result["failed"]) == (2, 1) and "broken.mp4" in result["failed_videos"][0][0]
    again = extract_flow(
        records, out, classes=["a", "b"], method="dis", short_side=64, workers=2, progress=False
    )
    assert (again["made"], again["kept"]) == (0, 2)
    flows, classes = read_manifest(os.path.join(out, "manifest.csv"))
    assert classes == ["a", "b"] and [r.label for r in flows] == [0, 1]

    model = vidrec.create_model("i3d_inception_flow", num_classes=2)
    prep = Preprocessing(
        num_frames=4,
        sampling_rate=1,
        resize=64,
        crop_size=56,
        mean=(0.5, 0.5),
        std=(0.5, 0.5),
        modality="flow",
    )
    ds = VideoClipDataset(flows, prep=prep, train=True)
    clip = ds[1]["video"]
    assert clip.shape == (2, 4, 56, 56) and clip.min() >= -1 and clip.max() <= 1
    assert clip[0].mean() * 20 == pytest.approx(2.0, abs=0.5) or clip[0].mean() * 20 == pytest.approx(
        -2.0, abs=0.5
    )
    views = VideoClipDataset(flows, prep=prep, train=False, num_clips=2)[0]["video"]
    assert views.shape == (2, 2, 4, 56, 56)
    with torch.no_grad():
        assert model.eval()(views).shape == (2, 2)


def test_flip_negates_horizontal_flow():
    q = np.full((3, 8, 8, 2), quantize(np.array([5.0, -3.0], np.float32)), np.uint8)  # u=+5, v=-3
    clip = torch.from_numpy(q).permute(3, 0, 1, 2)
    prep = Preprocessing(
        num_frames=3, resize=8, crop_size=8, mean=(0.5, 0.5), std=(0.5, 0.5), modality="flow"
    )
    flipped = [TrainTransform(prep)(clip, np.random.default_rng(s)) for s in range(8)]
    us = {round(float(f[0].mean()) * 20) for f in flipped}
    assert us == {5, -5}  # some seeds flip, some do not
    assert all(round(float(f[1].mean()) * 20) == -3 for f in flipped)  # y flow unchanged


def test_flow_cli(tmp_path, capsys):
    video = moving_texture(str(tmp_path / "one.mp4"), dx=1)
    assert (
        main(
            [
                "flow",
                video,
                "--out",
                str(tmp_path / "f"),
                "--method",
                "dis",
                "--short-side",
                "64",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "1 computed" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "f" / "flow")) == 1


def test_train_flow_stream_on_a_manifest(tmp_path):
    videos = [moving_texture(str(tmp_path / f"v{i}.mp4"), dx=1 + (i % 2), frames=10) for i in range(4)]
    records = [VideoRecord(p, i % 2) for i, p in enumerate(videos)]
    extract_flow(
        records, str(tmp_path / "flow"), classes=["slow", "fast"], method="dis", short_side=64, progress=False
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "flow" / "manifest.csv"),
                "--model",
                "i3d_inception_flow",
                "--out",
                str(tmp_path / "m"),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--workers",
                "0",
                "--num-frames",
                "8",
                "--sampling-rate",
                "1",
                "--resize",
                "64",
                "--crop-size",
                "56",
                "--quiet",
            ]
        )
        == 0
    )
    model = vidrec.load_model(tmp_path / "m")
    assert model.preprocessing.modality == "flow" and model.labels == ["slow", "fast"]
