"""PyTorchVideo checkpoints (its model zoo's `i3d_r50`, `slow_r50`, `slowfast_r50`, `slowfast_r101`):
`blocks.N.res_blocks.M.branch2.conv_a ...`, with `multipathway_blocks` for SlowFast."""

from __future__ import annotations

import re
from collections.abc import Callable

from vidrec.errors import ConfigError
from vidrec.models.base import ModelBase, VideoModel
from vidrec.models.convert.common import backbone_of, detector_key, load_exact
from vidrec.models.registry import create_model


def is_pytorchvideo(state: dict) -> bool:
    """Whether a state dict has PyTorchVideo's key names (a detector's under `model.`)."""
    keys = [k.removeprefix("model.") for k in state]
    return any(k.startswith("blocks.0.") for k in keys) and any(".res_blocks." in k for k in keys)


def pytorchvideo_resnet_key(stage_of_block: dict[int, int], prefix: str = "") -> Callable[[str], str | None]:
    """Single-pathway PyTorchVideo ResNets (i3d_r50, slow_r50), onto `prefix` + stem/layerN."""

    def rename(key: str) -> str | None:
        m = re.match(r"blocks\.0\.(conv|norm)\.(.+)$", key)
        if m:
            return f"{prefix}stem.{'conv' if m.group(1) == 'conv' else 'bn'}.{m.group(2)}"
        m = re.match(r"blocks\.(\d+)\.proj\.(.+)$", key)
        if m:
            return f"head.{m.group(2)}"
        m = re.match(
            r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.(?:conv|norm)_[abc])\.(.+)$",
            key,
        )
        if not m or int(m.group(1)) not in stage_of_block:
            return None
        block, index, layer, rest = m.groups()
        layer = {"branch1_conv": "shortcut.0", "branch1_norm": "shortcut.1"}.get(layer) or layer.removeprefix(
            "branch2."
        ).replace("norm_", "bn_")
        return f"{prefix}layer{stage_of_block[int(block)]}.{index}.{layer}.{rest}"

    return rename


_SLOWFAST_STAGES = {1: 1, 2: 2, 3: 3, 4: 4}  # blocks.1-4 hold res2-res5 in PyTorchVideo's SlowFast
_PATHWAY_RENAMERS = {
    "0": pytorchvideo_resnet_key(_SLOWFAST_STAGES, "slow."),
    "1": pytorchvideo_resnet_key(_SLOWFAST_STAGES, "fast."),
}


def pytorchvideo_slowfast_key(key: str) -> str | None:
    """`blocks.B.multipathway_blocks.P.<single-pathway key>` and `blocks.B.multipathway_fusion`."""
    m = re.match(r"blocks\.(\d+)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)$", key)
    if m:
        return f"fuse.{m.group(1)}.{'conv' if m.group(2) == 'conv_fast_to_slow' else 'bn'}.{m.group(3)}"
    m = re.match(r"blocks\.(\d+)\.multipathway_blocks\.([01])\.(.+)$", key)
    if m:
        block, path, rest = m.groups()
        return _PATHWAY_RENAMERS[path](f"blocks.{block}.{rest}")
    return pytorchvideo_resnet_key({})(key) if ".proj." in key else None


def pathway_prefixes(model: VideoModel) -> dict[str, str]:
    """Pathway numbers (0 slow, 1 fast, as PySlowFast counts them) -> vidrec module prefixes."""
    return {str(i): f"{p}." for i, p in enumerate(model.pathways)} if model.pathways else {"0": ""}


def num_classes_of(state: dict, head_suffix: str) -> int:
    """The classifier's width in a state dict (400 when it has no head)."""
    heads = [k for k in state if k.endswith(head_suffix)]
    return state[heads[0]].shape[0] if heads else 400


def needs_arch(arch: str | None, source: str, example: str) -> str:
    """`arch`, or an error saying that this format cannot tell the architecture."""
    if arch is None:
        raise ConfigError(f"a {source} checkpoint needs arch=... (e.g. {example}); see `vidrec models`")
    return arch


def from_pytorchvideo(state: dict, arch: str | None) -> ModelBase:
    """The vidrec model (`arch` names it) holding a PyTorchVideo state dict: a classifier, or an
    AVA detector from its `slow_r50_detection` / `slowfast_r50_detection` (backbone under
    `model.`, head `detection_head.proj`)."""
    detection = any(k.startswith("detection_head.") for k in state)
    arch = needs_arch(arch, "PyTorchVideo", "i3d_r50, slowfast_r50_8x8, slowfast_r50_ava")
    num_classes = num_classes_of(state, "detection_head.proj.weight" if detection else "proj.weight")
    model = create_model(arch, num_classes=num_classes)
    backbone = backbone_of(model, detection, "this PyTorchVideo checkpoint")
    if detection:  # its detectors (from PySlowFast's Caffe2 AVA models) run RoIAlign unaligned
        model = create_model(arch, num_classes=num_classes, aligned=False)
        backbone = model.backbone
    keys = [k.removeprefix("model.") for k in state]
    if any(".multipathway_" in k for k in keys):
        rename = pytorchvideo_slowfast_key
    else:
        blocks = sorted({int(k.split(".")[1]) for k in keys if ".res_blocks." in k})
        rename = pytorchvideo_resnet_key(
            {b: i + 1 for i, b in enumerate(blocks)}, pathway_prefixes(backbone)["0"]
        )
    if detection:
        rename = detector_key(rename, "detection_head.proj.", strip="model.")
    return load_exact(model, state, "PyTorchVideo checkpoint", rename)


__all__ = ["from_pytorchvideo", "is_pytorchvideo", "pytorchvideo_resnet_key", "pytorchvideo_slowfast_key"]
