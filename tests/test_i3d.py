import pytest
import torch
import torchvision

import vidrec
from vidrec.errors import ConfigError
from vidrec.models.inflate import (
    googlenet_to_i3d_key,
    inflate_googlenet,
    inflate_resnet50,
    inflate_state_dict,
    inflate_tsn,
    inflate_weight,
    resnet_to_i3d_key,
)

from conftest import randomize_bn


@pytest.mark.parametrize(
    "name,params",
    [("i3d_inception_rgb", 12_697_264), ("i3d_inception_flow", 12_675_312), ("i3d_r50", 28_043_472)],
)
def test_parameter_counts_match_the_reference_implementations(name, params):
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = vidrec.create_model(name, num_classes=400)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("shape", [(2, 3, 8, 112, 112), (1, 3, 9, 120, 150), (1, 3, 16, 224, 224)])
def test_inception_any_length_and_size(shape):
    model = vidrec.create_model("i3d_inception_rgb", num_classes=7).eval()
    with torch.no_grad():
        maps = model.feature_maps(torch.randn(shape))
        assert maps.shape[:3] == (shape[0], 1024, -(-shape[2] // 8))
        assert model.forward_head(model.forward_features(torch.randn(shape))).shape == (shape[0], 7)


def test_flow_stream_takes_two_channels():
    model = vidrec.create_model("i3d_inception_flow", num_classes=5).eval()
    assert model(torch.randn(1, 2, 8, 112, 112)).shape == (1, 5)
    with pytest.raises(ConfigError, match=r"expects input \(B, 2, T, H, W\)"):
        model(torch.randn(1, 3, 8, 112, 112))
    small = vidrec.create_model("i3d_small", num_classes=5, in_channels=2, width=8).eval()
    prep = small.preprocessing  # flow as the Inception flow stream takes it, never clip-centred
    assert (prep.modality, prep.mean, prep.std, prep.centering) == ("flow", (0.5, 0.5), (0.5, 0.5), "dataset")
    assert small(torch.randn(1, 2, 16, 32, 32)).shape == (1, 5)


def test_tf_same_padding_shapes():
    # TensorFlow SAME: every stride-2 stage gives ceil(size / 2), also for odd sizes.
    model = vidrec.create_model("i3d_inception_rgb").eval()
    x = torch.randn(1, 3, 11, 113, 127)
    with torch.no_grad():
        x = model.features.conv1a(x)
        assert x.shape[2:] == (6, 57, 64)
        x = model.features.pool2a(x)
        assert x.shape[2:] == (6, 29, 32)


def test_inflate_weight_modes():
    w = torch.randn(4, 3, 5, 5)
    rep = inflate_weight(w, 3, mode="replicate")
    assert rep.shape == (4, 3, 3, 5, 5)
    torch.testing.assert_close(rep.sum(2), w)
    cen = inflate_weight(w, 3, mode="centre")
    assert torch.equal(cen[:, :, 1], w) and cen[:, :, [0, 2]].abs().sum() == 0
    with pytest.raises(ConfigError):
        inflate_weight(w, 3, mode="middle")


@pytest.mark.parametrize("mode", [pytest.param("replicate", marks=pytest.mark.slow), "centre"])
def test_boring_video_fixed_point_inception(mode):
    """A video of one image repeated T times through the inflated network gives the 2D
    network's scores on that image.

    Two boundary effects are handled, not hidden: (1) temporal zero padding would make the first
    and last frames differ, so the 3D model pads time by replicating frames; (2) torchvision's
    GoogLeNet pads its 7x7/2 stem symmetrically (3, 3) where TensorFlow SAME pads (2, 3) for
    even sizes but (3, 3) for odd ones, so the image is 223 px and both see the same pixels."""
    torch.manual_seed(0)
    net2d = torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=True, transform_input=False
    )
    randomize_bn(net2d)
    net2d.eval()
    model, report = inflate_googlenet(net2d, mode=mode, temporal_padding="replicate")
    assert set(report.unused_2d) == {k for k in net2d.state_dict() if k.startswith(("aux1.", "aux2."))}
    assert report.not_loaded_3d == [] and len(report.inflated) == 57
    model.eval()
    image = torch.randn(2, 3, 223, 223)
    video = image[:, :, None].repeat(1, 1, 8, 1, 1)  # (B, C, T, H, W), every frame the same
    with torch.no_grad():
        scores_2d = net2d(image).softmax(-1)
        scores_3d = model(video).softmax(-1)
        logit_err = (net2d(image) - model(video)).abs().max().item()
    assert logit_err < 1e-4, logit_err
    assert (scores_2d - scores_3d).abs().max() < 1e-4
    if mode == "replicate":  # with zero temporal padding the borders break the fixed point
        zero_padded, _ = inflate_googlenet(net2d, mode=mode)
        with torch.no_grad():
            assert (zero_padded.eval()(video) - net2d(image)).abs().max() > 1e-3


def test_boring_video_fixed_point_resnet50_where_padding_does_not_reach():
    """I3D-R50 pads time with zeros; its temporal receptive field is about +-18 input frames, so
    with 48 frames the middle output step never sees padding and must equal the 2D network.
    In float64: this random ResNet's features reach ~400, where float32 rounding alone is ~1e-3."""
    torch.manual_seed(0)
    net2d = torchvision.models.resnet50(weights=None)
    randomize_bn(net2d)
    net2d = net2d.double().eval()
    model, report = inflate_resnet50(net2d)
    assert report.unused_2d == {} and report.not_loaded_3d == []
    model = model.double().eval()
    inflate_state_dict(net2d.state_dict(), model, resnet_to_i3d_key)  # again, in float64
    image = torch.randn(1, 3, 112, 112, dtype=torch.float64)
    with torch.no_grad():
        feats = model.feature_maps(image[:, :, None].repeat(1, 1, 48, 1, 1))  # (1, 2048, 24, 4, 4)
        middle = feats[:, :, feats.shape[2] // 2]
        trunk = torch.nn.Sequential(*list(net2d.children())[:-2])
        torch.testing.assert_close(middle, trunk(image), atol=1e-6, rtol=1e-6)
        logits_3d = model.head(middle.mean((2, 3)))
        assert (logits_3d - net2d(image)).abs().max() < 1e-4
        # ...and the borders, which do see padding, differ: the check above is not vacuous.
        assert (feats[:, :, 0] - middle).abs().max() > 1e-3


def test_i3d_small_is_tsn_small_inflated():
    """i3d_small is tsn_small's CNN with time added to every kernel: its weights inflate on one to
    one. 'centre' inflation makes it tsn_small on the frames it keeps (any video); 'replicate'
    gives tsn_small's output for a boring video where the zero time padding does not reach."""
    torch.manual_seed(0)
    tsn = vidrec.create_model("tsn_small", num_classes=5, width=8)
    randomize_bn(tsn)
    tsn = tsn.double().eval()
    centre, report = inflate_tsn(tsn, mode="centre")
    assert report.unused_2d == {} and report.not_loaded_3d == [] and len(report.inflated) == 4
    centre = centre.double().eval()
    inflate_state_dict(tsn.state_dict(), centre, lambda k: k, mode="centre")  # again, in float64
    video = torch.randn(2, 3, 8, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        # time strides (1, 1, 2, 2) keep frames 0 and 4 of 8; centre taps see one frame each
        torch.testing.assert_close(centre(video), tsn(video[:, :, ::4]), atol=1e-9, rtol=1e-9)
        replicate, _ = inflate_tsn(tsn, mode="replicate")
        replicate = replicate.double().eval()
        inflate_state_dict(tsn.state_dict(), replicate, lambda k: k)
        image = torch.randn(1, 3, 32, 32, dtype=torch.float64)
        feats = replicate.feature_maps(image[:, :, None].repeat(1, 1, 32, 1, 1))  # (1, 32, 8, 2, 2)
        trunk = tsn.backbone[:-2]
        torch.testing.assert_close(feats[:, :, 4], trunk(image), atol=1e-9, rtol=1e-9)
        assert (feats[:, :, 0] - feats[:, :, 4]).abs().max() > 1e-3  # the border sees the padding
    with pytest.raises(ConfigError, match="tsn_small"):
        inflate_tsn(vidrec.create_model("tsn_r18", num_classes=5))


@pytest.mark.parametrize("mode", ["replicate", "centre"])
def test_training_starts_from_a_trained_tsn_small_inflated(tmp_path, mode):
    """`model.init: inflate:DIR` with a saved tsn_small: i3d_small gets its kernels inflated (the
    head, for another class count, starts new)."""
    from vidrec.train.config import config_from_dict
    from vidrec.train.setup import build_model

    torch.manual_seed(0)
    tsn = vidrec.create_model("tsn_small", num_classes=5, width=8)
    randomize_bn(tsn)
    tsn.save_pretrained(tmp_path / "tsn")
    cfg = config_from_dict(
        {
            "model": {"name": "i3d_small", "init": f"inflate:{tmp_path / 'tsn'}", "inflation": mode},
            "data": {"train": str(tmp_path)},
        },
        ["model.options.width=8"],
    )
    model, _ = build_model(cfg, num_classes=12, log=lambda _: None)
    expected, _ = inflate_tsn(tsn, mode=mode)
    got = model.state_dict()
    for key, value in expected.state_dict().items():
        if not key.startswith("head."):
            torch.testing.assert_close(got[key], value, msg=key)
    assert model.head.out_features == 12
    bad = config_from_dict(
        {"model": {"name": "i3d_small", "init": f"inflate:{tmp_path / 'tsn'}", "inflation": "mean"}}
    )
    with pytest.raises(ConfigError, match="inflation mode"):
        build_model(bad, num_classes=12, log=lambda _: None)


def test_inflation_reports_what_it_cannot_map():
    net2d = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    model, report = inflate_googlenet(net2d.state_dict(), num_classes=10)
    assert "fc.weight" in report.unused_2d and "other class count" in report.unused_2d["fc.weight"]
    assert report.not_loaded_3d == ["head.weight", "head.bias"]
    assert "2D keys not used" in report.summary()
    assert (
        googlenet_to_i3d_key("inception4c.branch3.1.bn.running_var")
        == "features.mixed4d.branch2.1.bn.running_var"
    )
    assert googlenet_to_i3d_key("aux1.conv.conv.weight") is None
