"""The models a session runs: loaded by name, path or tag, once, and put in their inference form
(`Inference`: who runs them, at what precision). The command line holds one `Models` for one
command; the service holds one for its lifetime and shares it between jobs."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from vidrec.deploy import optimize_for_inference, to_int8
from vidrec.deploy.precision import to_bfloat16
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import DetectionModel, ImageDetector, ModelBase, SpottingModel, StreamingModel
from vidrec.models.loader import load_model
from vidrec.runtime import on_litert, on_onnxruntime

BACKENDS = ("pytorch", "onnxruntime", "litert")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Inference:
    """The form a model runs in: PyTorch (batch norms folded, float32 or bfloat16 autocast, or
    `int8`: the int8 TFLite runtime's arithmetic), or another runtime on its exported graph."""

    backend: str = "pytorch"  # or "onnxruntime", "litert" (MoViNet streams)
    precision: str = "fp32"  # or "bf16" (PyTorch only)
    int8: bool = False  # compute as the int8 runtime of the file the weights came from (PyTorch only)
    device: str = "cpu"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ConfigError(unknown_name_message("backend", self.backend, list(BACKENDS)))
        if self.precision not in PRECISIONS:
            raise ConfigError(unknown_name_message("precision", self.precision, list(PRECISIONS)))
        if self.backend != "pytorch" and (self.int8 or self.precision != "fp32"):
            raise ConfigError(
                f"--int8 and --precision are PyTorch forms; with --backend {self.backend} leave them out"
            )
        if self.int8 and self.precision != "fp32":
            raise ConfigError("--int8 computes as the int8 runtime does; --precision does not apply to it")


def for_inference(model: ModelBase, inference: Inference = Inference()) -> ModelBase:
    """`model` in the form `inference` asks for: another runtime (exported once, kept in the cache
    folder's onnx/ or tflite/), the int8 form, or PyTorch with batch norms folded, in float32 or
    bfloat16 autocast."""
    if inference.backend == "onnxruntime":
        return on_onnxruntime(model)
    if inference.backend == "litert":
        return on_litert(model)
    if inference.int8:
        return to_int8(model)
    model = optimize_for_inference(model)
    return to_bfloat16(model) if inference.precision == "bf16" else model


def clip_model(model: ModelBase) -> ModelBase:
    """`model`, or a one-line error if it finds things in images instead of recognising actions."""
    if isinstance(model, ImageDetector):
        raise ConfigError(
            f"{model.arch} finds people and objects in frames (boxes out); it does not classify "
            f"clips: give a video model"
        )
    return model


def spot_free(model: ModelBase) -> ModelBase:
    """`model`, or a one-line error if it is an event spotter (it reads features, not frames)."""
    if isinstance(model, SpottingModel):
        raise ConfigError(f"{model.arch} spots events on another model's features: use vidrec spot")
    return model


def share_cores(model: ModelBase) -> None:
    """A stream model whose step runs in another runtime runs on that runtime's threads, one frame
    at a time between PyTorch's resizing of the next: PyTorch's OpenMP threads, spinning after
    each op, would take a core from it, so PyTorch keeps one thread (bench/movinet.py measures
    it). Clip models decode first and run after: they keep PyTorch's threads."""
    if model.backend != "pytorch" and isinstance(model, StreamingModel):
        torch.set_num_threads(1)


class Models:
    """The models offered, by name (the first is the default), each loaded on first use, once, in
    its inference form and shared; the person detector likewise (its network on the same backend,
    so two runtimes do not contend for the cores)."""

    def __init__(
        self,
        names: list[str],
        *,
        detector: str = "ssd_mobilenet_v1.coco_uint8",
        weights: str | None = None,
        inference: Inference = Inference(),
    ):
        if not names:
            raise ConfigError("at least one model is needed")
        self.names, self.detector_name, self.weights = list(names), detector, weights
        self.inference = inference
        self.loaded: dict[str, ModelBase] = {}
        self.lock = threading.Lock()

    def load(self, name: str | None = None) -> ModelBase:
        """The offered model `name` (default: the first) in its inference form, loaded now if it
        was not yet: a video model as `get` gives it, an event spotter as it is."""
        name = name or self.names[0]
        if name not in self.names:
            raise ConfigError(unknown_name_message("model", name, self.names))
        return self._load(name, self._form)

    def _form(self, model: ModelBase) -> ModelBase:
        return (
            model.eval()
            if isinstance(model, SpottingModel)
            else for_inference(clip_model(model), self.inference)
        )

    def get(self, name: str | None = None) -> ModelBase:
        """The video model `name` (default: the first), loaded now if it was not yet."""
        return spot_free(self.load(name))

    def spotter(self, name: str | None = None) -> tuple[SpottingModel, ModelBase]:
        """The event spotter `name` (default: the first) and the extractor whose features it
        reads (its config's `extractor`, in the inference form), both loaded now if not yet."""
        spotter = self.load(name)
        if not isinstance(spotter, SpottingModel):
            raise ConfigError(f"{spotter.arch} is not an event spotter (a vidrec train run of task spotting)")
        if not spotter.config.extractor:
            raise ConfigError(
                f"{spotter.arch} does not say which model its features come from (its extractor)"
            )
        return spotter, spot_free(self._load(spotter.config.extractor, self._form))

    def detector(self) -> ModelBase:
        """The person detector, loaded now if it was not yet."""

        def form(model: ModelBase) -> ModelBase:
            if not isinstance(model, ImageDetector):
                raise ConfigError(f"{model.arch} is not a person detector (e.g. ssd_mobilenet_v1.coco_uint8)")
            if self.inference.backend == "onnxruntime":
                return on_onnxruntime(model)
            if self.inference.backend == "litert" and model.source_file is not None:
                return on_litert(model)  # the official file as shipped
            return model

        return self._load(self.detector_name, form)

    def _load(self, name: str, form) -> ModelBase:
        with self.lock:  # two first requests load it once
            if name not in self.loaded:
                model = load_model(name, device=self.inference.device, weights_dir=self.weights)
                self.loaded[name] = form(model)
            return self.loaded[name]

    def describe(self) -> list[dict]:
        """Per offered model: name, default, loaded and (once loaded) arch, classes, kind (clip,
        stream, spotter or detector)."""
        out = []
        for i, name in enumerate(self.names):
            entry = {"name": name, "default": i == 0, "loaded": name in self.loaded}
            model = self.loaded.get(name)
            if model is not None:
                kinds = ((DetectionModel, "detector"), (SpottingModel, "spotter"), (StreamingModel, "stream"))
                kind = next((what for cls, what in kinds if isinstance(model, cls)), "clip")
                entry.update(arch=model.arch, classes=model.num_classes, kind=kind)
            out.append(entry)
        return out


__all__ = ["BACKENDS", "Inference", "Models", "clip_model", "for_inference", "share_cores"]
