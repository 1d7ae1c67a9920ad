"""Exported graphs kept in a cache folder by the fingerprint of the model they were exported from,
so every command and the service share one export per set of weights."""

from __future__ import annotations

import json
import os

import torch

from vidrec.models.base import ModelBase
from vidrec.utils import atomic_write, state_fingerprint


def _fingerprint(model: ModelBase, kind: str) -> str:
    """What the exported graph depends on: the model's class, config, input shape, weights and
    torch's version (its exporter)."""
    config = json.dumps(model.config_json(), sort_keys=True, default=str)
    return state_fingerprint(model, kind, type(model).__name__, torch.__version__, config)


def cached_graph(model: ModelBase, kind: str, cache: str | None, build, *, suffix: str = ".onnx") -> bytes:
    """The exported graph of `model` (`kind`: what was exported; `build()` exports it, giving its
    bytes), from the folder `cache` when it holds this very model's export, else built and kept there."""
    cached = os.path.join(cache, f"{kind}-{_fingerprint(model, kind)}{suffix}") if cache else None
    if cached and os.path.exists(cached):
        with open(cached, "rb") as f:
            return f.read()
    data = build()
    if cached:
        os.makedirs(cache, exist_ok=True)
        atomic_write(cached, lambda tmp: open(tmp, "wb").write(data))
    return data


__all__ = ["cached_graph"]
