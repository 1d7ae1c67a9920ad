"""Output folders that record what they were made with, so two runs never mix their outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from vidrec.errors import ConfigError
from vidrec.utils import atomic_write_text


def claim_folder(folder: str, name: str, meta: dict, refusal: Callable[[dict], str]) -> None:
    """`folder/name` holds the settings `meta` the folder's contents are made with: written when
    absent (the folder made too); if it holds other settings, `ConfigError(refusal(theirs))`."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"{folder}: exists and is not a folder")
    path = os.path.join(folder, name)
    meta = json.loads(json.dumps(meta))  # as it reads back: tuples become lists
    if os.path.exists(path):
        with open(path) as f:
            theirs = json.load(f)
        if theirs != meta:
            raise ConfigError(refusal(theirs))
        return
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


__all__ = ["claim_folder"]
