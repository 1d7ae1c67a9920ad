"""Importers for other projects' checkpoints, one module per format. Every key is mapped
explicitly, the mapping must be complete and one-to-one, and every shape is asserted
(`common.load_exact`): a checkpoint either loads exactly or fails with the keys that did not fit.
Reading never unpickles code (`weights_only=True`)."""

from __future__ import annotations

import os
from collections.abc import Callable

from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import ModelBase
from vidrec.models.convert.common import (
    CHECKPOINT_EXTENSIONS,
    kinetics400_labels,
    load_exact,
    read_checkpoint,
)
from vidrec.models.convert.pyslowfast import from_pyslowfast, is_pyslowfast, pyslowfast_key
from vidrec.models.convert.pytorch_i3d import from_pytorch_i3d, is_pytorch_i3d, pytorch_i3d_key
from vidrec.models.convert.pytorchvideo import (
    from_pytorchvideo,
    is_pytorchvideo,
    pytorchvideo_resnet_key,
    pytorchvideo_slowfast_key,
)
from vidrec.models.convert.videomae import from_original_videomae, is_original_videomae

# name -> (does this state dict look like it, build the vidrec model from it)
FORMATS: dict[str, tuple[Callable[[dict], bool], Callable[[dict, str | None], ModelBase]]] = {
    "pytorch-i3d": (is_pytorch_i3d, from_pytorch_i3d),
    "pytorchvideo": (is_pytorchvideo, from_pytorchvideo),
    "pyslowfast": (is_pyslowfast, from_pyslowfast),
    "videomae": (is_original_videomae, from_original_videomae),  # MCG-NJU/VideoMAE, OpenGVLab/VideoMAEv2
}


def load_checkpoint(path: str | os.PathLike, *, arch: str | None = None) -> ModelBase:
    """A vidrec model from another project's checkpoint file (format detected from its keys), or
    from a TensorFlow Lite file (a MoViNet stream, or the SSD MobileNet detector)."""
    path = os.fspath(path)
    if path.endswith(".tflite"):
        from vidrec.models.convert.tflite import load_tflite_movinet
        from vidrec.models.convert.tflite_ssd import is_tflite_ssd, load_tflite_ssd

        model = load_tflite_ssd(path) if is_tflite_ssd(path) else load_tflite_movinet(path)
        if arch is not None and arch != model.arch:
            raise ConfigError(f"this TFLite file holds a {model.arch}, not {arch}")
        return model
    state = read_checkpoint(path)
    for detect, convert in FORMATS.values():
        if detect(state):
            model = convert(state, arch)
            if model.num_classes == 400 and model.labels is None:
                model.set_labels(kinetics400_labels())
            return model
    raise VidrecError(
        f"{path}: unrecognised checkpoint (known formats: {', '.join(FORMATS)}); "
        f"first keys: {list(state)[:3]}"
    )


__all__ = [
    "CHECKPOINT_EXTENSIONS",
    "FORMATS",
    "kinetics400_labels",
    "load_checkpoint",
    "load_exact",
    "pyslowfast_key",
    "pytorch_i3d_key",
    "pytorchvideo_resnet_key",
    "pytorchvideo_slowfast_key",
    "read_checkpoint",
]
