"""MoViNet's stream step as a TFLite graph: `vidrec export --format tflite` and `--backend litert`."""

import os
import pickle

import numpy as np
import pytest
import torch

import vidrec
from vidrec.cli import main
from vidrec.errors import ConfigError
from vidrec.export.tflite import SamePool, export_form, state_layout, zero_state
from vidrec.models.movinet import SkipPool
from vidrec.runtime.litert import to_litert


def tiny(size: int = 44, **options):
    """A0's network at `size` px (44: pools that pad (0, 1) and (1, 1)), 3 classes."""
    from vidrec.data.preprocessing import Preprocessing

    torch.manual_seed(0)
    model = vidrec.create_model("movinet_a0_stream", num_classes=3, dropout=0.0, **options).eval()
    model.preprocessing = Preprocessing(
        num_frames=8, sampling_rate=1, target_fps=5.0, resize=size, crop_size=size
    )
    model.set_labels(["a", "b", "c"])
    return model


def test_tflites_pools_are_the_models_pool():
    """'SAME' pooling with the padding left out: ceil mode for (0, 1), a constant correction for (1, 1)."""
    for size in (86, 43, 11, 6, 3):
        x = torch.randn(2, 5, size, size)
        assert (SamePool()(x) - SkipPool()(x)).abs().max() <= 1e-6
    with pytest.raises(ConfigError, match="pool differently by axis"):
        SamePool()(torch.randn(1, 2, 43, 44))


@pytest.mark.parametrize("options", [{}, {"se_type": "none", "activation": "relu6"}], ids=["se", "int8-kind"])
def test_the_export_form_computes_the_models_step(options):
    """Buffers as channels-last frames, TFLite's pools, the adaptive mean: PyTorch's logits and
    features step after step, with squeeze-excitation and without (the official int8 file's kind)."""
    model = tiny(44, **options)
    form = export_form(model)
    state, graph_state = model.init_state(1), zero_state(model)
    frames = torch.randn(1, 3, 6, 44, 44)
    with torch.no_grad():
        for t in range(6):
            feats_expected, _ = model.step_features(frames[:, :, t : t + 1], state)
            expected, state = model.step(frames[:, :, t : t + 1], state)
            logits, feats, *graph_state = form(frames[:, :, t], *graph_state)
            assert (logits - expected).abs().max() <= 1e-5
            assert (feats - feats_expected[:, 0]).abs().max() <= 1e-5
    with pytest.raises(ConfigError, match="cover MoViNet"):
        export_form(vidrec.create_model("tsn_small", width=8))


@pytest.fixture(scope="module")
def on_litert(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("tflite_cache"))
    model = tiny(44)
    return cache, model, to_litert(model, cache=cache)


@pytest.mark.slow
def test_backend_litert_runs_the_same_model(on_litert, tmp_path):
    """`--backend litert`: step, step_features and the whole clip as PyTorch's, a stream over a
    video too; the graph cached by the weights' fingerprint; a pickled copy still runs."""
    from helpers import assert_same_stream
    from vidrec.utils import write_video

    cache, model, lit = on_litert
    assert lit.backend == "litert" and lit.labels == model.labels
    assert not list(lit.parameters()) and not isinstance(lit, type(model))  # the graphs, no weights
    clip = torch.randn(1, 3, 5, 44, 44)
    with torch.no_grad():
        (a, _), (b, state) = model.step(clip, model.init_state(1)), lit.step(clip, lit.init_state(1))
        assert (a - b).abs().max() <= 1e-4
        (a, _), (b, _) = (
            model.step_features(clip, model.init_state(1)),
            lit.step_features(clip, lit.init_state(1)),
        )
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-4
        assert (model(clip) - lit(clip)).abs().max() <= 1e-4
        assert (pickle.loads(pickle.dumps(lit))(clip) - model(clip)).abs().max() <= 1e-4
        # the state is the caller's: stepping on from the same state twice gives the same answer
        assert (lit.step(clip[:, :, :1], state)[0] - lit.step(clip[:, :, :1], state)[0]).abs().max() == 0
        # it reads as {name: tensor}, and a plain dict copy of it steps the same
        assert list(state) == [name for name, _, _ in state_layout(model)]
        assert all(isinstance(v, torch.Tensor) for v in state.values()) and "nope" not in state
        again = lit.step(clip[:, :, :1], {k: v.clone() for k, v in state.items()})[0]
        assert (again - lit.step(clip[:, :, :1], state)[0]).abs().max() == 0
    frames = np.random.default_rng(0).integers(0, 255, (25, 50, 60, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10)
    assert_same_stream(model, lit, tmp_path / "v.mp4")
    files = sorted(os.listdir(cache))
    assert len(files) == 2 and all(f.endswith(".tflite") for f in files)  # the step, the classifier
    to_litert(model, cache=cache)
    assert sorted(os.listdir(cache)) == files  # read back, not converted again
    with pytest.raises(ConfigError, match="batch 1 at 44x44"):
        lit.init_state(2)
    with pytest.raises(ConfigError, match="batch 1 at 44x44"):
        lit.step(torch.randn(1, 3, 1, 32, 32), lit.init_state(1))
    with pytest.raises(ConfigError, match="runs MoViNet stream models"):
        to_litert(vidrec.create_model("tsn_small", width=8))
    with pytest.raises(ConfigError, match="forward_features does not run in litert"):
        lit.forward_features(clip)


@pytest.mark.slow
def test_export_and_predict_commands(tmp_path, capsys, monkeypatch):
    from helpers import assert_same_predictions

    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    tiny(32).save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "m.tflite"), "--format", "tflite"]) == 0
    out = capsys.readouterr().out
    assert "stream step as TFLite; inputs frame (1, 3, 32, 32)" in out and "of the output's scale" in out
    diff = float(out.rsplit("difference ", 1)[1].split()[0])
    assert diff <= 1e-4 and (tmp_path / "m.tflite").stat().st_size > 100_000
    vidrec.create_model("tsn_small", width=8).save_pretrained(tmp_path / "tsn")
    assert main(["export", str(tmp_path / "tsn"), str(tmp_path / "x.tflite"), "--format", "tflite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "MoViNet" in err and err.count("\n") == 1
    assert not (tmp_path / "x.tflite").exists()

    torch.set_num_threads(2)
    assert_same_predictions(tmp_path / "m", "litert", tmp_path, capsys)
    assert torch.get_num_threads() == 1  # PyTorch only resizes frames: the runtime has the cores
    assert os.listdir(tmp_path / "cache" / "tflite")  # converted once, kept for the next command
    argv = ["predict", str(tmp_path / "v.mp4"), "--model", str(tmp_path / "tsn"), "--backend", "litert"]
    assert main(argv) == 2 and "runs MoViNet stream models" in capsys.readouterr().err


@pytest.mark.slow
def test_the_official_a0_as_vidrecs_tflite_step(movinet_tflite, shared_videos):
    """The official int8 file's weights, converted by vidrec to a float32 TFLite step: within 1e-4 of
    PyTorch, and the same top-1 as the official int8 file in the same runtime on the real clips."""
    from vidrec.recognize.stream import model_frames
    from vidrec.runtime.litert import LiteRTStream

    model = vidrec.load_model(movinet_tflite)
    lit = to_litert(model)
    runtime = LiteRTStream(movinet_tflite)
    for name in ("flipping_a_pancake.mkv", "arm_wrestling.mp4", "basketball_shooting.mp4"):
        frames = [f for _, f in model_frames(os.path.join(shared_videos, name), model.preprocessing, fps=5.0)]
        state = lit.init_state(1)
        runtime.reset()
        for frame in frames:
            logits, state = lit.step(frame[None], state)
            official = runtime.step(frame[:, 0].permute(1, 2, 0).numpy())
        with torch.no_grad():
            expected = model(torch.cat(frames, dim=1)[None])  # the whole clip, (1, C, T, H, W)
        print(f"{name}: vidrec TFLite vs PyTorch max abs diff {(logits - expected).abs().max():.2e}")
        assert (logits - expected).abs().max() <= 1e-4
        assert int(logits.argmax()) == int(np.argmax(official)) == int(expected.argmax())
