"""Models run by another runtime than PyTorch, from their exported graphs: ONNX Runtime
(`vidrec.runtime.onnxruntime`) and the TFLite runtime (`vidrec.runtime.litert`). Each graph is
exported once per set of weights and kept in the cache folder (`vidrec.export.cache`)."""

from __future__ import annotations

import os

from vidrec.models.base import ImageDetector, ModelBase
from vidrec.models.download import cache_dir


def on_onnxruntime(model: ModelBase) -> ModelBase:
    """`model` run by ONNX Runtime (vidrec[onnx]), its graph exported once per set of weights and
    kept in the cache folder's onnx/, so every command and the service share one export."""
    from vidrec.runtime.onnxruntime import to_onnxruntime

    return to_onnxruntime(model, cache=os.path.join(cache_dir(), "onnx"))


def on_litert(model: ModelBase) -> ModelBase:
    """A MoViNet stream model whose step runs in the TFLite runtime (vidrec[litert]), its graph
    converted once per set of weights and kept in the cache folder's tflite/; an image detector
    read from its official .tflite file runs that file as shipped."""
    from vidrec.runtime.litert import shipped_detector, to_litert

    if isinstance(model, ImageDetector):
        return shipped_detector(model)
    return to_litert(model, cache=os.path.join(cache_dir(), "tflite"))


__all__ = ["on_litert", "on_onnxruntime"]
