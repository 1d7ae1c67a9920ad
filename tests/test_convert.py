import pytest
import torch

import vidrec
from vidrec.errors import VidrecError
from vidrec.models.convert import pytorch_i3d_key, read_checkpoint

from conftest import randomize_bn

# pytorch-i3d's InceptionI3d, written out from the paper's table: endpoint -> (in, out, kernel).
UNITS = {"Conv3d_1a_7x7": (None, 64, 7), "Conv3d_2b_1x1": (64, 64, 1), "Conv3d_2c_3x3": (64, 192, 3)}
MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def pytorch_i3d_state_dict(in_channels: int = 3, num_classes: int = 400) -> dict[str, torch.Tensor]:
    """Random tensors under exactly pytorch-i3d's key names and shapes."""
    g = torch.Generator().manual_seed(0)
    state = {}

    def unit(name, cin, cout, k):
        state[f"{name}.conv3d.weight"] = torch.randn(cout, cin, k, k, k, generator=g) * 0.05
        state[f"{name}.bn.weight"] = torch.rand(cout, generator=g) + 0.5
        state[f"{name}.bn.bias"] = torch.randn(cout, generator=g) * 0.1
        state[f"{name}.bn.running_mean"] = torch.randn(cout, generator=g) * 0.1
        state[f"{name}.bn.running_var"] = torch.rand(cout, generator=g) + 0.5
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(7)

    for name, (cin, cout, k) in UNITS.items():
        unit(name, cin or in_channels, cout, k)
    for name, (cin, (b0, b1a, b1b, b2a, b2b, b3b)) in MIXED.items():
        unit(f"{name}.b0", cin, b0, 1)
        unit(f"{name}.b1a", cin, b1a, 1)
        unit(f"{name}.b1b", b1a, b1b, 3)
        unit(f"{name}.b2a", cin, b2a, 1)
        unit(f"{name}.b2b", b2a, b2b, 3)
        unit(f"{name}.b3b", cin, b3b, 1)
    state["logits.conv3d.weight"] = torch.randn(num_classes, 1024, 1, 1, 1, generator=g) * 0.01
    state["logits.conv3d.bias"] = torch.randn(num_classes, generator=g) * 0.01
    return state


@pytest.mark.parametrize("channels,arch", [(3, "i3d_inception_rgb"), (2, "i3d_inception_flow")])
def test_pytorch_i3d_mapping_is_complete_and_one_to_one(tmp_path, channels, arch):
    state = pytorch_i3d_state_dict(channels)
    mapped = {k: pytorch_i3d_key(k) for k in state}
    assert None not in mapped.values()
    assert len(set(mapped.values())) == len(state)  # one-to-one
    model = vidrec.create_model(arch)
    assert set(mapped.values()) == set(model.state_dict())  # complete
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    loaded = vidrec.load_model(tmp_path / "rgb_imagenet.pt")
    assert loaded.arch == arch and loaded.labels[0] == "abseiling" and len(loaded.labels) == 400
    for key, name in mapped.items():
        assert torch.equal(loaded.state_dict()[name], state[key]), key
    assert loaded.preprocessing.crop_size == 224
    if channels == 3:  # RGB scaled to [-1, 1], as kinetics-i3d
        assert loaded.preprocessing.mean == (0.5,) * 3 and loaded.preprocessing.std == (0.5,) * 3


@pytest.mark.parametrize("channels", [3, 2])
def test_pytorch_i3d_logits_match(tmp_path, pytorch_i3d, channels):
    torch.manual_seed(0)
    reference = pytorch_i3d.InceptionI3d(num_classes=400, in_channels=channels)
    for p in reference.parameters():
        p.data.normal_(0, 0.05)
    randomize_bn(reference)
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            # cd-fvd's vendored copy changed eps to 1e-5; upstream pytorch-i3d (and Sonnet's
            # default in kinetics-i3d) use 1e-3, which is what the released checkpoints expect.
            assert m.eps in (1e-3, 1e-5)
            m.eps = 1e-3
    reference.eval()
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    model = vidrec.load_model(tmp_path / "ref.pt")
    x = torch.randn(1, channels, 16, 224, 224)
    with torch.no_grad():
        err = (model(x) - reference(x)).abs().max().item()
    print(f"pytorch-i3d parity ({channels} channels): max abs logit difference {err:.2e}")
    assert err == 0.0, err  # the README's "logits identical": the same ops in the same order


def test_pytorchvideo_i3d_r50_logits_match(tmp_path):
    hub = pytest.importorskip("pytorchvideo.models.hub")
    torch.manual_seed(0)
    reference = hub.i3d_r50(pretrained=False)
    for p in reference.parameters():
        p.data.normal_(0, 0.02)
    randomize_bn(reference)
    reference.eval()
    torch.save({"model_state": reference.state_dict()}, tmp_path / "I3D_8x8_R50.pyth")
    model = vidrec.load_model(tmp_path / "I3D_8x8_R50.pyth", arch="i3d_r50")
    x = torch.randn(2, 3, 8, 224, 224)
    with torch.no_grad():
        err = (model(x) - reference(x)).abs().max().item()
    print(f"PyTorchVideo i3d_r50 parity: max abs logit difference {err:.2e}")
    assert err <= 1e-4, err


def test_bad_checkpoints(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VidrecError, match="cannot read"):
        read_checkpoint(str(tmp_path / "junk.pt"))
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(VidrecError, match="unrecognised checkpoint"):
        vidrec.load_model(tmp_path / "other.pt")
    state = pytorch_i3d_state_dict()
    state["Mixed_4c.b1b.conv3d.weight"] = torch.zeros(1, 1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(VidrecError, match="Mixed_4c.b1b.conv3d.weight"):
        vidrec.load_model(tmp_path / "bad.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(VidrecError, match="weights-only"):
        read_checkpoint(str(tmp_path / "evil.pt"))
    import pickle  # a .pkl is tried as a torch checkpoint, then as Caffe2 blobs: neither runs code

    torch.save({"x": Evil()}, tmp_path / "evil_torch.pkl")
    with open(tmp_path / "evil_plain.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": Evil()}}, f)
    for name in ("evil_torch.pkl", "evil_plain.pkl"):
        with pytest.raises(VidrecError, match="weights-only"):
            read_checkpoint(str(tmp_path / name))
