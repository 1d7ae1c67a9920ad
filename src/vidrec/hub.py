"""Saving and loading models: a directory of `config.json` + `model.safetensors`, or a
pretrained tag (`arch.tag`) resolved through the weight table, the cache and a download.

Loading never unpickles: weights are safetensors (or `torch.load(weights_only=True)`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file

from vidrec.data.transforms import Preprocessing
from vidrec.errors import ConfigError, VidrecError, unknown_name_message
from vidrec.models.base import VideoModel, config_dict
from vidrec.registry import create_model, list_models
from vidrec.utils import atomic_write, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class WeightEntry:
    """A pretrained checkpoint: where it comes from and what it expects."""

    name: str  # "arch.tag"
    url: str  # official source (https://... or hf://repo_id/filename)
    sha256: str  # of the downloaded file
    filename: str  # name in the cache
    num_classes: int
    labels: tuple[str, ...] = ()
    preprocessing: Preprocessing = Preprocessing()
    metrics: dict = field(default_factory=dict)  # e.g. {"k400_top1": 77.0}
    num_params: int | None = None

    @property
    def arch(self) -> str:
        return self.name.split(".")[0]


WEIGHTS: dict[str, WeightEntry] = {}


def register_weights(entry: WeightEntry) -> None:
    if entry.name in WEIGHTS:
        raise ValueError(f"weights '{entry.name}' registered twice")
    WEIGHTS[entry.name] = entry


def cache_dir() -> str:
    return os.environ.get("VIDREC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "vidrec"))


def save_pretrained(model: VideoModel, directory: str | os.PathLike) -> None:
    """Write `config.json` (architecture, config, labels, preprocessing) and `model.safetensors`.

    The config is written last, so a directory with a config always has its weights."""
    from vidrec import __version__

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(os.path.join(directory, WEIGHTS_NAME), lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    config = {
        "vidrec_version": __version__,
        "architecture": model.arch,
        "config": config_dict(model.config),
        "labels": model.labels,
        "preprocessing": model.preprocessing.to_dict(),
    }
    atomic_write_text(os.path.join(directory, CONFIG_NAME), json.dumps(config, indent=2) + "\n")


def load_state_dict_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor, naming missing, unexpected and mis-shaped keys in one error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape mismatch {shapes[:3]}" if shapes else ""]
        raise VidrecError(f"{source}: weights do not fit the model: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=True)


def _load_vidrec_dir(directory: str) -> VideoModel:
    try:
        with open(os.path.join(directory, CONFIG_NAME)) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise VidrecError(f"{directory}: unreadable {CONFIG_NAME} ({e})") from None
    if "architecture" not in config:
        raise VidrecError(f"{directory}: {CONFIG_NAME} is not a vidrec model config (no 'architecture')")
    if config["architecture"] == "two_stream":
        from vidrec.engine.two_stream import TwoStream

        return TwoStream.from_pretrained(directory, config)
    model = create_model(config["architecture"], **config.get("config", {}))
    model.preprocessing = Preprocessing.from_dict(config.get("preprocessing", {}))
    model.set_labels(config.get("labels"))
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise VidrecError(f"{directory}: no {WEIGHTS_NAME}")
    try:
        state = load_file(weights)
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise VidrecError(f"{weights}: unreadable safetensors file ({e})") from None
    load_state_dict_strict(model, state, weights)
    return model


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_weights(entry: WeightEntry, *, weights_dir: str | None = None) -> str:
    """Path of `entry`'s file: in `weights_dir`, `$VIDREC_WEIGHTS`, the cache, or downloaded into
    the cache (checked against its sha256). Offline and absent: one message saying where to put it."""
    candidates = [d for d in (weights_dir, os.environ.get("VIDREC_WEIGHTS"), cache_dir()) if d]
    for d in candidates:
        path = os.path.join(d, entry.filename)
        if os.path.exists(path):
            if entry.sha256 and sha256_of(path) != entry.sha256:
                raise VidrecError(f"{path} is not the file of weights '{entry.name}' (sha256 differs from "
                                  f"{entry.sha256[:12]}...); remove it or fetch the original from {entry.url}")
            return path
    target = os.path.join(cache_dir(), entry.filename)
    try:
        if entry.url.startswith("hf://"):
            from huggingface_hub import hf_hub_download

            repo_id, filename = entry.url[len("hf://"):].rsplit("/", 1)
            downloaded = hf_hub_download(repo_id, filename)
            atomic_write(target, lambda tmp: _copy(downloaded, tmp))
        else:
            atomic_write(target, lambda tmp: torch.hub.download_url_to_file(entry.url, tmp, progress=True))
    except Exception as e:
        raise VidrecError(
            f"weights '{entry.name}' are not on this machine and could not be downloaded from {entry.url} "
            f"({type(e).__name__}); put {entry.filename} in {cache_dir()} or a folder named by "
            f"VIDREC_WEIGHTS / --weights"
        ) from None
    if entry.sha256 and sha256_of(target) != entry.sha256:
        os.remove(target)
        raise VidrecError(f"{entry.url}: downloaded file does not match its sha256; removed it")
    return target


def _copy(src: str, dst: str) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while block := fi.read(1 << 20):
            fo.write(block)


def load_model(source: str | os.PathLike, *, device: str | torch.device = "cpu", arch: str | None = None,
               weights_dir: str | None = None) -> VideoModel:
    """A ready model in eval mode from a vidrec directory, another project's checkpoint file
    (pytorch-i3d, PyTorchVideo; `arch` names the architecture where the file cannot tell), or a
    pretrained tag (`arch.tag`, or an architecture with one default weight entry)."""
    source = os.fspath(source)
    if os.path.isdir(source):
        from vidrec.convert.videomae import is_transformers_videomae, load_transformers_videomae

        if is_transformers_videomae(source):
            model = load_transformers_videomae(source)
        elif os.path.exists(os.path.join(source, CONFIG_NAME)):
            model = _load_vidrec_dir(source)
        else:
            raise VidrecError(f"{source}: not a model directory (no {CONFIG_NAME})")
    elif os.path.isfile(source):
        from vidrec.convert import CHECKPOINT_EXTENSIONS, load_checkpoint

        if not source.endswith(CHECKPOINT_EXTENSIONS):
            raise VidrecError(f"{source}: not a model directory or a checkpoint ({', '.join(CHECKPOINT_EXTENSIONS)})")
        model = load_checkpoint(source, arch=arch)
    elif "/" in source and not source.startswith((".", "/")) and source.count("/") == 1:
        model = load_model(_hub_snapshot(source), device=device)
    else:
        model = _load_tag(source, weights_dir)
    return model.to(device).eval()


def _hub_snapshot(repo_id: str) -> str:
    """A Hugging Face hub repository (e.g. MCG-NJU/videomae-base-finetuned-kinetics) in the local
    cache, downloaded when online. Only configs and safetensors/bin weights are fetched."""
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "preprocessor_config.json", "*.safetensors", "pytorch_model.bin"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as e:
        try:  # offline: whatever the cache already holds
            return snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
        except Exception:
            raise VidrecError(f"'{repo_id}' is not in the Hugging Face cache and the hub cannot be reached "
                              f"({type(e).__name__}); download it on a machine with internet or pass a "
                              f"local directory") from None


def _load_tag(name: str, weights_dir: str | None) -> VideoModel:
    tags = [k for k in WEIGHTS if k == name or WEIGHTS[k].arch == name]
    if not tags:
        if name in list_models():
            raise ConfigError(f"'{name}' is an architecture without pretrained weights here; train one "
                              f"(vidrec train) or pass a model directory")
        raise ConfigError(unknown_name_message("model or weights", name, list_models() + list(WEIGHTS)))
    entry = WEIGHTS[tags[0]]
    path = fetch_weights(entry, weights_dir=weights_dir)
    if path.endswith(".tflite"):  # an official TFLite export: the architecture comes from the file
        from vidrec.convert.tflite import load_tflite_movinet

        model = load_tflite_movinet(path)
    else:
        model = create_model(entry.arch, num_classes=entry.num_classes)
        load_state_dict_strict(model, load_file(path), path)
    model.preprocessing = entry.preprocessing
    model.set_labels(list(entry.labels) or None)
    return model
