"""vidrec: video action recognition (I3D, SlowFast, VideoMAE, MoViNet) in one small code base.

import vidrec
model = vidrec.load_model("movinet_a0_stream")        # or a directory, a checkpoint, a hub id
vidrec.predict(model, "clip.mp4")                     # {"video", "predictions", "views", ...}
vidrec.create_model("slowfast_r50_8x8", num_classes=10)

The entry points load on first use, so `import vidrec` (and `vidrec --help`) needs no torch.
"""

from __future__ import annotations

import importlib

from vidrec._version import __version__

# name -> the module that holds it
_ENTRY_POINTS = {
    "create_model": "vidrec.models.registry",
    "list_models": "vidrec.models.registry",
    "load_model": "vidrec.models.loader",
    "save_model": "vidrec.models.loader",
    "predict": "vidrec.recognize.predict",
}


def __getattr__(name: str):
    if name in _ENTRY_POINTS:
        value = getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
        globals()[name] = value  # looked up once
        return value
    try:  # a subpackage used as an attribute after `import vidrec` (vidrec.models, vidrec.io, ...)
        return importlib.import_module(f"vidrec.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"vidrec.{name}":
            raise
    raise AttributeError(f"module 'vidrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ENTRY_POINTS])


__all__ = ["__version__", "create_model", "list_models", "load_model", "predict", "save_model"]
