"""`to_onnxruntime(model)`: the same model, run by ONNX Runtime (`--backend onnxruntime`): the model is
exported (`vidrec.export.onnx`), once per set of weights when a cache folder is given, and wrapped
in the `vidrec.runtime.model` class of its kind, which keeps the graphs and no PyTorch weights:

    classifier / detector   forward(video[, boxes])    the exported forward
    image detector (SSD)    forward(images)            the exported forward (decoding and NMS stay
                                                       in PyTorch, in the detector's postprocess)
    stream model            step(frames, state)        the exported step (one frame a run: a chunk
                            step_features(...)         of t frames is t runs), state as the graph's
                                                       arrays; forward_head: the exported classifier

The session is rebuilt from the ONNX bytes when the model is unpickled (DataLoader workers, Ray).
"""

from __future__ import annotations

import copy
import os
import tempfile

import numpy as np
import torch

from vidrec.errors import ConfigError
from vidrec.export.cache import cached_graph
from vidrec.export.onnx import StreamStep, export_module, export_onnx, stream_inputs
from vidrec.models.base import DetectionModel, ImageDetector, ModelBase, StreamingModel, TwoStreamModel
from vidrec.runtime.graph import GraphState, GraphStep, state_arrays
from vidrec.runtime.model import (
    RuntimeActionDetector,
    RuntimeClassifier,
    RuntimeImageDetector,
    RuntimeModel,
    RuntimeStreamModel,
    numpy_of,
)


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("--backend onnxruntime needs onnxruntime: pip install 'vidrec[onnx]'") from None
    return onnxruntime


class OrtGraph:
    """An ONNX graph in an ONNX Runtime session: `graph(*arrays) -> list of arrays`; threads as
    PyTorch's (`torch.get_num_threads()`), not spinning between runs; CUDA when asked for and present."""

    def __init__(self, onnx_bytes: bytes, *, cuda: bool = False):
        self.onnx_bytes, self.cuda = onnx_bytes, cuda
        self._open()

    def _open(self) -> None:
        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # No spinning: its threads would busy-wait after each run while this process decodes, crops
        # or runs PyTorch (OpenMP) between runs, and each side would take the other's cores
        # (bench/people.py and bench/movinet.py time both settings; only a bare loop of
        # back-to-back steps gains from spinning).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(self.onnx_bytes, options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(zip(self.input_names, arrays)))
        except Exception as e:  # its own types (InvalidArgument, Fail...): one line for the user
            if not type(e).__module__.startswith("onnxruntime"):
                raise
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise ConfigError(f"ONNX Runtime: {'; '.join(lines)}") from None

    def __getstate__(self) -> dict:
        return {"onnx_bytes": self.onnx_bytes, "cuda": self.cuda}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()


class _Step(GraphStep):
    """A stream model's `step` and `step_features` by one exported graph:
    `(frame (B, C, 1, H, W), *state) -> (logits, features, *next state)`."""

    def __init__(self, graph: OrtGraph, names: list[str]):
        self.graph, self.names = graph, names

    def run(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        arrays = state_arrays(state, self.names)  # this graph's own state: no conversion
        b = frames.shape[0]  # a state with one frame count for all rows (PyTorch's) gets one per row
        arrays = [np.full(b, a, np.float32) if a.ndim == 0 else a for a in arrays]
        feats = []
        for t in range(frames.shape[2]):  # the graph takes one frame: a chunk is that many runs
            logits, feat, *arrays = self.graph(numpy_of(frames[:, :, t : t + 1]), *arrays)
            feats.append(feat)
        device = frames.device
        if device.type == "cpu":
            new_state = GraphState(self.names, arrays)
        else:  # the caller's device (CUDA): tensors there, as PyTorch's step gives
            new_state = {n: torch.from_numpy(a).to(device) for n, a in zip(self.names, arrays)}
        features = torch.from_numpy(np.concatenate(feats, axis=1)).to(device)
        return torch.from_numpy(logits).to(device), features, new_state


def _stream_graph(model: StreamingModel, path: str) -> None:
    """Export the stream step graph of `model` to `path` (each frame's features after the logits)."""
    from vidrec.deploy import fuse_conv_bn

    fused = fuse_conv_bn(copy.deepcopy(model).eval())
    names, inputs = stream_inputs(fused, batch=2, frames=1)
    # a frame count per row (B,), not one for all: one run steps streams of different ages
    inputs = tuple(x.reshape(1).expand(2).contiguous() if x.ndim == 0 else x for x in inputs)
    module = StreamStep(fused, names, features=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = ({0: batch}, tuple({0: batch} for _ in inputs[1:]))
    outputs = ["logits", "features", *(f"next_{n}" for n in names)]
    export_module(module, inputs, path, ["frames", *names], outputs, shapes, None)


class _Head(torch.nn.Module):
    """A stream model's classifier on pooled features `(B, P)`: what a window's mean goes through."""

    def __init__(self, model: StreamingModel):
        super().__init__()
        self.model = model

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(pooled)


def _head_graph(model: StreamingModel, path: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    pooled = torch.zeros(2, model.num_features)
    export_module(
        _Head(copy.deepcopy(model).eval()), (pooled,), path, ["pooled"], ["logits"], ({0: batch},), None
    )


def _onnx_bytes(model: ModelBase, kind: str) -> bytes:
    """The ONNX bytes of `model`'s forward (`kind` "forward"), stream step with a frame count per
    row ("step-rows") or classifier on pooled features ("head")."""
    with tempfile.TemporaryDirectory(prefix="vidrec-onnx-") as folder:
        path = os.path.join(folder, "model.onnx")
        if kind == "step-rows":
            _stream_graph(model, path)
        elif kind == "head":
            _head_graph(model, path)
        else:
            export_onnx(model, path)
        with open(path, "rb") as f:
            return f.read()


def _graph(model: ModelBase, kind: str, cache: str | None) -> bytes:
    return cached_graph(model, kind, cache, lambda: _onnx_bytes(model, kind))


def to_onnxruntime(model: ModelBase, *, cache: str | None = None) -> RuntimeModel:
    """`model` run by ONNX Runtime: the runtime model of its kind (see the module's docstring). The
    export takes seconds to a minute; with `cache` (a folder) it is done once per model and read
    back after. On a CUDA model the graphs run on ONNX Runtime's CUDA provider when it has one."""
    if model.backend != "pytorch":
        raise ConfigError(f"{model.arch} already runs in {model.backend}")
    if isinstance(model, TwoStreamModel):
        raise ConfigError("--backend onnxruntime runs one network; a two-stream model is two: use pytorch")
    device = model.device
    cuda = device.type == "cuda"
    model = model.eval()
    if isinstance(model, StreamingModel):
        graph = OrtGraph(_graph(model, "step-rows", cache), cuda=cuda)
        names = [n for n in graph.input_names if n != "frames"]
        size = model.preprocessing.test_crop_size or model.preprocessing.crop_size
        state = model.init_state(1, height=size, width=size)
        zeros = [numpy_of(state[n]).reshape(-1, *state[n].shape[1:]) for n in names]  # counts: (1,)
        head = OrtGraph(_graph(model, "head", cache), cuda=cuda)
        return RuntimeStreamModel(
            model, _Step(graph, names), head, names=names, zeros=zeros, batched=True,
            backend="onnxruntime", device=device,
        )  # fmt: skip
    forward = OrtGraph(_graph(model, "forward", cache), cuda=cuda)
    kinds = ((ImageDetector, RuntimeImageDetector), (DetectionModel, RuntimeActionDetector))
    wrapper = next((w for kind, w in kinds if isinstance(model, kind)), RuntimeClassifier)
    return wrapper(model, forward, backend="onnxruntime", device=device)


__all__ = ["OrtGraph", "to_onnxruntime"]
