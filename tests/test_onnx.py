"""ONNX export: every family's graph run by ONNX Runtime gives PyTorch's logits (<= 1e-4) at batch
sizes other than the export's; `vidrec export` writes and checks one."""

import os

import pytest
import torch

import vidrec
from vidrec.cli import main
from vidrec.models.base import DetectionModel, StreamingModel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from helpers import TINY, assert_same_predictions, assert_same_stream  # noqa: E402
from vidrec.export.onnx import (  # noqa: E402
    check_onnx,
    check_onnx_stream,
    example_inputs,
    export_onnx,
    export_onnx_stream,
)

FAST = ["tsn_small", "i3d_small_ava"]
SLOW = [
    "i3d_small",
    "i3d_inception_small",
    "slowfast_small",
    "videomae_tiny",
    "movinet_a0_synth",
    "slowfast_small_ava",
]


def _export_and_check(name, tmp_path):
    torch.manual_seed(0)
    model = vidrec.create_model(
        name, num_classes=5, **TINY.get(name, {"width": 8} if name == "tsn_small" else {})
    )
    info = export_onnx(model.eval(), tmp_path / f"{name}.onnx")
    diff = check_onnx(model, tmp_path / f"{name}.onnx")
    print(f"{name}: {info}, ONNX Runtime vs PyTorch: {diff:.2e} of the output's scale")
    assert diff <= 1e-4
    return info


@pytest.mark.parametrize("name", FAST)
def test_onnx_runtime_gives_pytorchs_logits(name, tmp_path):
    info = _export_and_check(name, tmp_path)
    assert list(info["inputs"]) == (["video", "boxes"] if name.endswith("_ava") else ["video"])


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_onnx_runtime_gives_pytorchs_logits_for_every_family(name, tmp_path):
    _export_and_check(name, tmp_path)


def test_export_command(tmp_path, capsys):
    model = vidrec.create_model("tsn_small", num_classes=3, width=8)
    model.save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert (
        "tsn_small as ONNX opset" in out
        and "video ('N', 3, 8, 56, 56)" in out
        and "of the output's scale" in out
    )
    assert (tmp_path / "m.onnx").stat().st_size > 10_000
    assert main(["export", "tsn_smal", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tsn_small" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


def test_a_model_with_huge_logits_is_compared_on_their_scale(tmp_path, capsys):
    """Random weights can give logits of 1e5 and more, where float32 rounding alone differs by
    far more than 1e-4: the export is checked relative to the output's scale (`scaled_gap`), and
    a correct export is not refused; a wrong one still is."""
    from vidrec.utils import scaled_gap

    torch.manual_seed(0)
    model = vidrec.create_model("tsn_small", num_classes=3, width=8).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30.0)  # every layer 30x: the logits grow by orders of magnitude
        logits = model(torch.rand(1, 3, 8, 56, 56))
    assert logits.abs().max() > 1e5
    model.save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    diff = float(out.rsplit("difference ", 1)[1].split()[0])
    assert diff <= 1e-4
    assert scaled_gap([2.5e5 + 0.188], [2.5e5]) == pytest.approx(0.188 / 2.5e5)
    assert scaled_gap([0.5 + 2e-4], [0.5]) == pytest.approx(2e-4)  # small outputs: absolute
    with torch.no_grad():
        next(model.parameters()).mul_(1.01)  # PyTorch's side changed: the file is now wrong for it
    assert check_onnx(model, tmp_path / "m.onnx") > 1e-4


@pytest.mark.slow
def test_a_stream_step_with_its_state_as_inputs_and_outputs(tmp_path):
    """MoViNet's step: ONNX Runtime fed its own next_* outputs gives PyTorch's logits step after step."""
    torch.manual_seed(0)
    model = vidrec.create_model("movinet_a0_synth", num_classes=5).eval()
    info = export_onnx_stream(model, tmp_path / "step.onnx")
    assert list(info["inputs"])[:2] == ["frames", "frame_count"] and len(info["inputs"]) == 29
    single, batched = (
        check_onnx_stream(model, tmp_path / "step.onnx", steps=5),
        check_onnx_stream(model, tmp_path / "step.onnx", steps=3, batch=3),
    )
    print(
        f"stream step: ONNX Runtime vs PyTorch max abs diff {single:.2e} (batch 1), {batched:.2e} (batch 3)"
    )
    assert single <= 1e-4 and batched <= 1e-4
    with pytest.raises(vidrec.errors.ConfigError, match="not a stream model"):
        export_onnx_stream(vidrec.create_model("tsn_small", width=8), tmp_path / "x.onnx")


@pytest.fixture(scope="module")
def on_ort(tmp_path_factory):
    """The tiny stream model and a tiny AVA detector, with their ONNX Runtime forms (exported once
    into a cache folder)."""
    from helpers import tiny_stream_model
    from vidrec.runtime.onnxruntime import to_onnxruntime

    cache = str(tmp_path_factory.mktemp("onnx_cache"))
    torch.manual_seed(0)
    detector = vidrec.create_model("i3d_small_ava", num_classes=5, **TINY.get("i3d_small_ava", {})).eval()
    stream = tiny_stream_model()
    return cache, [(m, to_onnxruntime(m, cache=cache)) for m in (stream, detector)]


@pytest.mark.slow
def test_backend_onnxruntime_runs_the_same_model(on_ort, tmp_path):
    """`--backend onnxruntime`'s conversion: a stream model's step, step_features, whole-clip
    forward and a stream over a real-shaped video; a detector's boxes; all as PyTorch's; the
    export cached by the weights' fingerprint; a pickled copy (for workers and Ray) still runs."""
    import pickle

    import numpy as np

    from vidrec.errors import ConfigError
    from vidrec.runtime.onnxruntime import to_onnxruntime
    from vidrec.utils import write_video

    cache, [(stream, stream_ort), (detector, detector_ort)] = on_ort
    assert stream_ort.backend == "onnxruntime" and stream_ort.labels == stream.labels
    for ours, theirs in ((stream, stream_ort), (detector, detector_ort)):  # declared wrappers, no weights
        assert not list(theirs.parameters()) and not isinstance(theirs, type(ours))
    assert isinstance(stream_ort, StreamingModel) and isinstance(detector_ort, DetectionModel)
    clip = torch.randn(2, 3, 6, 32, 32)
    state = stream.init_state(2, height=32, width=32)
    with torch.no_grad():
        for name in ("step", "step_features"):
            (a, sa), (b, sb) = getattr(stream, name)(clip, state), getattr(stream_ort, name)(clip, state)
            assert (a - b).abs().max() <= 1e-4 and all((sa[k] - sb[k]).abs().max() <= 1e-4 for k in sa)
        # its next state, the graph's own arrays, steps on as PyTorch's does, as often as asked
        (a, _), (b, _), (c, _) = stream.step(clip, sa), stream_ort.step(clip, sb), stream_ort.step(clip, sb)
        assert (a - b).abs().max() <= 1e-4 and (b - c).abs().max() == 0 and sorted(sb) == sorted(sa)
        assert (stream(clip) - stream_ort(clip)).abs().max() <= 1e-4
        assert (pickle.loads(pickle.dumps(stream_ort))(clip) - stream(clip)).abs().max() <= 1e-4
        video, boxes = example_inputs(detector, batch=2, boxes=5)
        assert (detector(video, boxes) - detector_ort(video, boxes)).abs().max() <= 1e-4
    frames = np.random.default_rng(0).integers(0, 255, (25, 40, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10)
    assert_same_stream(stream, stream_ort, tmp_path / "v.mp4")
    exported = sorted(os.listdir(cache))
    assert len(exported) == 3  # the detector's forward, the stream model's step and classifier
    assert to_onnxruntime(stream, cache=cache) and sorted(os.listdir(cache)) == exported
    with torch.no_grad():
        stream.head.bias.add_(1.0)  # other weights: another export
    to_onnxruntime(stream, cache=cache)
    with torch.no_grad():
        stream.head.bias.sub_(1.0)
    assert len(os.listdir(cache)) == 5
    with pytest.raises(ConfigError, match="ONNX Runtime: .*invalid dimensions"):
        detector_ort(torch.randn(1, 3, 3, 32, 32), boxes[:1])  # frames the graph was not made for
    with pytest.raises(ConfigError, match="forward_features does not run in onnxruntime"):
        detector_ort.forward_features(video)


@pytest.mark.slow
def test_predict_and_stream_commands_on_onnxruntime(tmp_path, capsys, monkeypatch):
    from helpers import tiny_stream_model

    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    tiny_stream_model().save_pretrained(tmp_path / "m")
    torch.set_num_threads(2)
    assert_same_predictions(tmp_path / "m", "onnxruntime", tmp_path, capsys)
    assert os.listdir(tmp_path / "cache" / "onnx")  # exported once, kept for the next command
    assert torch.get_num_threads() == 1  # a stream model's runtime has the cores; PyTorch resizes
    argv = [
        "predict",
        str(tmp_path / "v.mp4"),
        "--model",
        str(tmp_path / "m"),
        "--int8",
        "--backend",
        "onnxruntime",
    ]
    assert main(argv) == 2 and "--int8" in capsys.readouterr().err


def test_the_person_detector_on_onnxruntime(tmp_path):
    """The SSD's network as ONNX (images in, box encodings and logits out; decoding and NMS stay in
    PyTorch): the same outputs and detections (the real weights: tests/test_ssd.py)."""
    from vidrec.models.ssd import ssd_mobilenet_v1
    from vidrec.runtime.onnxruntime import to_onnxruntime

    torch.manual_seed(0)
    model = ssd_mobilenet_v1(depth_multiplier=0.25, image_size=96).eval()
    info = export_onnx(model, tmp_path / "ssd.onnx")
    assert list(info["inputs"]) == ["images"] and info["inputs"]["images"][1:] == (3, 96, 96)
    assert check_onnx(model, tmp_path / "ssd.onnx") <= 1e-4
    on_ort = to_onnxruntime(model)
    (images,) = example_inputs(model, batch=3)
    ours, theirs = model.detect(images), on_ort.detect(images)
    for a, b in zip(ours, theirs):
        assert torch.equal(a["classes"], b["classes"]) and (a["scores"] - b["scores"]).abs().max() <= 1e-5
        assert (a["boxes"] - b["boxes"]).abs().max() <= 1e-4


def test_people_of_different_ages_step_at_once(on_ort):
    """Per-person recognition steps every tracked person in one run (`TrackRecognizer.step_all`:
    the states stacked, a frame count per row): the same logits as one person at a time, people
    seen 0, 1 and 3 times before, on PyTorch and on ONNX Runtime, with and without a window."""
    from vidrec.people.recognizers import TrackRecognizer

    _, [(stream, stream_ort), _] = on_ort
    size = TrackRecognizer(stream).size
    crops = torch.rand(6, 3, size, size, generator=torch.Generator().manual_seed(1)) * 255
    for model in (stream, stream_ort):
        for window in (None, 0.4):
            together, apart = TrackRecognizer(model, window=window), TrackRecognizer(model, window=window)
            for r in (together, apart):  # person 2 seen once, person 3 three times
                for ids in ([2, 3], [3], [3]):
                    r.step_all(ids, crops[: len(ids)])
            got = together.step_all([1, 2, 3], crops[3:])
            expected = torch.cat([apart.step_all([i], c[None]) for i, c in zip([1, 2, 3], crops[3:])])
            assert (got - expected).abs().max() <= 1e-5, (model.backend, window)
            assert [int(together.states[i]["frame_count"]) for i in (1, 2, 3)] == [1, 2, 4]
