"""Importers for other projects' checkpoints. Every key is mapped explicitly, the mapping must be
complete and one-to-one, and every shape is asserted: a checkpoint either loads exactly or fails
with the keys that did not fit. Reading never unpickles code (`weights_only=True`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch
from safetensors.torch import load_file

from vidrec.convert.videomae import is_original_videomae, load_original_videomae
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import VideoModel
from vidrec.registry import create_model

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".pyth", ".bin", ".ckpt", ".safetensors", ".tflite")


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in the usual (alphabetical) logit order."""
    from torchvision.models.video import R3D_18_Weights

    return list(R3D_18_Weights.KINETICS400_V1.meta["categories"])


def read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """A flat state dict from a .safetensors file or a torch checkpoint, unwrapping the usual
    containers (`model_state` of PySlowFast/PyTorchVideo, `state_dict`, `model`, `module`, `module.`)."""
    try:
        if path.endswith(".safetensors"):
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files and pickles that need code both end here
        raise VidrecError(f"{path}: cannot read as a weights-only checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]})") from None
    for wrapper in ("model_state", "state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VidrecError(f"{path}: no state dict of tensors inside")
    return {k.removeprefix("module."): v for k, v in state.items()}


def remap(state: dict[str, torch.Tensor], model: VideoModel, rename: Callable[[str], str | None],
          source: str) -> dict[str, torch.Tensor]:
    """Rename every key and check the result is exactly the model's state, shape by shape."""
    target = model.state_dict()
    out, unmapped = {}, []
    for key, value in state.items():
        name = rename(key)
        if name is None or name not in target:
            unmapped.append(key)
            continue
        if name in out:
            raise VidrecError(f"{source}: two keys map to {name}")
        if value.shape != target[name].shape:
            raise VidrecError(f"{source}: {key} -> {name}: shape {tuple(value.shape)} != {tuple(target[name].shape)}")
        out[name] = value.to(target[name].dtype)
    missing = [k for k in target if k not in out]
    if unmapped or missing:
        raise VidrecError(f"{source}: checkpoint does not map onto {model.arch}: unmapped {unmapped[:5]}, "
                          f"missing {missing[:5]}")
    return out


# --- pytorch-i3d (the PyTorch port of kinetics-i3d) ------------------------------------------------
_I3D_BLOCKS = {"Conv3d_1a_7x7": "conv1a", "Conv3d_2b_1x1": "conv2b", "Conv3d_2c_3x3": "conv2c",
               **{f"Mixed_{n}": f"mixed{n}" for n in ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")}}
_I3D_BRANCHES = {"b0": "branch0", "b1a": "branch1.0", "b1b": "branch1.1", "b2a": "branch2.0", "b2b": "branch2.1",
                 "b3b": "branch3.1"}


def pytorch_i3d_key(key: str) -> str | None:
    """`Mixed_4c.b1b.conv3d.weight` -> `features.mixed4c.branch1.1.conv.weight`."""
    if key.startswith("logits.conv3d."):
        return "head." + key.removeprefix("logits.conv3d.")
    m = re.match(r"(Conv3d_\w+?|Mixed_\d[a-f])\.(?:(b\d[ab]?)\.)?(conv3d|bn)\.(.+)$", key)
    if not m or m.group(1) not in _I3D_BLOCKS or (m.group(2) and m.group(2) not in _I3D_BRANCHES):
        return None
    block, branch, layer, rest = m.groups()
    path = f"features.{_I3D_BLOCKS[block]}" + (f".{_I3D_BRANCHES[branch]}" if branch else "")
    return f"{path}.{'conv' if layer == 'conv3d' else 'bn'}.{rest}"


# --- PyTorchVideo ResNets (blocks.N.res_blocks.M.branch2.conv_a ...) --------------------------------
def pytorchvideo_resnet_key(stage_of_block: dict[int, int], prefix: str = "") -> Callable[[str], str | None]:
    """Single-pathway PyTorchVideo ResNets (i3d_r50, slow_r50), onto `prefix` + stem/layerN."""
    def rename(key: str) -> str | None:
        m = re.match(r"blocks\.0\.(conv|norm)\.(.+)$", key)
        if m:
            return f"{prefix}stem.{'conv' if m.group(1) == 'conv' else 'bn'}.{m.group(2)}"
        m = re.match(r"blocks\.(\d+)\.proj\.(.+)$", key)
        if m:
            return f"head.{m.group(2)}"
        m = re.match(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(branch1_conv|branch1_norm|branch2\.(?:conv|norm)_[abc])\.(.+)$", key)
        if not m or int(m.group(1)) not in stage_of_block:
            return None
        block, index, layer, rest = m.groups()
        layer = {"branch1_conv": "shortcut.0", "branch1_norm": "shortcut.1"}.get(layer) or \
            layer.removeprefix("branch2.").replace("norm_", "bn_")
        return f"{prefix}layer{stage_of_block[int(block)]}.{index}.{layer}.{rest}"

    return rename


_SLOWFAST_STAGES = {1: 1, 2: 2, 3: 3, 4: 4}  # blocks.1-4 hold res2-res5 in PyTorchVideo's SlowFast
_PATHWAY_RENAMERS = {"0": pytorchvideo_resnet_key(_SLOWFAST_STAGES, "slow."),
                     "1": pytorchvideo_resnet_key(_SLOWFAST_STAGES, "fast.")}


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


def _pathway_prefixes(model: VideoModel) -> dict[str, str]:
    """PySlowFast's pathway numbers -> vidrec module prefixes for this model."""
    paths = [p for p in ("slow", "fast") if hasattr(model, p)]
    return {str(i): f"{p}." for i, p in enumerate(paths)} if paths else {"0": ""}


def pyslowfast_key(prefixes: dict[str, str]) -> Callable[[str], str | None]:
    """PySlowFast names: `s1.pathway0_stem.conv`, `s2.pathway1_res0.branch2.a_bn`, `s1_fuse.conv_f2s`,
    `head.projection`."""
    parts = {"branch1": "shortcut.0", "branch1_bn": "shortcut.1", "branch2.a": "conv_a", "branch2.a_bn": "bn_a",
             "branch2.b": "conv_b", "branch2.b_bn": "bn_b", "branch2.c": "conv_c", "branch2.c_bn": "bn_c"}

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
        if m and m.group(2) in prefixes and m.group(4) in parts:
            stage, path, index, part, rest = m.groups()
            return f"{prefixes[path]}layer{int(stage) - 1}.{index}.{parts[part]}.{rest}"
        return None

    return rename


def _from_pytorch_i3d(state: dict, arch: str | None) -> VideoModel:
    channels = state["Conv3d_1a_7x7.conv3d.weight"].shape[1]
    arch = arch or ("i3d_inception_flow" if channels == 2 else "i3d_inception_rgb")
    model = create_model(arch, num_classes=state["logits.conv3d.weight"].shape[0])
    return _finish(model, remap(state, model, pytorch_i3d_key, "pytorch-i3d checkpoint"))


def _needs_arch(arch: str | None, source: str, example: str) -> str:
    if arch is None:
        raise ConfigError(f"a {source} checkpoint needs arch=... (e.g. {example}); see `vidrec models`")
    return arch


def _num_classes(state: dict, head_suffix: str) -> int:
    heads = [k for k in state if k.endswith(head_suffix)]
    return state[heads[0]].shape[0] if heads else 400


def _from_pytorchvideo(state: dict, arch: str | None) -> VideoModel:
    model = create_model(_needs_arch(arch, "PyTorchVideo", "i3d_r50, slowfast_r50_8x8"),
                         num_classes=_num_classes(state, "proj.weight"))
    if any(".multipathway_" in k for k in state):
        rename = pytorchvideo_slowfast_key
    else:
        blocks = sorted({int(k.split(".")[1]) for k in state if ".res_blocks." in k})
        rename = pytorchvideo_resnet_key({b: i + 1 for i, b in enumerate(blocks)}, _pathway_prefixes(model)["0"])
    return _finish(model, remap(state, model, rename, "PyTorchVideo checkpoint"))


def _from_pyslowfast(state: dict, arch: str | None) -> VideoModel:
    model = create_model(_needs_arch(arch, "PySlowFast", "slowfast_r50_8x8"),
                         num_classes=_num_classes(state, "head.projection.weight"))
    return _finish(model, remap(state, model, pyslowfast_key(_pathway_prefixes(model)), "PySlowFast checkpoint"))


def _finish(model: VideoModel, state: dict) -> VideoModel:
    model.load_state_dict(state, strict=True)
    if model.num_classes == 400:
        model.set_labels(kinetics400_labels())
    return model


def _from_original_videomae(state: dict, arch: str | None) -> VideoModel:
    model = load_original_videomae(state, "VideoMAE checkpoint")
    if arch is not None and arch != model.arch:
        raise ConfigError(f"this VideoMAE checkpoint is a {model.arch}, not {arch} (its shapes say so)")
    if model.num_classes == 400:
        model.set_labels(kinetics400_labels())
    return model


FORMATS: dict[str, tuple[Callable[[dict], bool], Callable[[dict, str | None], VideoModel]]] = {
    "pytorch-i3d": (lambda s: "Conv3d_1a_7x7.conv3d.weight" in s, _from_pytorch_i3d),
    "pytorchvideo": (lambda s: any(k.startswith("blocks.0.") for k in s) and any(".res_blocks." in k for k in s),
                     _from_pytorchvideo),
    "pyslowfast": (lambda s: any(k.startswith("s1.pathway0_stem.") for k in s), _from_pyslowfast),
    "videomae": (is_original_videomae, _from_original_videomae),  # MCG-NJU/VideoMAE, OpenGVLab/VideoMAEv2
}


def load_checkpoint(path: str, *, arch: str | None = None) -> VideoModel:
    """A vidrec model from another project's checkpoint file (format detected from its keys), or
    from a MoViNet stream TensorFlow Lite file."""
    if os.fspath(path).endswith(".tflite"):
        from vidrec.convert.tflite import load_tflite_movinet

        model = load_tflite_movinet(path)
        if arch is not None and arch != model.arch:
            raise ConfigError(f"this TFLite file holds a {model.arch}, not {arch}")
        return model
    state = read_checkpoint(os.fspath(path))
    for name, (detect, convert) in FORMATS.items():
        if detect(state):
            return convert(state, arch)
    raise VidrecError(f"{path}: unrecognised checkpoint (known formats: {', '.join(FORMATS)}); "
                      f"first keys: {list(state)[:3]}")
