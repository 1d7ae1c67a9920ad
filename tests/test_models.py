import json
import os

import pytest
import torch

import vidrec
from conftest import randomize_bn
from vidrec.errors import ConfigError, VidrecError
from vidrec.hub import load_model

# Tiny settings keep every registered model fast here (depth, width); the rest run as built.
_RES = {"stage_depths": (1, 1, 1, 1), "width": 16}
TINY = {"tsn_small": {"width": 8}, "i3d_r50": _RES, "slowfast_r50_4x16": _RES, "slowfast_r50_8x8": _RES,
        "slowfast_r101_8x8": _RES, "slowfast_r101_16x8": {**_RES, "res4_temporal_blocks": 0}, "slow_r50_8x8": _RES,
        "fast_r50": _RES, **{f"videomae_{s}": {"depth": 1, "dim": 64, "num_heads": 2, "mlp_dim": 128, "patch_size": 8}
                             for s in "sblh"}}


@pytest.mark.parametrize("name", [n for n in vidrec.list_models() if not n.endswith("_pretrain")])
def test_every_model_runs_and_every_parameter_learns(name):
    torch.manual_seed(0)
    model = vidrec.create_model(name, num_classes=5, **TINY.get(name, {}))
    randomize_bn(model)  # zero-initialised residual BNs would block gradients at step 0 by design
    x = torch.randn(2, model.config.in_channels, 8, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent
    assert model.forward_head(model.forward_features(x), pre_logits=True).ndim == 2
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)


def test_tsn_is_order_less():
    model = vidrec.create_model("tsn_small", num_classes=4).eval()
    x = torch.randn(1, 3, 6, 32, 32)
    torch.testing.assert_close(model(x), model(x.flip(2)))


def test_registry_errors():
    with pytest.raises(ConfigError, match="did you mean 'tsn_small'"):
        vidrec.create_model("tsn_smal")
    with pytest.raises(ConfigError, match="did you mean 'dropout'"):
        vidrec.create_model("tsn_small", dropuot=0.1)
    with pytest.raises(ConfigError, match="expects input"):
        vidrec.create_model("tsn_small")(torch.randn(2, 4, 32, 32))


def test_save_load_round_trip(tmp_path):
    model = vidrec.create_model("tsn_small", num_classes=3, width=8).eval()
    model.set_labels(["a", "b", "c"])
    with torch.no_grad():  # non-default batch-norm statistics must survive too
        model.backbone[1].running_mean.uniform_()
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["architecture"] == "tsn_small" and cfg["labels"] == ["a", "b", "c"]
    assert cfg["preprocessing"]["crop_size"] == model.preprocessing.crop_size
    loaded = load_model(tmp_path / "m")
    assert loaded.labels == ["a", "b", "c"] and loaded.config == model.config
    assert loaded.preprocessing == model.preprocessing
    x = torch.randn(1, 3, 4, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not any(n.endswith((".tmp", ".pt", ".bin", ".pkl")) for n in os.listdir(tmp_path / "m"))


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="without pretrained weights"):
        load_model("tsn_small")
    with pytest.raises(ConfigError, match="unknown model or weights"):
        load_model("nope_net")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidrecError, match="no config.json"):
        load_model(tmp_path / "empty")
    model = vidrec.create_model("tsn_small", num_classes=3, width=8)
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(VidrecError, match="unreadable safetensors"):
        load_model(tmp_path / "m")
    vidrec.create_model("tsn_small", num_classes=4, width=8).save_pretrained(tmp_path / "m4")
    cfg = json.loads((tmp_path / "m4" / "config.json").read_text())
    cfg["config"]["num_classes"] = 5
    (tmp_path / "m4" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VidrecError, match="shape mismatch"):
        load_model(tmp_path / "m4")


def test_fetch_weights_offline_message(tmp_path, monkeypatch):
    from vidrec.hub import WeightEntry, fetch_weights

    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    entry = WeightEntry(name="tsn_small.test", url="http://127.0.0.1:9/none.safetensors", sha256="", filename="none.safetensors",
                        num_classes=3)
    with pytest.raises(VidrecError, match="put none.safetensors in"):
        fetch_weights(entry)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "none.safetensors").write_bytes(b"x")
    assert fetch_weights(entry, weights_dir=str(tmp_path / "w")).endswith("none.safetensors")
