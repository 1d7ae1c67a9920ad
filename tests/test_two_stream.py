import json
import os

import pytest
import torch

import vidrec
from vidrec.cli import main
from vidrec.data.datasets import VideoRecord
from vidrec.data.flow import extract_flow
from vidrec.data.preprocessing import Preprocessing
from vidrec.models.two_stream import TwoStream
from vidrec.recognize.evaluate import eval_dataset, evaluate

from conftest import write_numbered

pytest.importorskip("cv2")


def tiny_two_stream(weights=(0.5, 0.5)) -> TwoStream:
    torch.manual_seed(0)
    rgb = vidrec.create_model("i3d_inception_rgb", num_classes=3)
    flow = vidrec.create_model("i3d_inception_flow", num_classes=3)
    rgb.preprocessing = Preprocessing(
        num_frames=8, sampling_rate=1, resize=64, crop_size=56, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    flow.preprocessing = Preprocessing(
        num_frames=8,
        sampling_rate=1,
        resize=64,
        crop_size=56,
        mean=(0.5,) * 2,
        std=(0.5,) * 2,
        modality="flow",
    )
    for m in (rgb, flow):
        m.set_labels(["a", "b", "c"])
    return TwoStream(rgb, flow, weights=weights, flow_method="dis", flow_short_side=64).eval()


@pytest.mark.slow
def test_late_fusion_is_the_weighted_average(tmp_path):
    video = write_numbered(str(tmp_path / "v.mp4"), 20, width=96, height=64)
    model = tiny_two_stream(weights=(2, 1))
    assert model.weights == pytest.approx((2 / 3, 1 / 3))
    dataset = eval_dataset(model, [], num_clips=2)
    rgb_views, flow_views = dataset.load(video, rng=None)
    assert rgb_views.shape == (2, 3, 8, 56, 56) and flow_views.shape == (2, 2, 8, 56, 56)
    with torch.no_grad():
        p_rgb = model.rgb(rgb_views).softmax(-1).mean(0)
        p_flow = model.flow(flow_views).softmax(-1).mean(0)
    fused = vidrec.predict(model, video, top_k=3, num_clips=2)
    expected = (2 / 3) * p_rgb + (1 / 3) * p_flow
    got = {p["label"]: p["score"] for p in fused["predictions"]}
    for i, name in enumerate(["a", "b", "c"]):
        assert got[name] == pytest.approx(expected[i].item(), abs=1e-5)


@pytest.mark.slow
def test_save_load_eval_and_precomputed_flow(tmp_path, capsys):
    videos = [write_numbered(str(tmp_path / f"v{i}.mp4"), 16, width=96, height=64) for i in range(3)]
    records = [VideoRecord(p, i) for i, p in enumerate(videos)]
    model = tiny_two_stream()
    model.save_pretrained(tmp_path / "ts")
    assert json.loads((tmp_path / "ts" / "config.json").read_text())["architecture"] == "two_stream"
    loaded = vidrec.load_model(tmp_path / "ts")
    assert isinstance(loaded, TwoStream) and loaded.labels == ["a", "b", "c"]
    on_the_fly = evaluate(loaded, records, num_clips=1, batch_size=2, progress=False)
    assert on_the_fly["num_videos"] == 3
    extract_flow(records, str(tmp_path / "flow"), method="dis", short_side=64, progress=False)
    stored = evaluate(
        loaded, records, num_clips=1, batch_size=2, progress=False, flow_dir=str(tmp_path / "flow")
    )
    assert stored["top1"] == on_the_fly["top1"]  # the same flow, read back instead of recomputed
    (tmp_path / "list.csv").write_text("\n".join(f"{p},{'abc'[i]}" for i, p in enumerate(videos)) + "\n")
    assert (
        main(["eval", str(tmp_path / "ts"), "--data", str(tmp_path / "list.csv"), "--json", "--workers", "0"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["num_videos"] == 3
    assert (
        main(
            [
                "predict",
                videos[0],
                "--model",
                str(tmp_path / "ts"),
                "--num-clips",
                "1",
                "--json",
                "--flow-dir",
                str(tmp_path / "flow"),
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 3


def test_two_stream_cli_and_mismatch(tmp_path):
    model = tiny_two_stream()
    model.rgb.save_pretrained(tmp_path / "rgb")
    model.flow.save_pretrained(tmp_path / "flow")
    assert (
        main(
            [
                "two-stream",
                "--rgb",
                str(tmp_path / "rgb"),
                "--flow",
                str(tmp_path / "flow"),
                "--out",
                str(tmp_path / "ts"),
                "--weights",
                "1",
                "3",
            ]
        )
        == 0
    )
    assert vidrec.load_model(tmp_path / "ts").weights == pytest.approx((0.25, 0.75))
    other = vidrec.create_model("i3d_inception_flow", num_classes=4)
    with pytest.raises(vidrec.errors.ConfigError, match="classes"):
        TwoStream(model.rgb, other)
    assert os.path.exists(tmp_path / "ts" / "rgb" / "model.safetensors")
