"""The SSD MobileNet v1 person/object detector: anchors, decoding, NMS, and the import of the
TFLite example's uint8 file checked against the TFLite runtime on real frames."""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidrec
from vidrec.cli import main
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.ssd import anchor_boxes, ssd_mobilenet_v1

from conftest import MOVINET_DIR, SSD_DIR


def test_anchors_are_the_object_detection_apis():
    model = ssd_mobilenet_v1()
    assert model.map_sizes() == [19, 10, 5, 3, 2, 1]
    anchors = model.anchors
    assert anchors.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    c = 0.5 / 19  # first cell's centre; its 3 boxes: 0.1 square, then scale 0.2 at 2:1 and 1:2
    expected = [[c, c, 0.1, 0.1], [c, c, 0.2 / math.sqrt(2), 0.2 * math.sqrt(2)]]
    expected += [[c, c, 0.2 * math.sqrt(2), 0.2 / math.sqrt(2)]]
    torch.testing.assert_close(anchors[:3], torch.tensor(expected))
    last = anchors[-6:]  # the 1x1 map: scale 0.95, five ratios, then sqrt(0.95 * 1.0) square
    assert torch.allclose(last[:, :2], torch.tensor(0.5)) and last[0, 2] == pytest.approx(0.95)
    assert last[-1, 2] == pytest.approx(math.sqrt(0.95)) == last[-1, 3]
    assert len(anchor_boxes(model.config, [2, 1])) == 2 * 2 * 3 + 6


def test_decoding_and_nms():
    torch.manual_seed(0)
    model = ssd_mobilenet_v1(depth_multiplier=0.25, max_detections=3).eval()
    zero = torch.zeros(1917, 4)
    a = model.anchors
    torch.testing.assert_close(
        model.decode(zero),
        torch.stack(
            [a[:, 1] - a[:, 3] / 2, a[:, 0] - a[:, 2] / 2, a[:, 1] + a[:, 3] / 2, a[:, 0] + a[:, 2] / 2], -1
        ),
    )
    shifted = model.decode(torch.tensor([[10.0, 0.0, 5.0, 0.0]]).expand(1917, 4))
    torch.testing.assert_close(
        (shifted[:, 1] + shifted[:, 3]) / 2, a[:, 0] + a[:, 2]
    )  # ty = y_scale: one height down
    torch.testing.assert_close(
        shifted[:, 3] - shifted[:, 1], a[:, 2] * math.e
    )  # th = h_scale: e times taller

    # Two anchors of the first cell made to decode to one box, scored as person and chair: the fast
    # path keeps the better one only, per-class NMS keeps both; five people far apart are capped
    # at max_detections.
    encodings = torch.zeros(1, 1917, 4)
    encodings[0, 2, 2:] = 5 * torch.log(a[0, 2:] / a[2, 2:])  # anchor 2 resized onto anchor 0
    logits = torch.full((1, 1917, 91), -20.0)
    logits[0, 0, 1], logits[0, 2, 62] = 3.0, 2.0  # class ids 1 (person) and 62 (chair), background 0
    model.forward = lambda x: (encodings, logits)
    image = torch.zeros(1, 3, 300, 300)
    (fast,) = model.detect(image)
    assert fast["classes"].tolist() == [0] and fast["scores"][0] == pytest.approx(0.9526, abs=1e-4)
    (both,) = model.detect(image, per_class=True)
    assert both["classes"].tolist() == [0, 61]
    logits[0, [30, 60, 90, 120, 150], 1] = 1.0
    (capped,) = model.detect(image)
    assert len(capped["scores"]) == 3 and capped["scores"][0] == pytest.approx(0.9526, abs=1e-4)


def test_frames_become_the_input_square_within_one_level_of_a_float_resize():
    """`images` resizes each whole frame to the square input on uint8 (antialiased bilinear, as
    torchvision resizes uint8 images): within one uint8 level of the same resize in float, then
    on the file's input grid [-1, 1]."""
    model = ssd_mobilenet_v1(depth_multiplier=0.25, image_size=64)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((48, 80), (200, 120), (64, 64))]
    x = model.postprocess.images(frames)
    assert x.shape == (3, 3, 64, 64) and x.min() >= -1 and x.max() <= 127 / 128
    for f, got in zip(frames, x):
        image = torch.from_numpy(f).permute(2, 0, 1)[None].float()
        want = F.interpolate(image, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        gap = (got * 128 + 128 - want[0].round().clamp(0, 255)).abs()
        assert gap.max() <= 1 and gap.mean() < 0.5
    assert torch.equal(
        x[2] * 128 + 128, torch.from_numpy(frames[2]).permute(2, 0, 1).float()
    )  # already square


def test_bad_inputs_are_clear_errors():
    model = ssd_mobilenet_v1(depth_multiplier=0.25)
    with pytest.raises(ConfigError, match=r"expects images \(B, 3, 300, 300\)"):
        model(torch.zeros(1, 3, 8, 300, 300))
    with pytest.raises(ConfigError, match="uint8 frames"):
        model.detect_frames(torch.zeros(2, 300, 300, 3))


def test_a_saved_detector_loads_back(tmp_path):
    """`vidrec convert ssd.tflite DIR` writes a directory that loads (and `--detector DIR` takes):
    the SSD is built by name although `list_models` lists only the video architectures."""
    torch.manual_seed(0)
    model = ssd_mobilenet_v1(depth_multiplier=0.25, image_size=96).eval()
    model.save_pretrained(tmp_path / "ssd")
    again = vidrec.load_model(tmp_path / "ssd").eval()
    images = torch.rand(2, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(images), again(images)))
    assert "ssd_mobilenet_v1" not in vidrec.list_models()


def _runtime(path: str):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    runtime = litert.Interpreter(model_path=path, num_threads=2, experimental_preserve_all_tensors=True)
    runtime.allocate_tensors()
    return runtime


def _frames(shared_videos) -> list[torch.Tensor]:
    """Real frames at the detector's input: the whole frame resized to 300x300 uint8."""
    from vidrec.io import read_video

    out = []
    for name, index in (
        ("arm_wrestling.mp4", 10),
        ("arm_wrestling.mp4", 140),
        ("flipping_a_pancake.mkv", 155),
    ):
        frame = torch.from_numpy(np.asarray(read_video(os.path.join(shared_videos, name))[index]))
        x = frame.permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(300, 300), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round().clamp(0, 255).to(torch.uint8))  # (1, 3, 300, 300)
    return out


@pytest.mark.slow
def test_tflite_import_matches_the_runtime(ssd_tflite, shared_videos):
    """Every anchor's scores and decoded box against the runtime's own tensors before its NMS, and
    the detections after it."""
    from vidrec.deploy import on_uint8_grids

    runtime = _runtime(ssd_tflite)
    tensors = {d["name"]: d for d in runtime.get_tensor_details()}

    def dequantized(name: str) -> torch.Tensor:
        d = tensors[name]
        scale, zero = d["quantization"]
        return torch.from_numpy((runtime.get_tensor(d["index"]).astype(np.float32) - zero) * scale)

    model = vidrec.load_model(ssd_tflite)
    assert sum(p.numel() for p in model.parameters()) == 4_101_231 and model.labels[0] == "person"
    gridded = on_uint8_grids(model)
    worst = {"float": [0.0, 0.0], "grid": [0.0, 0.0]}
    for image in _frames(shared_videos):
        runtime.set_tensor(runtime.get_input_details()[0]["index"], image.permute(0, 2, 3, 1).numpy())
        runtime.invoke()
        scores, encodings = dequantized("convert_scores"), dequantized("Squeeze")
        confident = scores[0, :, 1:].max(-1).values > 0.3
        boxes = model.decode(encodings)[0][confident] * 300
        for name, m in (("float", model), ("grid", gridded)):
            with torch.no_grad():
                ours, logits = m((image.float() - 128) / 128)
            score_err = (torch.sigmoid(logits) - scores).abs().max().item()
            box_err = (model.decode(ours)[0][confident] * 300 - boxes).abs().max().item()
            worst[name] = [max(worst[name][0], score_err), max(worst[name][1], box_err)]
        outputs = [runtime.get_tensor(o["index"]) for o in runtime.get_output_details()]
        best = int(np.argmax(np.where(outputs[1][0] == 0, outputs[2][0], -1)))  # the runtime's top person
        (found,) = gridded.detect((image.float() - 128) / 128)
        expected = torch.from_numpy(outputs[0][0, best, [1, 0, 3, 2]]) * 300  # (ymin, xmin, ...) -> x1 y1
        person = found["classes"] == 0
        assert (found["boxes"][person][0] * 300 - expected).abs().max() <= 2.0
        assert found["scores"][person][0].item() == pytest.approx(float(outputs[2][0, best]), abs=0.02)
    print(f"SSD vs TFLite runtime, all anchors (score, box px at 300): {worst}")
    assert worst["grid"][0] <= 0.02 and worst["grid"][1] <= 4.0  # the README's bounds
    assert worst["float"][0] <= 0.035 and worst["float"][1] <= 3.5


def test_weights_from_several_folders(monkeypatch, tmp_path, capsys):
    """VIDREC_WEIGHTS may name several folders (os.pathsep): the detector and MoViNet sit apart."""
    from vidrec.models.download import fetch_weights
    from vidrec.models.weights import get_weights

    for folder in (SSD_DIR, MOVINET_DIR):
        if not os.path.isdir(folder):
            pytest.skip(f"{folder} not found")
    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIDREC_WEIGHTS", os.pathsep.join([str(tmp_path / "none"), MOVINET_DIR, SSD_DIR]))
    assert fetch_weights(get_weights("ssd_mobilenet_v1.coco_uint8")).startswith(SSD_DIR)
    assert fetch_weights(get_weights("movinet_a0_stream.k600_int8")).startswith(MOVINET_DIR)
    detector = vidrec.load_model("ssd_mobilenet_v1.coco_uint8")
    assert detector.quant_grids and detector.config.max_detections == 10
    video = os.path.join(os.path.dirname(SSD_DIR), "..", "videos", "arm_wrestling.mp4")
    assert main(["predict", video, "--model", "ssd_mobilenet_v1.coco_uint8"]) == 2
    err = capsys.readouterr().err
    assert "finds people and objects in frames" in err and err.count("\n") == 1


def test_a_movinet_file_is_not_an_ssd(movinet_tflite):
    from vidrec.models.convert.tflite_ssd import is_tflite_ssd, load_tflite_ssd

    assert not is_tflite_ssd(movinet_tflite)
    with pytest.raises(VidrecError, match="not an SSD detector"):
        load_tflite_ssd(movinet_tflite)


def test_the_shipped_file_runs_in_the_tflite_runtime_as_a_detector(ssd_tflite, shared_videos):
    """`--backend litert` runs the official uint8 file as shipped (read before its post-processing
    op, decoded by vidrec's): no PyTorch weights, and the people of vidrec on the file's uint8
    grids (scores within 0.025, boxes within 4 px of 300: the bounds above)."""
    pytest.importorskip("ai_edge_litert.interpreter")
    from vidrec.deploy import on_uint8_grids
    from vidrec.runtime import on_litert

    model = vidrec.load_model(ssd_tflite)
    shipped = on_litert(model)
    assert shipped.backend == "litert" and not list(shipped.parameters())
    gridded = on_uint8_grids(model)
    frames = [f[0].permute(1, 2, 0).numpy() for f in _frames(shared_videos)]
    ours = gridded.detect_frames(frames, only=0, max_detections=100, min_score=0.4)
    theirs = shipped.detect_frames(frames, only=0, max_detections=100, min_score=0.4)
    for a, b in zip(ours, theirs):
        assert len(b["scores"]) > 0 and (b["classes"] == 0).all()
        for box, score in zip(a["boxes"][a["scores"] >= 0.5], a["scores"]):  # each clear person ...
            gap = (b["boxes"] - box).abs().amax(1) * 300  # ... is found by the runtime too (order may
            j = int(gap.argmin())  # differ between near-equal scores)
            assert gap[j] <= 4.0 and abs(float(b["scores"][j] - score)) <= 0.025
    model.source_file = None
    with pytest.raises(vidrec.errors.ConfigError, match="official file"):
        on_litert(model)
