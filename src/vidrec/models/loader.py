"""Loading and saving models, whatever their source: a vidrec directory (`config.json` +
`model.safetensors`), a transformers VideoMAE directory, another project's checkpoint file
(dispatched to `vidrec.models.convert`), a Hugging Face hub id, or a pretrained tag from the weight table
(`arch.tag`, or an architecture with weights), fetched by `vidrec.models.download`.

Loading never unpickles: weights are safetensors (or `torch.load(weights_only=True)`).
"""

from __future__ import annotations

import difflib
import json
import os

import torch
from safetensors.torch import load_file

from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, VidrecError, unknown_name_message
from vidrec.models.base import CONFIG_NAME, LEGACY_GRIDS_NAME, QUANT_GRIDS_NAME, WEIGHTS_NAME, ModelBase
from vidrec.models.convert import CHECKPOINT_EXTENSIONS, load_checkpoint, load_exact
from vidrec.models.convert.videomae import (
    is_transformers_videomae,
    load_transformers_videomae,
    save_transformers_videomae,
)
from vidrec.models.download import fetch_weights, hub_snapshot
from vidrec.models.registry import create_model, list_models
from vidrec.models.two_stream import ARCH as TWO_STREAM
from vidrec.models.two_stream import TwoStream
from vidrec.models.weights import WEIGHTS, weights_for

SAVE_FORMATS = ("vidrec", "transformers")


def load_model(
    source: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    weights_dir: str | None = None,
    dtype: torch.dtype | None = None,
) -> ModelBase:
    """A ready model in eval mode from a vidrec or transformers directory, another project's
    checkpoint file (pytorch-i3d, PyTorchVideo, PySlowFast, VideoMAE, MoViNet .tflite; `arch`
    names the architecture where the file cannot tell), a Hugging Face hub id, or a pretrained
    tag (`arch.tag`, or an architecture with weights; files are looked for in `weights_dir`,
    `$VIDREC_WEIGHTS` and the cache, else downloaded). `dtype` (e.g. torch.bfloat16, half the
    memory): the floating weights in it. A vidrec directory's model is built on the meta device and
    takes its weights memory-mapped from model.safetensors: loading a billion parameters holds one
    copy at most, none when the file is already in `dtype` (float32 without one)."""
    source = os.fspath(source)
    if os.path.isdir(source):
        model = _load_directory(source, dtype)
    elif os.path.isfile(source):
        if not source.endswith(CHECKPOINT_EXTENSIONS):
            raise VidrecError(
                f"{source}: not a model directory or a checkpoint ({', '.join(CHECKPOINT_EXTENSIONS)})"
            )
        model = load_checkpoint(source, arch=arch)
    elif _looks_like_path(source):
        raise VidrecError(_missing_path_message(source))
    elif source.count("/") == 1:  # owner/name on the Hugging Face hub
        model = _load_directory(hub_snapshot(source), dtype)
    else:
        model = _load_tag(source, weights_dir)
    model = model.to(device)
    return (model.to(dtype) if dtype is not None else model).eval()


def save_model(model: ModelBase, directory: str | os.PathLike, *, format: str = "vidrec") -> None:
    """`format="vidrec"`: config.json + model.safetensors (`model.save_pretrained`);
    `"transformers"` (VideoMAE): a directory transformers' `from_pretrained` loads."""
    if format == "vidrec":
        model.save_pretrained(directory)
    elif format == "transformers":
        save_transformers_videomae(model, os.fspath(directory))
    else:
        raise ConfigError(unknown_name_message("format", format, SAVE_FORMATS))


def _looks_like_path(source: str) -> bool:
    """A name that can only mean a file or folder: starts like a path, ends like a checkpoint, has
    more than one '/', or its first part is a folder here (`runs/tsnn`)."""
    if source.startswith((".", "/", "~")) or source.endswith(CHECKPOINT_EXTENSIONS) or source.count("/") > 1:
        return True
    return "/" in source and os.path.isdir(source.split("/")[0])


def _missing_path_message(source: str) -> str:
    parent = os.path.dirname(source.rstrip("/")) or "."
    if not os.path.isdir(parent):
        return f"{source}: no such file or directory ({parent} does not exist either)"
    near = difflib.get_close_matches(os.path.basename(source.rstrip("/")), sorted(os.listdir(parent)), n=3)
    hint = (
        f"; did you mean {', '.join(os.path.join(parent, n) if parent != '.' else n for n in near)}?"
        if near
        else ""
    )
    return f"{source}: no such model directory or checkpoint{hint}"


def _load_directory(directory: str, dtype: torch.dtype | None = None) -> ModelBase:
    if is_transformers_videomae(directory):
        return load_transformers_videomae(directory)
    if not os.path.exists(os.path.join(directory, CONFIG_NAME)):
        raise VidrecError(f"{directory}: not a model directory (no {CONFIG_NAME})")
    try:
        with open(os.path.join(directory, CONFIG_NAME)) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise VidrecError(f"{directory}: unreadable {CONFIG_NAME} ({e})") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise VidrecError(f"{directory}: {CONFIG_NAME} is not a vidrec model config (no 'architecture')")
    if config["architecture"] == TWO_STREAM:
        return TwoStream(
            _load_directory(os.path.join(directory, "rgb"), dtype),
            _load_directory(os.path.join(directory, "flow"), dtype),
            weights=tuple(config.get("weights", (0.5, 0.5))),
            flow_method=config.get("flow_method", "tvl1"),
            flow_short_side=config.get("flow_short_side", 256),
        )
    with torch.device("meta"):  # no memory and no initialisation: the weights replace it all
        model = create_model(config["architecture"], **config.get("config", {}))
    model.preprocessing = Preprocessing.from_dict(config.get("preprocessing", {}))
    model.set_labels(config.get("labels"))
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise VidrecError(f"{directory}: no {WEIGHTS_NAME}")
    try:
        state = load_file(weights)  # memory-mapped: pages are read as they are used
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise VidrecError(f"{weights}: unreadable safetensors file ({e})") from None
    load_exact(model, state, weights, dtype=dtype, assign=True)
    for name in (QUANT_GRIDS_NAME, LEGACY_GRIDS_NAME):
        grids = os.path.join(directory, name)
        if os.path.exists(grids):
            with open(grids) as f:
                model.quant_grids = json.load(f)
            break
    return model


def _load_tag(name: str, weights_dir: str | None) -> ModelBase:
    entries = weights_for(name)
    if not entries:
        if name in list_models():
            raise ConfigError(
                f"'{name}' is an architecture without pretrained weights here; train one "
                f"(vidrec train) or pass a model directory"
            )
        raise ConfigError(unknown_name_message("model or weights", name, list_models() + list(WEIGHTS)))
    entry = entries[0]
    path = fetch_weights(entry, weights_dir=weights_dir)
    if path.endswith(".tflite"):  # an official TFLite export: the architecture comes from the file
        model = load_checkpoint(path, arch=entry.arch)
        differs = {k: v for k, v in entry.model_options.items() if getattr(model.config, k) != v}
        if differs:
            raise VidrecError(
                f"{path}: the file is not the variant weights '{entry.name}' declare ({differs})"
            )
    else:
        model = load_exact(create_model(entry.arch, **entry.model_options), load_file(path), path)
    model.preprocessing = entry.preprocessing
    model.set_labels(list(entry.labels) or None)
    return model


__all__ = ["SAVE_FORMATS", "load_model", "save_model"]
