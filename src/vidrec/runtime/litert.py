"""The TFLite runtime (LiteRT, XNNPACK) running MoViNet's stream step: `--backend litert`, the check
of an exported `.tflite` file, and the official int8 file run as its authors ship it
(`LiteRTStream`, the reference vidrec's own step is measured against); and the person detector's
official uint8 file as shipped (`ShippedSSD`), read before its post-processing op."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidrec.errors import ConfigError
from vidrec.export.cache import cached_graph
from vidrec.export.tflite import (
    FORM,
    head_tflite_bytes,
    sample_inputs,
    state_layout,
    tflite_bytes,
    zero_state,
)
from vidrec.models.base import ImageDetector
from vidrec.models.movinet import MoViNet
from vidrec.runtime.graph import GraphState, GraphStep, state_arrays
from vidrec.runtime.model import RuntimeImageDetector, RuntimeStreamModel
from vidrec.utils import scaled_gap


class LiteRTGraph:
    """A TFLite graph in the TFLite runtime (threads: PyTorch's unless given): `graph.run({name: array})` ->
    `{name: array}` by its signature's names, or `graph(*arrays)` -> list in the traced order
    (litert-torch's `args_0, ...` / `output_0, ...`). Tensors are allocated once; the runtime's
    signature runner resizes and re-allocates them on every call, which costs a stream step more
    than its convolutions."""

    def __init__(self, data: bytes, *, num_threads: int | None = None):
        self.data, self.num_threads = data, num_threads
        self._open()

    def _open(self) -> None:
        self.interpreter = _interpreter(self.num_threads, model_content=self.data)
        runner = self.interpreter.get_signature_runner()
        self.input_details, self.output_details = runner.get_input_details(), runner.get_output_details()

        def order(name: str) -> int:
            return int(name.rsplit("_", 1)[1]) if name.rsplit("_", 1)[-1].isdigit() else -1

        self.inputs = sorted(self.input_details, key=order)
        self.outputs = sorted(self.output_details, key=order)
        # tensor indices in traced order, looked up once: a stream step sets and gets ~30 of them
        self._in_index = [self.input_details[n]["index"] for n in self.inputs]
        self._out_index = [self.output_details[n]["index"] for n in self.outputs]

    def _invoke(self, indices, arrays) -> None:
        set_tensor = self.interpreter.set_tensor
        for index, value in zip(indices, arrays):
            set_tensor(index, value)
        self.interpreter.invoke()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by name, after one invoke on `inputs` (every input, by name)."""
        self._invoke((self.input_details[n]["index"] for n in inputs), inputs.values())
        return {name: self.interpreter.get_tensor(d["index"]) for name, d in self.output_details.items()}

    def __call__(self, *arrays: np.ndarray, skip: frozenset[int] = frozenset()) -> list[np.ndarray | None]:
        """The outputs in order after one invoke on `arrays` (in order); None for those in `skip`,
        which are not copied out."""
        self._invoke(self._in_index, arrays)
        get = self.interpreter.get_tensor
        return [None if i in skip else get(index) for i, index in enumerate(self._out_index)]

    def __getstate__(self) -> dict:
        return {"data": self.data, "num_threads": self.num_threads}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()


def _interpreter(num_threads: int | None = None, **kwargs):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError(
            "running .tflite files needs ai-edge-litert: pip install 'vidrec[litert]'"
        ) from None
    interpreter = Interpreter(num_threads=num_threads or torch.get_num_threads(), **kwargs)
    interpreter.allocate_tensors()
    return interpreter


class ShippedSSD:
    """The SSD's official uint8 `.tflite` file in the TFLite runtime as a graph of the PyTorch
    model's outputs: `graph(images (B, 3, S, S) in [-1, 1])` -> `[box encodings (B, A, 4), class
    logits (B, A, 1 + classes)]`, read before the file's post-processing op (whose NMS keeps 10
    boxes of any class) so that vidrec's postprocess decodes them (people scored as people). The
    logits are the inverse sigmoid of the file's uint8 probabilities, which the postprocess's
    sigmoid gives back. One image per invoke (the file's batch is 1)."""

    ENCODINGS, SCORES = "Squeeze", "convert_scores"  # the post-processing op's inputs

    def __init__(self, path: str, *, num_threads: int | None = None):
        self.path, self.num_threads = path, num_threads
        self._open()

    def _open(self) -> None:
        self.interpreter = _interpreter(
            self.num_threads, model_path=self.path, experimental_preserve_all_tensors=True
        )
        tensors = {d["name"]: d for d in self.interpreter.get_tensor_details()}
        if any(
            n not in tensors or tensors[n]["dtype"] is not np.uint8 for n in (self.ENCODINGS, self.SCORES)
        ):
            raise ConfigError(f"{self.path}: not the SSD MobileNet file whose post-processing vidrec reads")
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.encodings, self.scores = (tensors[n]["index"] for n in (self.ENCODINGS, self.SCORES))
        # every uint8 value's dequantised box encoding and logit, computed once: a look-up per
        # anchor and class, where two logarithms of 174k values a frame took longer than the network
        codes = np.arange(256, dtype=np.float32)
        scale, zero = tensors[self.ENCODINGS]["quantization"]
        self.encoding_of = (codes - zero) * scale
        scale, zero = tensors[self.SCORES]["quantization"]
        p = np.clip((codes - zero) * scale, 1e-6, 1 - 1e-6)
        self.logit_of = np.log(p) - np.log1p(-p)

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        pixels = np.clip(np.rint(images * 128 + 128), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        encodings, logits = [], []
        for image in pixels:
            self.interpreter.set_tensor(self.input, image[None])
            self.interpreter.invoke()
            encodings.append(self.encoding_of[self.interpreter.get_tensor(self.encodings)])
            logits.append(self.logit_of[self.interpreter.get_tensor(self.scores)])
        return [np.concatenate(encodings), np.concatenate(logits)]

    def __getstate__(self) -> dict:
        return {"path": self.path, "num_threads": self.num_threads}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()


def shipped_detector(model: ImageDetector) -> RuntimeImageDetector:
    """`model` run by the TFLite runtime from the official file its weights came from."""
    if model.source_file is None:
        raise ConfigError(
            f"{model.arch} was not read from a .tflite file in this session: the TFLite runtime runs "
            f"the detector's official file (load it by its tag or its .tflite)"
        )
    return RuntimeImageDetector(model, ShippedSSD(model.source_file), backend="litert")


class _Step(GraphStep):
    """`step` / `step_features` / `init_state` of a MoViNet by its TFLite graph. The state is the
    graph's: named tensors in `state_layout`'s order (buffers as channels-last frames)."""

    def __init__(self, graph: LiteRTGraph, model: MoViNet):
        layout = state_layout(model)
        self.graph, self.names = graph, [n for n, _, _ in layout]
        self.zeros = [z.numpy() for z in zero_state(model)]
        # a buffer's older frames come out as they went in, one place on: reuse them, no copy
        self.carried = {
            i: i + 1
            for i, (_, owner, j) in enumerate(layout[:-1])
            if j >= 0 and layout[i + 1][1:] == (owner, j + 1)
        }
        self.skip = frozenset(2 + i for i in self.carried)  # outputs: logits, features, then the state
        size = model.preprocessing.test_crop_size or model.preprocessing.crop_size
        self.frame_size = (size, size)

    def run(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        if frames.shape[0] != 1 or tuple(frames.shape[-2:]) != self.frame_size:
            raise ConfigError(
                f"the TFLite step takes batch 1 at {self.frame_size[0]}x{self.frame_size[1]}, "
                f"got frames {tuple(frames.shape)}"
            )
        arrays = state_arrays(state, self.names)  # this graph's own state: no conversion
        feats = []
        for t in range(frames.shape[2]):  # one frame a run
            frame = frames[:, :, t].float().numpy()  # (1, C, H, W)
            logits, feat, *new = self.graph(np.ascontiguousarray(frame), *arrays, skip=self.skip)
            arrays = [arrays[self.carried[i]] if i in self.carried else a for i, a in enumerate(new)]
            feats.append(feat)
        feats = torch.from_numpy(np.stack(feats, axis=1))
        return torch.from_numpy(logits), feats, GraphState(self.names, arrays)


def to_litert(model: MoViNet, *, cache: str | None = None) -> RuntimeStreamModel:
    """`model` (a MoViNet stream model) run by the TFLite runtime: its step and its classifier as
    TFLite graphs, converted once per set of weights when `cache` is a folder, in a
    `RuntimeStreamModel` that keeps no PyTorch weights."""
    if "tflite" not in model.forms or model.backend != "pytorch":
        raise ConfigError(f"--backend litert runs MoViNet stream models, not {model.arch}: use onnxruntime")
    if model.device.type != "cpu":
        raise ConfigError("--backend litert runs on the CPU: leave out --device")
    model = model.eval()
    data = cached_graph(model, f"step-v{FORM}", cache, lambda: tflite_bytes(model), suffix=".tflite")
    head = cached_graph(model, "head", cache, lambda: head_tflite_bytes(model), suffix=".tflite")
    step = _Step(LiteRTGraph(data), model)
    return RuntimeStreamModel(
        model, step, LiteRTGraph(head), names=step.names, zeros=step.zeros, batched=False, backend="litert"
    )


class LiteRTStream:
    """The TFLite runtime (`ai-edge-litert`) running a MoViNet stream file one frame at a time, as
    its signature wants: `image` (1, 1, H, W, 3) RGB in [0, 1] plus every state, fed back each call."""

    def __init__(self, path: str, *, num_threads: int = 2):
        with open(path, "rb") as f:
            self.graph = LiteRTGraph(f.read(), num_threads=num_threads)
        self.reset()

    def reset(self) -> None:
        """Back to the zero state (a new stream)."""
        details = self.graph.input_details
        self.state = {n: np.zeros(d["shape"], d["dtype"]) for n, d in details.items() if n != "image"}

    def step(self, frame: np.ndarray) -> np.ndarray:
        """`frame` (H, W, 3) float32 in [0, 1] -> logits (classes,) for the stream so far."""
        out = self.graph.run({"image": frame[None, None].astype(np.float32, copy=False), **self.state})
        self.state = {n: out[n] for n in self.state}
        return out["logits"][0]


def check_tflite_stream(model: MoViNet, path: str | os.PathLike, *, steps: int = 4) -> float:
    """The largest difference of the logits over their scale (`scaled_gap`), step after step with
    the state fed back, between the TFLite runtime on `path` and `model.step` (PyTorch)."""
    with open(path, "rb") as f:
        step = _Step(LiteRTGraph(f.read()), model)
    frame = sample_inputs(model)[0][:, :, None]  # (1, C, 1, H, W)
    ours, theirs = model.eval().init_state(1), GraphState(step.names, list(step.zeros))
    worst = 0.0
    for i in range(steps):
        frames = frame.roll(i, dims=-1)  # a different picture each step
        with torch.no_grad():
            expected, ours = model.step(frames, ours)
        got, theirs = step.step(frames, theirs)
        worst = max(worst, scaled_gap(got.numpy(), expected.numpy()))
    return worst


__all__ = [
    "LiteRTGraph",
    "LiteRTStream",
    "ShippedSSD",
    "check_tflite_stream",
    "shipped_detector",
    "to_litert",
]
