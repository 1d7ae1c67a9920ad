"""`to_onnxruntime(model)`: the same model, run by ONNX Runtime (`--backend onnxruntime`).

A conversion like the others in `vidrec.deploy`: the model is exported (`vidrec.export.onnx`) and
a copy of it gets ONNX Runtime callables in place of its methods, so every command that takes a
model (predict, stream, detect, predict --list) takes this one unchanged:

    classifier / detector   forward(video[, boxes])    the exported graph
    image detector (SSD)    forward(images)            the exported graph (detect's decoding and
                                                       NMS stay in PyTorch)
    stream model            step(frames, state)        the exported step (one frame a run: a chunk
                            step_features(...)         of t frames is t runs), state as named tensors
                            forward(clip)              the clip streamed from the zero state
                            forward_head(pooled)       PyTorch: the classifier on a pooled vector
                                                       (a window's mean), a few thousand MACs

The PyTorch weights stay in the copy (its device and `init_state`'s shapes come from them). The
session is rebuilt from the ONNX bytes when the model is unpickled (DataLoader workers, Ray).
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
from vidrec.models.base import ModelBase, StreamingModel, TwoStreamModel
from vidrec.runtime.graph import GraphState, GraphStep, Refuse, state_arrays


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
        # or runs PyTorch (OpenMP) between runs, and each side would take the other's cores. Measured
        # on 2 cores: `vidrec detect` 1.8x faster end to end, `stream` 1.5x, big clip models the same;
        # only a bare loop of back-to-back MoViNet steps loses (0.8x).
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


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


class _Forward:
    """`forward(*inputs)` of a classifier or detector, by its exported graph: its one output, or
    the tuple of them (an image detector's box encodings and logits)."""

    def __init__(self, graph: OrtGraph):
        self.graph = graph

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        device = inputs[0].device
        outputs = tuple(torch.from_numpy(y).to(device) for y in self.graph(*(_numpy(x) for x in inputs)))
        return outputs if len(outputs) > 1 else outputs[0]


class _Step(GraphStep):
    """A stream model's `step` and `step_features` by one exported graph:
    `(frame (B, C, 1, H, W), *state) -> (logits, [features,] *next state)`."""

    def __init__(self, graph: OrtGraph, names: list[str], features: bool):
        self.graph, self.names, self.features = graph, names, features

    def run(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        arrays = state_arrays(state, self.names)  # this graph's own state: no conversion
        feats = []
        for t in range(frames.shape[2]):  # the graph takes one frame: a chunk is that many runs
            logits, *rest = self.graph(_numpy(frames[:, :, t : t + 1]), *arrays)
            if self.features:
                feats.append(rest[0])
                rest = rest[1:]
            arrays = rest
        device = frames.device
        if device.type == "cpu":
            new_state = GraphState(self.names, arrays)
        else:  # the caller's device (CUDA): tensors there, as PyTorch's step gives
            new_state = {n: torch.from_numpy(a).to(device) for n, a in zip(self.names, arrays)}
        features = torch.from_numpy(np.concatenate(feats, axis=1)).to(device) if feats else None
        return torch.from_numpy(logits).to(device), features, new_state


class _StreamForward:
    """`forward(clip)` of a stream model: the clip streamed from the zero state."""

    def __init__(self, step: _Step, init_state):
        self.step, self.init_state = step, init_state

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        state = self.init_state(clip.shape[0], height=clip.shape[-2], width=clip.shape[-1])
        return self.step.step(clip, state)[0]


def _stream_graph(model: StreamingModel, path: str) -> tuple[list[str], bool]:
    """Export the stream step graph of `model` to `path`; its state names, and whether it gives
    each frame's features."""
    from vidrec.deploy import fuse_conv_bn

    fused = fuse_conv_bn(copy.deepcopy(model).eval())
    names, inputs = stream_inputs(fused, batch=2, frames=1)
    module = StreamStep(fused, names, features=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = ({0: batch}, tuple({0: batch} if x.ndim else {} for x in inputs[1:]))
    outputs = ["logits", *(["features"] if module.features else []), *(f"next_{n}" for n in names)]
    export_module(module, inputs, path, ["frames", *names], outputs, shapes, None)
    return names, module.features


def _onnx_bytes(model: ModelBase, kind: str) -> bytes:
    """The ONNX bytes of `model`'s forward (`kind` "forward") or stream step ("step")."""
    with tempfile.TemporaryDirectory(prefix="vidrec-onnx-") as folder:
        path = os.path.join(folder, "model.onnx")
        if kind == "step":
            _stream_graph(model, path)
        else:
            export_onnx(model, path)
        with open(path, "rb") as f:
            return f.read()


def _graph(model: ModelBase, kind: str, cache: str | None) -> bytes:
    return cached_graph(model, kind, cache, lambda: _onnx_bytes(model, kind))


def _on_cuda(model: ModelBase) -> bool:
    return next(model.parameters()).device.type == "cuda"


def to_onnxruntime(model: ModelBase, *, cache: str | None = None) -> ModelBase:
    """A copy of `model` whose forward (and a stream model's step) run in ONNX Runtime; see the
    module's docstring. The export takes seconds to a minute; with `cache` (a folder) it is done
    once per model and read back after."""
    if isinstance(model, TwoStreamModel):
        raise ConfigError("--backend onnxruntime runs one network; a two-stream model is two: use pytorch")
    converted = copy.deepcopy(model).eval()
    cuda = _on_cuda(model)
    if isinstance(model, StreamingModel):
        graph = OrtGraph(_graph(model, "step", cache), cuda=cuda)
        names = [n for n in graph.input_names if n != "frames"]
        step = _Step(graph, names, features="features" in graph.output_names)
        converted.step = step.step
        if step.features:
            converted.step_features = step.step_features
        converted.forward = _StreamForward(step, converted.init_state)
    else:
        converted.forward = _Forward(OrtGraph(_graph(model, "forward", cache), cuda=cuda))
    converted.forward_features = Refuse(f"{model.arch}'s forward_features")
    converted.backend = "onnxruntime"
    return converted


__all__ = ["OrtGraph", "to_onnxruntime"]
