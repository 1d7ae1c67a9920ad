"""Deployable forms are conversions (vidrec.deploy): fused conv-BN, channels-last weights, and the
swap mechanism under them. MoViNet's int8 form is tested against the TFLite runtime in test_movinet."""

import copy

import pytest
import torch

import vidrec
from vidrec.deploy import fuse_conv_bn, optimize_for_inference, swap_modules, to_channels_last
from vidrec.engine.evaluate import video_scores
from vidrec.errors import ConfigError

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
