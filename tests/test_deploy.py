"""Deployable forms are conversions (vidrec.deploy): fused conv-BN, channels-last weights, and the
swap mechanism under them. MoViNet's int8 form is tested against the TFLite runtime in test_movinet."""

import copy

import pytest
import torch

import vidrec
from vidrec.deploy import fuse_conv_bn, optimize_for_inference, swap_modules, to_channels_last
from vidrec.errors import ConfigError
from vidrec.recognize.evaluate import video_scores

from conftest import randomize_bn

TINY = dict(stage_depths=(1, 1, 1, 1), width=16)


@pytest.mark.parametrize(
    "name", ["slowfast_r50_8x8", "i3d_inception_rgb", "i3d_r50", "tsn_small", "movinet_a0_stream"]
)
def test_fused_conv_bn_keeps_the_logits(name):
    overrides = TINY if name in ("slowfast_r50_8x8", "i3d_r50") else {}
    model = vidrec.create_model(name, **{**overrides, "num_classes": 5})
    randomize_bn(model)
    model.eval()
    x = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        before = model(x)
        fuse_conv_bn(model)
        left = [n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert not left, left
        torch.testing.assert_close(model(x), before, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="eval mode"):
        fuse_conv_bn(model.train())


def test_channels_last_and_optimize_for_inference_keep_predictions():
    model = vidrec.create_model("slowfast_r50_8x8", num_classes=5, **TINY)
    randomize_bn(model)
    model.eval()
    views = torch.randn(2, 3, 3, 8, 32, 32)  # (B, V, C, T, H, W)
    before = video_scores(model, views)
    cl = to_channels_last(copy.deepcopy(model))
    assert cl.slow.stem.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(video_scores(cl, views), before, atol=1e-5, rtol=1e-4)
    optimize_for_inference(model)
    assert not model.training and model.slow.stem.conv.bias is not None  # batch norm folded in
    torch.testing.assert_close(video_scores(model, views), before, atol=1e-5, rtol=1e-4)


def test_swap_modules_replaces_what_convert_returns_and_never_walks_into_it():
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(2, 2))
    )
    seen = []

    def convert(path, module):
        seen.append(path)
        return torch.nn.Identity() if path == "1" else None

    swap_modules(model, convert)
    assert seen == ["0", "1"] and isinstance(model[1], torch.nn.Identity)


def test_bfloat16_inference_keeps_the_answers(tmp_path):
    """`--precision bf16`: the shipped I3D under bfloat16 autocast names the same class as in
    float32 on fresh SynthMotion videos, with probabilities within 0.05; outputs and a stream
    model's state stay float32; the converted model pickles (DataLoader workers, Ray)."""
    import copy
    import pickle

    from helpers import tiny_stream_model
    from vidrec.data.datasets import load_csv
    from vidrec.data.synthetic import SynthConfig, generate_dataset
    from vidrec.deploy.precision import to_bfloat16
    from vidrec.models.loader import load_model
    from vidrec.recognize.evaluate import evaluate

    model = optimize_for_inference(load_model("i3d_small.synthmotion"))
    half = to_bfloat16(copy.deepcopy(model))
    generate_dataset(str(tmp_path / "d"), counts={"test": 12}, cfg=SynthConfig(), seed=77, progress=False)
    records, _ = load_csv(str(tmp_path / "d" / "test.csv"), classes=model.labels)
    ours, theirs = (evaluate(m, records, progress=False, details=True) for m in (model, half))
    assert [p["predicted"] for p in ours["predictions"]] == [p["predicted"] for p in theirs["predictions"]]
    x = torch.randn(2, 3, 16, 56, 56)
    with torch.no_grad():
        a, b = model(x).softmax(-1), half(x).softmax(-1)
        assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05
        assert torch.equal(pickle.loads(pickle.dumps(half))(x), half(x))
    stream = to_bfloat16(tiny_stream_model())
    state = stream.init_state(1, height=32, width=32)
    logits, state = stream.step(torch.randn(1, 3, 4, 32, 32), state)
    assert logits.dtype == torch.float32 and all(v.dtype == torch.float32 for v in state.values())


def test_onednn_linear_layers_give_the_same_results_and_keep_the_state():
    """`to_onednn_linear`: VideoMAE's linear layers and its q, k, v products by oneDNN's inner
    product (2x MKL's sgemm on AMD EPYC): the same logits up to float32 rounding, the same state
    dict; gradients and autocast take F.linear, and the converted model still trains."""
    from vidrec.deploy import OneDNNLinear, onednn_available, to_onednn_linear

    assert onednn_available()
    torch.manual_seed(0)
    model = vidrec.create_model("videomae_tiny", num_classes=5).eval()
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = model(x)
    converted = to_onednn_linear(copy.deepcopy(model))
    assert list(converted.state_dict()) == keys
    assert any(isinstance(m, OneDNNLinear) for m in converted.modules())
    assert converted.encoder.blocks[0].attn.linear is not torch.nn.functional.linear
    with torch.no_grad():
        assert (converted(x) - expected).abs().max() < 1e-5
    converted.train()(x).sum().backward()  # with gradients: F.linear, differentiable
    assert converted.head.weight.grad is not None


def test_onednn_conv3d_takes_the_small_convolutions_too():
    """`to_onednn_conv3d`: every zero-padded Conv3d (SlowFast's 8-channel Fast pathway included,
    which PyTorch would give its naive kernel) by oneDNN: the same outputs; padding of its own
    (I3D's TF 'SAME') still applied; gradients take the usual path."""
    from vidrec.deploy import to_onednn_conv3d

    torch.manual_seed(0)
    for name, kwargs, shape in [
        ("slowfast_small", {}, (1, 3, 16, 56, 56)),
        ("i3d_inception_small", {}, (1, 3, 8, 64, 64)),
    ]:
        model = vidrec.create_model(name, num_classes=4, **kwargs).eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model(x)
            converted = to_onednn_conv3d(copy.deepcopy(model))
            assert (converted(x) - expected).abs().max() < 1e-5, name
        with torch.profiler.profile() as prof, torch.no_grad():
            converted(x)
        names = {e.name for e in prof.events()}
        assert "mkldnn::_convolution_pointwise" in names and "aten::slow_conv3d_forward" not in names
    converted.train()(x).sum().backward()


def test_onednn_bottlenecks_fuse_relu_and_residual_and_follow_weight_changes():
    """`optimize_for_inference` on SlowFast: each folded bottleneck's ReLUs and residual add run
    inside its convolutions (no add left), the same logits; the weights kept in oneDNN's layout
    follow an in-place change of the weights; copies and pickles (the packed weights left out)
    give the same answer."""
    import pickle

    torch.manual_seed(0)
    model = vidrec.create_model("slowfast_small", num_classes=4)
    randomize_bn(model)
    model.eval()
    x = torch.randn(1, 3, 16, 56, 56)
    with torch.no_grad():
        expected = model(x)
        fast = optimize_for_inference(copy.deepcopy(model))
        assert (fast(x) - expected).abs().max() < 1e-5
        with torch.profiler.profile() as prof:
            fast(x)
        names = [e.name for e in prof.events()]
        assert "aten::add" not in names and "aten::add_" not in names
        assert names.count("mkldnn::_convolution_pointwise") == sum(
            isinstance(m, torch.nn.Conv3d) for m in fast.modules()
        )
        for copied in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
            assert (copied(x) - expected).abs().max() < 1e-5
        block = fast.slow.layer1[0]  # weights changed in place: repacked, not stale
        block.conv_b.weight.mul_(2)
        changed = fast(x)
        for m in fast.modules():  # back to PyTorch's own path, the same (changed) weights
            for override in ("_conv_forward", "forward"):
                vars(m).pop(override, None)
        assert (changed - fast(x)).abs().max() < 1e-5 and (changed - expected).abs().max() > 1e-3
