"""Models that another runtime runs from their exported graphs, one declared class per kind (as
Ultralytics' AutoBackend wraps each exported format): each keeps the source model's name, labels,
preprocessing and config, says which `backend` runs it, and holds that runtime's graphs only, no
PyTorch weights.

    RuntimeClassifier       forward(video)              the exported forward
    RuntimeActionDetector   forward(video, boxes)       the exported forward
    RuntimeImageDetector    forward(images)             the exported forward; `detect` decodes its
                                                        outputs with the source's weightless
                                                        `postprocess` (anchors, NMS)
    RuntimeStreamModel      step / step_features        the exported step (a `GraphStep`)
                            forward_head(pooled)        the exported classifier (a window's mean)
                            forward(clip)               the clip streamed from the zero state

What a runtime cannot run (`forward_features`, training, another export) is a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vidrec.errors import ConfigError
from vidrec.models.base import DetectionModel, ImageDetector, ModelBase, StreamingModel, VideoModel
from vidrec.runtime.graph import GraphState, GraphStep

Graph = Callable[..., list[np.ndarray]]  # arrays in, arrays out (an OrtGraph, a LiteRTGraph)


def numpy_of(x: torch.Tensor) -> np.ndarray:
    """A tensor as the float32 array a graph takes."""
    return x.detach().float().cpu().numpy()


class RuntimeModel(ModelBase):
    """What every runtime model carries: the source's description, the backend, the device its
    outputs go to (CPU, or CUDA for ONNX Runtime's CUDA provider)."""

    def __init__(self, source: ModelBase, *, backend: str, device: torch.device | str = "cpu"):
        super().__init__()
        self.arch, self.labels, self.preprocessing = source.arch, source.labels, source.preprocessing
        self.config, self.backend = source.config, backend
        self.runtime_device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self.runtime_device

    def _refuse(self, what: str):
        raise ConfigError(f"{self.arch}'s {what} does not run in {self.backend} here: use --backend pytorch")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Not in the exported graph: refused."""
        self._refuse("forward_features")

    def train(self, mode: bool = True):
        if mode:
            self._refuse("training")
        return super().train(False)


def _outputs(graph: Graph, inputs, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(y).to(device) for y in graph(*(numpy_of(x) for x in inputs)))


class RuntimeClassifier(RuntimeModel, VideoModel):
    """A clip classifier's forward by its exported graph."""

    def __init__(self, source: VideoModel, graph: Graph, *, backend: str, device="cpu"):
        super().__init__(source, backend=backend, device=device)
        self.graph, self.num_features = graph, source.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _outputs(self.graph, (x,), x.device)[0]

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """Not in the exported graph: refused."""
        self._refuse("forward_head")


class RuntimeActionDetector(RuntimeModel, DetectionModel):
    """An AVA action detector's forward (clips and boxes in, per-box logits out) by its graph."""

    def __init__(self, source: DetectionModel, graph: Graph, *, backend: str, device="cpu"):
        super().__init__(source, backend=backend, device=device)
        self.graph = graph

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return _outputs(self.graph, (x, boxes), x.device)[0]


class RuntimeImageDetector(RuntimeModel, ImageDetector):
    """An image detector's network by its graph; its outputs decoded as the source decodes them."""

    def __init__(self, source: ImageDetector, graph: Graph, *, backend: str, device="cpu"):
        super().__init__(source, backend=backend, device=device)
        self.graph, self.postprocess = graph, source.postprocess

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _outputs(self.graph, (images,), images.device)


class RuntimeStreamModel(RuntimeModel, StreamingModel):
    """A stream model's step by its exported graph (`step`), its classifier by another (`head`):
    the state is the step graph's own arrays, zero at the start, for frames of `frame_size`."""

    def __init__(
        self,
        source: StreamingModel,
        step: GraphStep,
        head: Graph,
        *,
        names: list[str],
        zeros: list[np.ndarray],
        batched: bool,
        backend: str,
        device="cpu",
    ):
        super().__init__(source, backend=backend, device=device)
        self.stepper, self.head_graph, self.names, self.zeros = step, head, names, zeros
        self.batched, self.num_features = batched, source.num_features
        size = source.preprocessing.test_crop_size or source.preprocessing.crop_size
        self.frame_size = (size, size)

    def init_state(self, batch_size: int, *, height: int | None = None, width: int | None = None) -> dict:
        size = (height or self.frame_size[0], width or self.frame_size[1])
        if size != self.frame_size or (batch_size != 1 and not self.batched):
            batches = "any batch" if self.batched else "batch 1"
            raise ConfigError(
                f"{self.arch} on {self.backend} takes {batches} at {self.frame_size[0]}x{self.frame_size[1]} "
                f"(asked: batch {batch_size} at {size[0]}x{size[1]}): use --backend pytorch for others"
            )
        arrays = [np.repeat(z, batch_size, axis=0) if z.ndim else z.copy() for z in self.zeros]
        return GraphState(self.names, arrays)

    def step(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        return self.stepper.step(frames, state)

    def step_features(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        return self.stepper.step_features(frames, state)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            self._refuse("forward_head(pre_logits=True)")
        rows = [torch.from_numpy(self.head_graph(numpy_of(x[i : i + 1]))[0]) for i in range(x.shape[0])]
        return torch.cat(rows).to(x.device)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        state = self.init_state(clip.shape[0], height=clip.shape[-2], width=clip.shape[-1])
        return self.step(clip, state)[0]


__all__ = [
    "RuntimeActionDetector",
    "RuntimeClassifier",
    "RuntimeImageDetector",
    "RuntimeModel",
    "RuntimeStreamModel",
    "numpy_of",
]
