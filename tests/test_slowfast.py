import pytest
import torch

import vidrec
from helpers import pyslowfast_names, randomized
from vidrec.flops import count_macs, count_params
from vidrec.models.convert import load_exact, pyslowfast_key

from conftest import randomize_bn

ptv = pytest.importorskip("pytorchvideo.models.hub")

TINY = dict(num_classes=5, stage_depths=(1, 1, 1, 1), width=16)


@pytest.mark.parametrize(
    "name,params",
    [
        ("slowfast_r50_8x8", 34_566_488),
        ("slowfast_r101_8x8", 62_826_968),
        ("slowfast_r101_16x8", 53_774_808),
        ("slow_r50_8x8", 32_454_096),
    ],
)
def test_parameter_counts_equal_the_model_zoo(name, params):
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        assert count_params(vidrec.create_model(name, num_classes=400)) == params


def test_4x16_differs_from_8x8_only_in_the_lateral_kernels():
    with torch.device("meta"):
        a, b = (count_params(vidrec.create_model(n)) for n in ("slowfast_r50_8x8", "slowfast_r50_4x16"))
    # Laterals 8->16, 32->64, 64->128, 128->256 with temporal kernel 7 vs 5.
    assert a - b == (8 * 16 + 32 * 64 + 64 * 128 + 128 * 256) * (7 - 5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,frames,gmacs", [("slowfast_r50_8x8", 32, 65.7), ("slowfast_r50_4x16", 32, 36.1)]
)
def test_flops_at_256_match_the_model_zoo(name, frames, gmacs):
    macs = count_macs(vidrec.create_model(name), (1, 3, frames, 256, 256)) / 1e9
    assert macs == pytest.approx(gmacs, rel=0.02)


def test_slow_input_is_pyslowfast_linspace_and_caller_tensor_untouched():
    model = vidrec.create_model("slowfast_r50_8x8", **TINY).eval()
    x = torch.randn(1, 3, 16, 32, 32)
    before = x.clone()
    slow, fast = model.split_pathways(x)
    assert torch.equal(slow, x[:, :, torch.linspace(0, 15, 4).long()]) and fast is x
    with torch.no_grad():
        torch.testing.assert_close(model(x), model([slow.clone(), x.clone()]))
    assert torch.equal(x, before)
    with pytest.raises(vidrec.errors.ConfigError, match="pair"):
        model([x, x, x])


@pytest.mark.parametrize(
    "hub,arch,frames", [("slowfast_r50", "slowfast_r50_8x8", 32), ("slow_r50", "slow_r50_8x8", 8)]
)
def test_pytorchvideo_parity(tmp_path, hub, arch, frames):
    reference = randomized(getattr(ptv, hub)(pretrained=False))
    torch.save({"model_state": reference.state_dict()}, tmp_path / "ref.pyth")
    model = vidrec.load_model(tmp_path / "ref.pyth", arch=arch)
    assert model.labels[0] == "abseiling" and model.preprocessing.test_crop_size == 256
    fast = torch.randn(1, 3, frames, 224, 224)
    with torch.no_grad():
        if arch.startswith("slowfast"):
            slow = fast[:, :, torch.linspace(0, frames - 1, frames // 4).long()]
            expected = reference([slow, fast])
        else:
            expected = reference(fast)
        err = (model(fast) - expected).abs().max().item()
    print(f"PyTorchVideo {hub} parity: max abs logit difference {err:.2e}")
    assert err <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(
    "hub,arch,frames",
    [("slowfast_r101", "slowfast_r101_8x8", 32), ("slowfast_16x8_r101_50_50", "slowfast_r101_16x8", 64)],
)
def test_pytorchvideo_parity_r101(tmp_path, hub, arch, frames):
    reference = randomized(getattr(ptv, hub)(pretrained=False))
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    model = vidrec.load_model(tmp_path / "ref.pt", arch=arch)
    fast = torch.randn(1, 3, frames, 224, 224)
    slow = fast[:, :, torch.linspace(0, frames - 1, frames // 4).long()]
    with torch.no_grad():
        assert (model(fast) - reference([slow, fast])).abs().max() <= 1e-4


@pytest.mark.parametrize("arch,pathways", [("slowfast_r50_8x8", 2), ("slow_r50_8x8", 1)])
def test_pyslowfast_mapping_complete_and_one_to_one(tmp_path, arch, pathways):
    model = vidrec.create_model(arch)
    names = pyslowfast_names(pathways=pathways, fuse=pathways == 2)
    rename = pyslowfast_key({"0": "slow.", "1": "fast."})
    mapped = [rename(n) for n in names]
    assert None not in mapped and len(set(mapped)) == len(names) == len(model.state_dict())
    target = model.state_dict()
    state = {
        n: torch.randn(target[m].shape) if target[m].is_floating_point() else target[m]
        for n, m in zip(names, mapped)
    }
    loaded = load_exact(model, state, "test", rename).state_dict()
    assert all(torch.equal(loaded[m], state[n]) for n, m in zip(names, mapped))
    torch.save(
        {"model_state": state, "epoch": 196, "cfg": "TRAIN:\n  ENABLE: True\n"}, tmp_path / "SLOWFAST.pyth"
    )
    model = vidrec.load_model(tmp_path / "SLOWFAST.pyth", arch=arch)
    assert torch.equal(model.state_dict()["head.weight"], state["head.projection.weight"])


@pytest.mark.parametrize("arch", ["slowfast_small", "i3d_resnet_small"])
def test_small_variants_start_from_scratch_with_every_block_on(arch):
    # PySlowFast's init (zero last BN per block, normal(0.01) head) stays the default of the big
    # models; the CPU-scale ones turn it off (it held them at chance on SynthMotion).
    def final_bn_weights(model):
        return torch.cat([m.weight for m in model.modules() if getattr(m, "final_bn", False)])

    small = vidrec.create_model(arch, num_classes=12)
    assert (final_bn_weights(small) == 1).all()
    bound = small.head.in_features**-0.5  # PyTorch's default: uniform(+-1/sqrt(fan_in)), bias too
    assert small.head.weight.abs().max() <= bound and small.head.weight.std() > 0.4 * bound
    assert small.head.bias.abs().max() > 0
    pyslowfast = vidrec.create_model(arch, num_classes=12, zero_init_final_bn=True, head_init_std=0.01)
    assert (final_bn_weights(pyslowfast) == 0).all()
    assert abs(pyslowfast.head.weight.std().item() - 0.01) < 0.002 and (pyslowfast.head.bias == 0).all()


@pytest.mark.parametrize(
    "instantiation,pool", [("dot_product", (2, 2, 2)), ("softmax", (1, 2, 2)), ("dot_product", (1, 1, 1))]
)
def test_non_local_block_matches_pytorchvideos(instantiation, pool):
    """NonLocal3d computes dot-product attention as theta (phi^T g) / N and softmax through SDPA;
    the numbers are PySlowFast's / PyTorchVideo's explicit (THW x N) affinity."""
    from pytorchvideo.layers.nonlocal_net import create_nonlocal

    from vidrec.models.layers import NonLocal3d

    torch.manual_seed(0)
    ours = NonLocal3d(16, pool=pool, instantiation=instantiation)
    ref = create_nonlocal(dim_in=16, dim_inner=8, pool_size=pool, instantiation=instantiation)
    randomize_bn(ref)
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.3)
    state = {k.replace("norm.", "bn."): v for k, v in ref.state_dict().items()}
    ours.load_state_dict(state)
    ours.eval(), ref.eval()
    x = torch.randn(2, 16, 4, 6, 8)
    with torch.no_grad():
        out, expected = ours(x), ref(x)
    assert (out - x).abs().max() > 0.1  # the block does something
    assert (out - expected).abs().max() <= 1e-5


def test_a_fresh_non_local_block_is_the_identity():
    """PySlowFast zero-initialises the block's final BN: inserting it leaves the network as it was."""
    options = {"slow_nonlocal": [[], [0], [0], []], "zero_init_final_bn": True}
    block = vidrec.create_model("slowfast_small", **options).eval().slow.layer2.nonlocal0
    assert not block.bn.weight.detach().any()
    x = torch.randn(1, 256, 4, 8, 8)
    assert torch.equal(block(x), x)
    with pytest.raises(
        vidrec.errors.ConfigError, match=r"non-local blocks after \[3\]: the stage has 1 blocks"
    ):
        vidrec.create_model("slowfast_small", slow_nonlocal=[[], [], [3], []])
