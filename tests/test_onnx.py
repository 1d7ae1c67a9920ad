"""ONNX export: every family's graph run by ONNX Runtime gives PyTorch's logits (<= 1e-4) at batch
sizes other than the export's; `vidrec export` writes and checks one."""

import pytest
import torch

import vidrec
from vidrec.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from test_models import TINY  # noqa: E402
from vidrec.deploy.onnx import check_onnx, check_onnx_stream, export_onnx, export_onnx_stream  # noqa: E402

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
    print(f"{name}: {info}, ONNX Runtime vs PyTorch max abs diff {diff:.2e}")
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
    assert "tsn_small as ONNX opset" in out and "video ('N', 3, 8, 56, 56)" in out and "max abs diff" in out
    assert (tmp_path / "m.onnx").stat().st_size > 10_000
    assert main(["export", "tsn_smal", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tsn_small" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


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
