"""PySlowFast checkpoints (facebookresearch/SlowFast `.pyth` files): `s1.pathway0_stem.conv`,
`s2.pathway1_res0.branch2.a_bn`, `s4.pathway0_nonlocal6.conv_theta`, `s1_fuse.conv_f2s`,
`head.projection`; and its Caffe2 `.pkl`
model zoo (`res2_0_branch2a_w`, `t_res_conv1_bn_s`, `pred_w`), renamed to those first by
`vidrec.models.convert.caffe2`."""

from __future__ import annotations

import re
from collections.abc import Callable

from vidrec.models.base import DetectionModel, ModelBase
from vidrec.models.convert.common import backbone_of, detector_key, load_exact
from vidrec.models.convert.pytorchvideo import needs_arch, num_classes_of, pathway_prefixes
from vidrec.models.registry import create_model

_PARTS = {
    "branch1": "shortcut.0",
    "branch1_bn": "shortcut.1",
    "branch2.a": "conv_a",
    "branch2.a_bn": "bn_a",
    "branch2.b": "conv_b",
    "branch2.b_bn": "bn_b",
    "branch2.c": "conv_c",
    "branch2.c_bn": "bn_c",
}


def is_pyslowfast(state: dict) -> bool:
    """Whether a state dict has PySlowFast's key names."""
    return any(k.startswith("s1.pathway0_stem.") for k in state)


def pyslowfast_key(prefixes: dict[str, str]) -> Callable[[str], str | None]:
    """PySlowFast names onto a model whose pathways have the module `prefixes` (pathway_prefixes)."""

    def rename(key: str) -> str | None:
        if key.startswith("head.projection."):
            return "head." + key.removeprefix("head.projection.")
        m = re.match(r"s(\d)_fuse\.(conv_f2s|bn)\.(.+)$", key)
        if m:
            return f"fuse.{int(m.group(1)) - 1}.{'conv' if m.group(2) == 'conv_f2s' else 'bn'}.{m.group(3)}"
        m = re.match(r"s1\.pathway(\d)_stem\.(conv|bn)\.(.+)$", key)
        if m and m.group(1) in prefixes:
            return f"{prefixes[m.group(1)]}stem.{m.group(2)}.{m.group(3)}"
        m = re.match(r"s(\d)\.pathway(\d)_res(\d+)\.(branch1(?:_bn)?|branch2\.[abc](?:_bn)?)\.(.+)$", key)
        if m and m.group(2) in prefixes and m.group(4) in _PARTS:
            stage, path, index, part, rest = m.groups()
            return f"{prefixes[path]}layer{int(stage) - 1}.{index}.{_PARTS[part]}.{rest}"
        # Non-local blocks; PySlowFast renamed their BN `bn` -> `norm` in later versions.
        m = re.match(
            r"s(\d)\.pathway(\d)_nonlocal(\d+)\.(conv_theta|conv_phi|conv_g|conv_out|bn|norm)\.(.+)$", key
        )
        if m and m.group(2) in prefixes:
            stage, path, index, part, rest = m.groups()
            part = "bn" if part == "norm" else part
            return f"{prefixes[path]}layer{int(stage) - 1}.nonlocal{index}.{part}.{rest}"
        return None

    return rename


def from_pyslowfast(state: dict, arch: str | None) -> ModelBase:
    """The vidrec model (`arch` names it) holding a PySlowFast state dict: a classifier, or an AVA
    detector (`slowfast_r50_ava`, `slow_r50_ava`) from PySlowFast's AVA checkpoints, whose keys are
    the classifier's with an 80-way `head.projection`."""
    model = create_model(
        needs_arch(arch, "PySlowFast", "slowfast_r50_8x8, slowfast_r50_ava"),
        num_classes=num_classes_of(state, "head.projection.weight"),
    )
    detection = isinstance(model, DetectionModel)
    rename = pyslowfast_key(pathway_prefixes(backbone_of(model, detection, "this PySlowFast checkpoint")))
    if detection:
        rename = detector_key(rename, "head.projection.")
    return load_exact(model, state, "PySlowFast checkpoint", rename)


__all__ = ["from_pyslowfast", "is_pyslowfast", "pyslowfast_key"]
