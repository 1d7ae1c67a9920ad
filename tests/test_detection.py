"""Action detectors: the box head, the AVA architectures against PyTorchVideo's and PySlowFast's."""

import pytest
import torch

import vidrec
from helpers import pyslowfast_names, randomized
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.ava_detector import RoIHead
from vidrec.models.convert import pyslowfast_key
from vidrec.models.convert.common import detector_key

ptv = pytest.importorskip("pytorchvideo.models.hub")


@pytest.mark.parametrize("arch,params", [("slowfast_r50_ava", 33_828_888), ("slow_r50_ava", 31_798_416)])
def test_parameter_counts_equal_pytorchvideos_detectors(arch, params):
    assert sum(p.numel() for p in vidrec.create_model(arch).parameters()) == params


@pytest.mark.parametrize(
    "hub,arch,frames",
    [
        pytest.param("slowfast_r50_detection", "slowfast_r50_ava", 32, marks=pytest.mark.slow),
        ("slow_r50_detection", "slow_r50_ava", 4),
    ],
)
def test_pytorchvideo_detector_parity(tmp_path, hub, arch, frames):
    reference = randomized(getattr(ptv, hub)(pretrained=False))
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    model = vidrec.load_model(tmp_path / "ref.pt", arch=arch).eval()
    assert model.num_classes == 80 and model.config.aligned is False
    torch.manual_seed(1)
    fast = torch.randn(2, 3, frames, 64, 96)
    boxes = torch.tensor([[0, 4.0, 6.0, 40.0, 60.0], [1, 30.0, 10.0, 90.0, 62.0], [1, 0.0, 0.0, 17.0, 9.0]])
    with torch.no_grad():
        if arch.startswith("slowfast"):
            expected = reference([fast[:, :, torch.linspace(0, frames - 1, frames // 4).long()], fast], boxes)
        else:
            expected = reference(fast, boxes)
        scores = torch.sigmoid(model(fast, boxes))
    err = (scores - expected).abs().max().item()
    print(f"PyTorchVideo {hub} parity: max abs score difference {err:.2e}")
    assert scores.shape == (3, 80) and err <= 1e-4
    assert scores.std() > 0.01 and (scores[0] - scores[1]).abs().max() > 0.01  # not a constant output


def test_pyslowfast_ava_checkpoint_loads_one_to_one(tmp_path):
    """PySlowFast's AVA checkpoints hold the classifier's keys with an 80-way head.projection."""
    model = vidrec.create_model("slowfast_r50_ava")
    target, names = model.state_dict(), pyslowfast_names()  # the full R50: every stage's block count
    rename = detector_key(pyslowfast_key({"0": "slow.", "1": "fast."}), "head.projection.")
    mapped = [rename(n) for n in names]
    assert None not in mapped and len(set(mapped)) == len(names) == len(target)
    state = {
        n: torch.randn(target[m].shape) if target[m].is_floating_point() else target[m]
        for n, m in zip(names, mapped)
    }
    torch.save({"model_state": state, "epoch": 20}, tmp_path / "SLOWFAST_32x2_R50_SHORT.pyth")
    loaded = vidrec.load_model(
        tmp_path / "SLOWFAST_32x2_R50_SHORT.pyth", arch="slowfast_r50_ava"
    ).state_dict()
    assert all(torch.equal(loaded[m], state[n]) for n, m in zip(names, mapped))
    assert loaded["head.projection.weight"].shape == (80, 2304)


def test_detection_checkpoint_needs_a_detector_arch(tmp_path):
    torch.save(ptv.slow_r50_detection(pretrained=False).state_dict(), tmp_path / "det.pt")
    with pytest.raises(VidrecError, match=r"action-detection checkpoint: give arch=a \*_ava architecture"):
        vidrec.load_model(tmp_path / "det.pt", arch="slow_r50_8x8")


def test_res5_is_dilated_at_stride_16():
    model = vidrec.create_model("slowfast_r50_ava")
    maps = model.feature_maps(torch.randn(1, 3, 8, 64, 96))
    assert [tuple(m.shape) for m in maps] == [(1, 2048, 2, 4, 6), (1, 256, 8, 4, 6)]
    conv = model.backbone.slow.layer4[1].conv_b
    assert conv.dilation == (1, 2, 2) and conv.padding == (0, 2, 2)


def test_head_pools_inside_the_box_and_ignores_frame_order():
    torch.manual_seed(0)
    head = RoIHead([8], 3, stride=16, dropout=0.0).eval()
    maps = torch.randn(1, 8, 4, 8, 8)  # a 128 x 128 input at stride 16
    box = torch.tensor([[0, 0.0, 0.0, 48.0, 48.0]])  # cells 0-2
    out = head([maps], box)
    assert torch.allclose(head([maps[:, :, [2, 0, 3, 1]]], box), out, atol=1e-6)  # temporal mean
    far = maps.clone()
    far[..., 5:, 5:] = 100.0  # outside the box (and its bilinear support)
    assert torch.allclose(head([far], box), out, atol=1e-6)
    near = maps.clone()
    near[..., 1, 1] = 100.0  # inside: the spatial max sees it
    assert (head.pool([near], box) > 99 / 4 - 1).all()


def test_bad_boxes_are_clear_errors():
    model = vidrec.create_model("fast_small_ava")
    x = torch.randn(1, 3, 16, 64, 64)
    with pytest.raises(ConfigError, match=r"expects boxes \(K, 5\)"):
        model(x, torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="batch indices must be in \\[0, 1\\)"):
        model(x, torch.tensor([[1, 0, 0, 10, 10.0]]))
    with pytest.raises(ConfigError, match="cannot be a detection backbone|unknown detection backbone"):
        vidrec.create_model("fast_small_ava", backbone="movinet_a0_stream")


def caffe2_name(name: str) -> str:
    """PySlowFast's PyTorch name -> its Caffe2 blob name (the zoo's .pkl files), written out."""
    param = {"weight": "w", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    bn = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    if name.startswith("head.projection."):
        return "pred_" + param[name.split(".")[-1]]
    stage, rest = name.split(".", 1)
    if "_nonlocal" in rest:  # s4.pathway0_nonlocal6.conv_theta.weight -> nonlocal_conv4_6_theta_w
        j = rest.split("_nonlocal")[1].split(".")[0]
        module, p = rest.split(".")[1:]
        if module == "bn":
            return f"nonlocal_conv{stage[1]}_{j}_bn_{bn[p]}"
        return f"nonlocal_conv{stage[1]}_{j}_{module.removeprefix('conv_')}_{param[p]}"
    if stage.endswith("_fuse"):
        s, (module, p) = int(stage[1]), rest.split(".")
        base = "t_pool1_subsample" if s == 1 else f"t_res{s}_0_branch2c_bn_subsample"
        return f"{base}_bn_{bn[p]}" if module == "bn" else f"{base}_{param[p]}"
    path, part = rest.split(".", 1)
    t = "t_" if "pathway1" in path else ""
    if "_stem" in path:
        module, p = part.split(".")
        return f"{t}res_conv1_bn_{bn[p]}" if module == "bn" else f"{t}conv1_{param[p]}"
    j = path.split("_res")[1]
    branch, p = part.rsplit(".", 1)
    branch = branch.replace("branch2.", "branch2")
    if branch.endswith("_bn"):
        return f"{t}res{stage[1]}_{j}_{branch}_{bn[p]}"
    return f"{t}res{stage[1]}_{j}_{branch}_{param[p]}"


def test_caffe2_model_zoo_pickles_load_one_to_one(tmp_path):
    """PySlowFast's AVA zoo files are Caffe2 .pkl blobs; they load without running any code, their
    non-local blocks included (here one after the Slow res4 block, as R101's after 6, 13, 20)."""
    import pickle

    import numpy as np

    from vidrec.models.convert.caffe2 import caffe2_to_pyslowfast
    from vidrec.models.convert.common import load_exact

    arch = "slowfast_small_ava"  # one block per stage: a small pickle
    model = vidrec.create_model(arch, backbone_options={"slow_nonlocal": [[], [], [0], []]})
    target = model.state_dict()
    names = pyslowfast_names(depths=(1, 1, 1, 1), nonlocal_blocks={4: (0,)})
    names = [n for n in names if not n.endswith("num_batches_tracked")]
    rename = detector_key(pyslowfast_key({"0": "slow.", "1": "fast."}), "head.projection.")
    blobs = {caffe2_name(n): np.random.rand(*target[rename(n)].shape).astype(np.float32) for n in names}
    assert len(blobs) == len(names) and {"nonlocal_conv4_0_theta_w", "nonlocal_conv4_0_bn_riv"} <= set(blobs)
    load_exact(model, caffe2_to_pyslowfast(blobs), "Caffe2 blobs", rename)
    for n in names:
        np.testing.assert_array_equal(model.state_dict()[rename(n)].numpy(), blobs[caffe2_name(n)])

    blobs["res2_0_branch2a_w_momentum"] = np.zeros(1, np.float32)  # optimizer state: skipped
    with open(tmp_path / "NL.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    with pytest.raises(VidrecError, match="nonlocal0"):  # a model without that block names the key
        vidrec.load_model(tmp_path / "NL.pkl", arch=arch)
    plain = {k: v for k, v in blobs.items() if not k.startswith("nonlocal_")}
    with open(tmp_path / "SLOWFAST_32x2_R50.pkl", "wb") as f:
        pickle.dump({"blobs": plain}, f, protocol=2)
    loaded = vidrec.load_model(tmp_path / "SLOWFAST_32x2_R50.pkl", arch=arch).state_dict()
    for n in names:
        if "nonlocal" not in n:
            np.testing.assert_array_equal(loaded[rename(n)].numpy(), blobs[caffe2_name(n)])
    # The AVA v2.2 zoo files are PyTorch checkpoints under a .pkl name (CHECKPOINT_TYPE: pytorch).
    pyslowfast_state = caffe2_to_pyslowfast(plain)
    torch.save({"model_state": pyslowfast_state, "epoch": 20}, tmp_path / "SLOWFAST_32x2_R101_50_50.pkl")
    from_torch = vidrec.load_model(tmp_path / "SLOWFAST_32x2_R101_50_50.pkl", arch=arch).state_dict()
    assert all(torch.equal(from_torch[k], v) for k, v in loaded.items())
    plain["res2_0_branch2d_w"] = np.zeros(1, np.float32)
    with open(tmp_path / "odd.pkl", "wb") as f:
        pickle.dump({"blobs": plain}, f, protocol=2)
    with pytest.raises(VidrecError, match=r"Caffe2 blobs vidrec cannot map: \['res2_0_branch2d_w'\]"):
        vidrec.load_model(tmp_path / "odd.pkl", arch=arch)


def test_slowfast_r101_ava_is_pyslowfasts_with_non_local_blocks():
    """SLOWFAST_32x2_R101_50_50: every PySlowFast key maps one-to-one, non-local blocks included;
    59,342,488 params (R101 with 6 temporal res4 blocks, three 2.1M non-local blocks, 80 classes)."""
    model = vidrec.create_model("slowfast_r101_ava")
    target = model.state_dict()
    names = pyslowfast_names(depths=(3, 4, 23, 3), nonlocal_blocks={4: (6, 13, 20)})
    rename = detector_key(pyslowfast_key({"0": "slow.", "1": "fast."}), "head.projection.")
    mapped = [rename(n) for n in names]
    assert None not in mapped and len(set(mapped)) == len(names) == len(target)
    assert all(target[m].shape == target[rename(n)].shape for n, m in zip(names, mapped))
    assert rename("s4.pathway0_nonlocal13.norm.weight") == "backbone.slow.layer3.nonlocal13.bn.weight"
    assert sum(p.numel() for p in model.parameters()) == 59_342_488
    assert model.config.aligned is False and model.backbone.slow.layer3[8].conv_a.kernel_size == (1, 1, 1)
