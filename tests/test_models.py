import copy
import json
import os

import numpy as np
import pytest
import torch

import vidrec
from helpers import TINY
from vidrec.errors import ConfigError, VidrecError
from vidrec.models import PretrainingModel, StreamingModel, VideoModel
from vidrec.models.base import DetectionModel, ImageDetector, TwoStreamModel
from vidrec.models.loader import load_model
from vidrec.models.registry import IMAGE_BUILDERS
from vidrec.models.two_stream import TwoStream

from conftest import randomize_bn

CLASSIFIERS = [n for n in vidrec.list_models() if not n.endswith(("_pretrain", "_ava"))]
PRETRAINING = [n for n in vidrec.list_models() if n.endswith("_pretrain")]
DETECTORS = [n for n in vidrec.list_models() if n.endswith("_ava")]
IMAGE_DETECTORS = list(IMAGE_BUILDERS)  # built and loaded by name, not listed as video architectures


def test_the_contract_covers_every_architecture():
    """The parametrised contract tests below run over exactly these names: every registered one."""
    print(
        f"\ncontract: {len(CLASSIFIERS)} classifiers {CLASSIFIERS}\n"
        f"          {len(PRETRAINING)} pretraining {PRETRAINING}\n"
        f"          {len(DETECTORS)} detectors {DETECTORS}"
    )
    assert sorted(CLASSIFIERS + PRETRAINING + DETECTORS) == vidrec.list_models()
    assert all(isinstance(vidrec.create_model(n, **TINY.get(n, {})), DetectionModel) for n in DETECTORS)
    assert all(isinstance(vidrec.create_model(n, **TINY.get(n, {})), VideoModel) for n in CLASSIFIERS)


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _every_parameter_learns_and_checkpointing_changes_nothing(model, logits, forward) -> None:
    """Every parameter gets a gradient from `logits`, and `forward` with gradient checkpointing on
    gives the same gradients."""
    logits.square().sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent
    again = copy.deepcopy(model)
    again.zero_grad()
    again.set_grad_checkpointing(True)
    forward(again).square().sum().backward()
    for (n, a), (_, b) in zip(model.named_parameters(), again.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=n, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_contract(name, tmp_path):
    """timm's contract, for every architecture: pooled features of num_features, forward = head of
    features, every parameter learns, checkpointing changes no gradient, a new classifier, and
    save -> load gives the same outputs."""
    torch.manual_seed(0)
    model = _no_dropout(vidrec.create_model(name, num_classes=5, **TINY.get(name, {})))
    randomize_bn(model)  # zero-initialised residual BNs would block gradients at step 0 by design
    x = torch.randn(2, model.config.in_channels, 8, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features)
    logits = model(x)
    assert logits.shape == (2, 5)
    torch.testing.assert_close(model.forward_head(feats), logits)
    head_width = getattr(model.head, "in_features", None) or model.head.in_channels
    assert model.forward_head(feats, pre_logits=True).shape == (2, head_width)
    _every_parameter_learns_and_checkpointing_changes_nothing(model, logits, lambda m: m(x))

    model.eval()
    if isinstance(model, StreamingModel):  # streaming the clip in two chunks is the same forward
        state = model.init_state(2, height=32, width=32)
        _, state = model.step(x[:, :, :3], state)
        torch.testing.assert_close(model.step(x[:, :, 3:], state)[0], model(x), atol=1e-5, rtol=1e-5)
    model.set_labels([f"c{i}" for i in range(5)])
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.labels == model.labels
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.labels is None and model.num_classes == 7


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_full_size_shapes_on_the_meta_device(name):
    """Every architecture as released, at its own input size, without memory or compute."""
    with torch.device("meta"):
        model = vidrec.create_model(name, num_classes=11).eval()
        p = model.preprocessing
        size = p.test_crop_size or p.crop_size
        x = torch.empty(1, model.config.in_channels, p.num_frames, size, size)
        feats = model.forward_features(x)
        assert feats.shape == (1, model.num_features)
        assert model.forward_head(feats).shape == (1, 11)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_contract(name, tmp_path):
    """Every detector: per-box logits, every parameter learns, checkpointing changes no gradient,
    a new classifier, save -> load gives the same outputs; full size on the meta device."""
    torch.manual_seed(0)
    model = _no_dropout(vidrec.create_model(name, num_classes=5, **TINY.get(name, {})))
    randomize_bn(model)
    x = torch.randn(2, 3, 8, 64, 64)
    boxes = torch.tensor([[0, 4.0, 6.0, 40.0, 60.0], [1, 20.0, 10.0, 63.0, 50.0], [1, 0.0, 0.0, 17.0, 9.0]])
    logits = model(x, boxes)
    assert logits.shape == (3, 5)
    _every_parameter_learns_and_checkpointing_changes_nothing(model, logits, lambda m: m(x, boxes))
    model.eval().set_labels([f"c{i}" for i in range(5)])
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.labels == model.labels
    with torch.no_grad():
        assert torch.equal(loaded(x, boxes), model(x, boxes))
    model.reset_classifier(7)
    assert model(x, boxes).shape == (3, 7) and model.labels is None and model.num_classes == 7
    with torch.device("meta"):
        full = vidrec.create_model(name).eval()
        p = full.preprocessing
        clip = torch.empty(1, 3, p.num_frames, p.test_crop_size or p.resize, p.test_crop_size or p.resize)
        assert full(clip, torch.empty(4, 5)).shape == (4, full.num_classes)


@pytest.mark.parametrize("name", PRETRAINING)
def test_pretraining_contract(name, tmp_path):
    model = vidrec.create_model(name, **TINY.get(name, {}))
    assert isinstance(model, PretrainingModel) and model.num_classes == 0
    c, p = model.config, model.preprocessing
    x = torch.randn(2, 3, p.num_frames, p.crop_size, p.crop_size)
    loss = model(x, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    classifier, report = model.to_classifier(5)
    assert isinstance(classifier, VideoModel) and classifier.num_classes == 5
    assert report["loaded"] and "head.weight" in report["new"] and "mask_token" in report["dropped"]
    moved, source = classifier.encoder.patch_embed.state_dict(), model.encoder.patch_embed.state_dict()
    assert moved.keys() == source.keys() and all(torch.equal(moved[k], source[k]) for k in source)
    model.save_pretrained(tmp_path / "pt")
    again = load_model(tmp_path / "pt")
    with torch.no_grad():
        assert torch.equal(
            again(x, generator=torch.Generator().manual_seed(0)),
            model.eval()(x, generator=torch.Generator().manual_seed(0)),
        )
    assert c.decoder_depth >= 1


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
    from vidrec.models.download import fetch_weights
    from vidrec.models.weights import WeightEntry

    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    entry = WeightEntry(
        name="tsn_small.test",
        url="http://127.0.0.1:9/none.safetensors",
        sha256="",
        filename="none.safetensors",
        num_classes=3,
    )
    with pytest.raises(VidrecError, match="put none.safetensors in"):
        fetch_weights(entry)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "none.safetensors").write_bytes(b"x")
    assert fetch_weights(entry, weights_dir=str(tmp_path / "w")).endswith("none.safetensors")


@pytest.mark.parametrize("name", IMAGE_DETECTORS)
def test_image_detector_contract(name, tmp_path):
    """Every image detector: uint8 frames of any size in; per frame boxes in [0, 1], classes and
    scores, best first, at most `max_detections`; the network's outputs decoded by its weightless
    `postprocess` (what a runtime's copy of the network uses) give the same; labels and
    quantisation grids survive save -> load; a frame of floats is a one-line error."""
    torch.manual_seed(0)
    model = vidrec.create_model(name, num_classes=3, depth_multiplier=0.25).eval()
    assert isinstance(model, ImageDetector) and not isinstance(model, (VideoModel, DetectionModel))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in ((120, 160, 3), (90, 90, 3))]
    found = model.detect_frames(frames)
    assert len(found) == 2
    for d in found:
        assert d["boxes"].shape == (len(d["scores"]), 4) and len(d["scores"]) <= model.config.max_detections
        assert torch.all(d["scores"][:-1] >= d["scores"][1:]) and torch.all(d["classes"] < 3)
    images = model.postprocess.images(frames)
    size = model.config.image_size
    assert images.shape == (2, 3, size, size) and images.abs().max() <= 1
    for a, b in zip(found, model.postprocess.detections(*model(images))):
        assert all(torch.equal(a[k], b[k]) for k in a)
    model.set_labels(["a", "b", "c"])
    model.quant_grids = {"features.0": [0.02, 128]}
    model.save_pretrained(tmp_path / "det")
    again = load_model(tmp_path / "det")
    assert (
        type(again) is type(model) and again.labels == ["a", "b", "c"] and again.class_names == again.labels
    )
    assert again.quant_grids == model.quant_grids
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(found, again.detect_frames(frames)))
    with pytest.raises(ConfigError, match="uint8 frames"):
        model.detect_frames([np.zeros((8, 8, 3), np.float32)])


def test_two_stream_contract(tmp_path):
    """A two-stream model: an RGB and a flow clip in, fused log-probabilities out (their softmax
    sums to 1), a declared kind of its own (not a one-input classifier), unlabelled outputs named
    as every model's, save -> load the same."""
    torch.manual_seed(0)
    rgb = vidrec.create_model("i3d_small", num_classes=4, width=8)
    flow = vidrec.create_model("i3d_small", num_classes=4, width=8, in_channels=2)
    model = TwoStream(rgb, flow, weights=(1, 2)).eval()
    assert isinstance(model, TwoStreamModel) and not isinstance(model, VideoModel)
    assert model.class_names == ["class_0", "class_1", "class_2", "class_3"]
    x = (torch.randn(2, 3, 8, 32, 32), torch.randn(2, 2, 8, 32, 32))
    with torch.no_grad():
        fused = model(x)
        assert fused.shape == (2, 4)
        torch.testing.assert_close(fused.exp().sum(-1), torch.ones(2))
        expected = (rgb(x[0]).softmax(-1) + 2 * flow(x[1]).softmax(-1)) / 3
        torch.testing.assert_close(fused.exp(), expected)
    model.save_pretrained(tmp_path / "ts")
    again = load_model(tmp_path / "ts")
    assert isinstance(again, TwoStreamModel) and again.weights == pytest.approx(model.weights)
    with torch.no_grad():
        assert torch.equal(again(x), fused)
