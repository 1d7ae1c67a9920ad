"""ONNX: a model exported as a graph ONNX Runtime (or any ONNX backend) runs without PyTorch.

    classifier   video (B, C, T, H, W) float ─> logits (B, classes)
    detector     video (B, C, T, H, W), boxes (K, 5) [batch index, x1, y1, x2, y2] ─> logits (K, classes)
    image        images (B, 3, S, S) ─> box_encodings (B, A, 4), logits (B, A, 1 + classes)
    detector     (SSD: the network; anchor decoding and NMS stay in PyTorch, a few ms)
    stream step  frames (B, C, t, H, W), every state tensor by name ─> logits, next_<name> for each
                 (a stream model's `step`, the caller feeding the outputs back: `export_onnx_stream`)

The batch (and a detector's box count) is dynamic; the clip's frames and size are the model's
test input (`preprocessing`), fixed in the graph. SlowFast keeps vidrec's single input: the Slow
pathway's frames are taken inside the graph, as in `forward`. The export is torch's own
(`torch.onnx.export`, the dynamo exporter), on the inference form of the model (batch norms
folded into their convolutions), and `check_onnx` runs the file in ONNX Runtime against the
PyTorch model on random clips.
"""

from __future__ import annotations

import copy
import os
import warnings

import torch

from vidrec.deploy import fuse_conv_bn
from vidrec.errors import ConfigError
from vidrec.models.base import DetectionModel, ImageDetector, ModelBase, PretrainingModel, StreamingModel
from vidrec.utils import atomic_write, scaled_gap


def example_inputs(model: ModelBase, *, batch: int = 1, boxes: int = 2) -> tuple[torch.Tensor, ...]:
    """Random inputs of the model's test shape: `(video,)`, `(video, boxes)` for a detector,
    `(images,)` for an image detector."""
    if isinstance(model, PretrainingModel):
        raise ConfigError(f"{model.arch} is a pretraining model: export its fine-tuned classifier instead")
    generator = torch.Generator().manual_seed(0)
    if isinstance(model, ImageDetector):
        size = model.config.image_size
        return (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,)  # its [-1, 1] input
    p = model.preprocessing
    size = p.test_crop_size or p.crop_size
    video = torch.randn(batch, 3, p.num_frames, size, size, generator=generator)
    if not isinstance(model, DetectionModel):
        return (video,)
    corners = torch.rand(boxes, 2, 2, generator=generator).sort(dim=1).values * (
        size - 1
    )  # (K, 2 corners, xy)
    index = torch.arange(boxes) % batch
    return video, torch.cat([index[:, None].float(), corners.reshape(boxes, 4)], 1)


def export_onnx(model: ModelBase, path: str | os.PathLike, *, opset: int | None = None) -> dict:
    """Write `model` as ONNX to `path` (atomically). Returns `{"inputs": {name: shape}, "opset"}`."""
    model = fuse_conv_bn(copy.deepcopy(model).eval())
    inputs = example_inputs(model, batch=2, boxes=3)  # not 1: the exporter would fix a size-1 axis
    names = ["images"] if isinstance(model, ImageDetector) else ["video", "boxes"][: len(inputs)]
    shapes = (
        {0: torch.export.Dim("batch", min=1, max=1024)},
        {0: torch.export.Dim("boxes", min=1, max=4096)},
    )
    shapes = shapes[: len(inputs)]  # positional: the video, then a detector's boxes
    export_module(model, inputs, path, names, output_names(model), shapes, opset)
    return {"inputs": {n: tuple(t.shape) for n, t in zip(names, inputs)}, "opset": _opset(path)}


def output_names(model: ModelBase) -> list[str]:
    """The names of the exported graph's outputs, in `forward`'s order."""
    return ["box_encodings", "logits"] if isinstance(model, ImageDetector) else ["logits"]


def export_module(module, inputs, path, input_names, output_names, shapes, opset) -> None:
    """torch's dynamo exporter, written atomically to `path`."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (torch's exporter builds the graph with it)
    except ImportError as e:
        raise ConfigError(f"ONNX export needs {e.name}: pip install 'vidrec[onnx]'") from None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals

        def write(tmp: str) -> None:
            program = torch.onnx.export(
                module, inputs, None, dynamo=True, input_names=input_names, output_names=output_names,
                dynamic_shapes=shapes, opset_version=opset, verbose=False,
            )  # fmt: skip
            program.save(tmp)

        atomic_write(path, write)


def _opset(path) -> int:
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False)
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _session(path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking an ONNX file needs onnxruntime: pip install 'vidrec[onnx]'") from None
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


class StreamStep(torch.nn.Module):
    """`model.step` with its state as flat tensors: `(frames, *state) -> (logits, *next state)`;
    with `features`, each frame's features after the logits (`step_pooled`), from
    the same pass of the backbone."""

    def __init__(self, model: StreamingModel, names: list[str], *, features: bool = False):
        super().__init__()
        self.model, self.names = model, names
        self.features = features

    def forward(self, frames: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = dict(zip(self.names, state))
        if not self.features:
            logits, new = self.model.step(frames, state)
            return (logits, *(new[n] for n in self.names))
        pooled, feats, new = self.model.step_pooled(frames, state)
        return (self.model.forward_head(pooled), feats, *(new[n] for n in self.names))


def stream_inputs(model: StreamingModel, *, batch: int, frames: int) -> tuple[list[str], tuple]:
    """The state's names and a sample `(frames, *state)` at `batch` x `frames` of the model's size."""
    size = model.preprocessing.test_crop_size or model.preprocessing.crop_size
    state = model.init_state(batch, height=size, width=size)
    clip = torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(0))
    return list(state), (clip, *state.values())


def export_onnx_stream(
    model: StreamingModel, path: str | os.PathLike, *, frames: int = 1, opset: int | None = None
) -> dict:
    """Write a stream model's `step` as ONNX: inputs `frames (B, C, frames, H, W)` and each state
    tensor under its name, outputs `logits` and `next_<name>` for each (batch dynamic). A
    runtime starts from zeros of the state inputs' shapes and feeds each `next_` back."""
    if not isinstance(model, StreamingModel):
        raise ConfigError(f"{model.arch} is not a stream model: export it whole (export_onnx)")
    model = fuse_conv_bn(copy.deepcopy(model).eval())
    names, inputs = stream_inputs(model, batch=2, frames=frames)
    batch = torch.export.Dim("batch", min=1, max=1024)
    # forward(frames, *state): the state's specs nest as one tuple; the frame count is a scalar
    shapes = ({0: batch}, tuple({0: batch} if x.ndim else {} for x in inputs[1:]))
    outputs = ["logits", *(f"next_{n}" for n in names)]
    export_module(StreamStep(model, names), inputs, path, ["frames", *names], outputs, shapes, opset)
    return {"inputs": {n: tuple(x.shape) for n, x in zip(["frames", *names], inputs)}, "opset": _opset(path)}


def check_onnx_stream(
    model: StreamingModel, path: str | os.PathLike, *, steps: int = 4, batch: int = 1
) -> float:
    """The largest difference of the logits over their scale (`scaled_gap`), step after step with
    the state fed back, between ONNX Runtime on `path` and `model.step`."""
    session = _session(path)
    names, (clip, *state) = stream_inputs(model, batch=batch, frames=session.get_inputs()[0].shape[2])
    torch_state, onnx_state = dict(zip(names, state)), [x.numpy() for x in state]
    worst = 0.0
    for i in range(steps):
        frames = clip.roll(i, dims=-1)  # a different picture each step
        with torch.no_grad():
            expected, torch_state = model.eval().step(frames, torch_state)
        got, *onnx_state = session.run(None, {"frames": frames.numpy(), **dict(zip(names, onnx_state))})
        worst = max(worst, scaled_gap(got, expected.numpy()))
    return worst


def check_onnx(model: ModelBase, path: str | os.PathLike, *, batches: tuple[int, ...] = (1, 3)) -> float:
    """The largest difference over the output's scale (`scaled_gap`) between ONNX Runtime on
    `path` and `model` on random clips of each of `batches` (sizes other than the export's, so
    the dynamic axis is exercised)."""
    session = _session(path)
    worst = 0.0
    for batch in batches:
        inputs = example_inputs(model, batch=batch, boxes=batch + 1)
        got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
        with torch.no_grad():
            expected = model.eval()(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for g, e in zip(got, expected, strict=True):
            worst = max(worst, scaled_gap(g, e.float().numpy()))
    return worst


__all__ = ["check_onnx", "check_onnx_stream", "example_inputs", "export_onnx", "export_onnx_stream"]
