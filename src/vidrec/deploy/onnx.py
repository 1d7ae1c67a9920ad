"""ONNX: a model exported as a graph ONNX Runtime (or any ONNX backend) runs without PyTorch.

    classifier   video (B, C, T, H, W) float ─> logits (B, classes)
    detector     video (B, C, T, H, W), boxes (K, 5) [batch index, x1, y1, x2, y2] ─> logits (K, classes)

The batch (and a detector's box count) is dynamic; the clip's frames and size are the model's
test input (`preprocessing`), fixed in the graph. SlowFast keeps vidrec's single input: the Slow
pathway's frames are taken inside the graph, as in `forward`. The export is torch's own
(`torch.onnx.export`, the dynamo exporter), on the inference form of the model (batch norms
folded into their convolutions), and `check_onnx` runs the file in ONNX Runtime against the
PyTorch model on random clips.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from vidrec.deploy import fuse_conv_bn
from vidrec.errors import ConfigError
from vidrec.models.base import DetectionModel, ModelBase, PretrainingModel
from vidrec.utils import atomic_write


def example_inputs(model: ModelBase, *, batch: int = 1, boxes: int = 2) -> tuple[torch.Tensor, ...]:
    """Random inputs of the model's test shape: `(video,)`, or `(video, boxes)` for a detector."""
    if isinstance(model, PretrainingModel):
        raise ConfigError(f"{model.arch} is a pretraining model: export its fine-tuned classifier instead")
    p = model.preprocessing
    size = p.test_crop_size or p.crop_size
    generator = torch.Generator().manual_seed(0)
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
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter builds the graph with it)
    except ImportError as e:
        raise ConfigError(f"ONNX export needs {e.name}: pip install 'vidrec[onnx]'") from None
    model = fuse_conv_bn(_copy(model).eval())
    inputs = example_inputs(model, batch=2, boxes=3)  # not 1: the exporter would fix a size-1 axis
    names = ["video", "boxes"][: len(inputs)]
    shapes = (
        {0: torch.export.Dim("batch", min=1, max=1024)},
        {0: torch.export.Dim("boxes", min=1, max=4096)},
    )
    shapes = shapes[: len(inputs)]  # positional: the video, then a detector's boxes
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals

        def write(tmp: str) -> None:
            program = torch.onnx.export(
                model, inputs, None, dynamo=True, input_names=names, output_names=["logits"],
                dynamic_shapes=shapes, opset_version=opset, verbose=False,
            )  # fmt: skip
            program.save(tmp)

        atomic_write(path, write)
    graph = onnx.load(os.fspath(path), load_external_data=False)
    opset_used = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {"inputs": {n: tuple(t.shape) for n, t in zip(names, inputs)}, "opset": opset_used}


def _copy(model: ModelBase) -> ModelBase:
    import copy

    return copy.deepcopy(model)


def check_onnx(model: ModelBase, path: str | os.PathLike, *, batches: tuple[int, ...] = (1, 3)) -> float:
    """Max abs difference between ONNX Runtime on `path` and `model` on random clips of each of
    `batches` (sizes other than the export's, so the dynamic axis is exercised)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking an ONNX file needs onnxruntime: pip install 'vidrec[onnx]'") from None
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in batches:
        inputs = example_inputs(model, batch=batch, boxes=batch + 1)
        (got,) = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
        with torch.no_grad():
            expected = model.eval()(*inputs).float().numpy()
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


__all__ = ["check_onnx", "example_inputs", "export_onnx"]
