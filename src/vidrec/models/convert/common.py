"""What every importer shares: reading a checkpoint without unpickling code, and one strict check
that a renamed state dict is exactly a model's (every key mapped one to one, every shape equal)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from safetensors.torch import load_file
from torch import nn

from vidrec.errors import VidrecError
from vidrec.models.base import DetectionModel
from vidrec.models.convert.caffe2 import caffe2_to_pyslowfast
from vidrec.utils import DATA_ALIGNMENT, load_arrays_pickle

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".pyth", ".bin", ".ckpt", ".safetensors", ".tflite", ".pkl")


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
        elif path.endswith(".pkl"):
            state = _read_pkl(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt files and pickles that need code both end here
        raise VidrecError(
            f"{path}: cannot read as a weights-only checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]})"
        ) from None
    for wrapper in ("model_state", "state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VidrecError(f"{path}: no state dict of tensors inside")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _read_pkl(path: str) -> dict:
    """PySlowFast's zoo `.pkl` files come in two kinds: Caffe2 blobs (`{"blobs": {name: array}}`,
    pickled by Python 2), and PyTorch checkpoints under a .pkl name (the AVA v2.2 models, which its
    configs load with CHECKPOINT_TYPE: pytorch). Both are read without running any code."""
    try:
        with warnings.catch_warnings():  # torch warns about a plain pickle's protocol before refusing it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch checkpoint: Caffe2 blobs, or refused again just below
        pass
    data = load_arrays_pickle(path, encoding="latin1")
    blobs = data.get("blobs", data) if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise ValueError("no dict of Caffe2 blobs inside")
    return caffe2_to_pyslowfast(blobs)


def load_exact(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    rename: Callable[[str], str | None] | None = None,
    *,
    dtype: torch.dtype | None = None,
    assign: bool = False,
) -> nn.Module:
    """Load `state` into `model` after renaming each key (`rename(key)` -> model key, None: no
    counterpart). Every key must map to a distinct model key of the same shape and every model key
    must be filled, else one error names what did not fit. Floating tensors take `dtype` (None:
    the model's). `assign`: the tensors become the model's own (a model built on the meta device;
    a memory-mapped tensor already in its dtype is used where it lies, unless it lies off a 64-byte
    boundary: CPU kernels pick their code path by alignment, and the same weights must give the same
    outputs however they were loaded, so such a tensor is copied). Returns `model`."""
    target = model.state_dict()
    out, unmapped, shapes = {}, [], []
    for key, value in state.items():
        name = rename(key) if rename is not None else key
        if name is None or name not in target:
            unmapped.append(key)
            continue
        if name in out:
            raise VidrecError(f"{source}: two keys map to {name}")
        if value.shape != target[name].shape:
            shapes.append(
                f"{key}{'' if name == key else ' -> ' + name} "
                f"{tuple(value.shape)} vs {tuple(target[name].shape)}"
            )
            continue
        wanted = dtype if dtype is not None and value.is_floating_point() else target[name].dtype
        value = value.to(wanted)
        if assign and value.data_ptr() % DATA_ALIGNMENT:
            value = value.clone()  # torch's CPU allocator aligns to 64 bytes
        out[name] = value
    missing = [k for k in target if k not in out and not any(s.startswith(k) for s in shapes)]
    if unmapped or missing or shapes:
        parts = [
            f"unexpected {unmapped[:5]}" if unmapped else "",
            f"missing {missing[:5]}" if missing else "",
            f"shape mismatch {shapes[:3]}" if shapes else "",
        ]
        arch = getattr(model, "arch", "") or type(model).__name__
        raise VidrecError(f"{source}: weights do not fit {arch}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(out, strict=True, assign=assign)
    return model


__all__ = ["CHECKPOINT_EXTENSIONS", "kinetics400_labels", "load_exact", "read_checkpoint"]


def detector_key(backbone_rename: Callable[[str], str | None], head_prefix: str, strip: str = ""):
    """Renames for an action detector's checkpoint: `head_prefix*` onto the box head's projection,
    every other key (without `strip`) through the classifier's `backbone_rename`, under `backbone.`
    (a classifier head key there has no counterpart: a detector's backbone has no classifier)."""

    def rename(key: str) -> str | None:
        if key.startswith(head_prefix):
            return "head.projection." + key.removeprefix(head_prefix)
        inner = backbone_rename(key.removeprefix(strip))
        return None if inner is None or inner.startswith("head.") else "backbone." + inner

    return rename


def backbone_of(model, detection: bool, source: str):
    """The module holding the classifier-shaped weights: the model, or a detector's backbone. A
    detection checkpoint needs a detector architecture and a classification one a classifier."""
    if detection != isinstance(model, DetectionModel):
        kind = "an action-detection" if detection else "a classification"
        hint = "a *_ava architecture" if detection else "a classifier architecture"
        raise VidrecError(f"{source} is {kind} checkpoint: give arch={hint}, not {model.arch}")
    return model.backbone if detection else model
