"""MoViNet's stream step as a TFLite graph, run by the TFLite runtime (LiteRT, XNNPACK):
`vidrec export MODEL OUT --format tflite` and `--backend litert`.

A conversion like the others in `vidrec.deploy`: a copy of the model with batch norms folded and
three kinds of module swapped for forms TFLite's kernels take whole, then one step (one frame) of
it converted by litert-torch (`vidrec[litert]`). On 2 cores that step, in float32, runs within
1-12% of the official int8 file in the same runtime (0.88-0.99x through `model.step`, each fed its
own layout; `bench/movinet.py`), where ONNX Runtime runs it at 0.4x. The swapped forms compute
the same numbers (within 1e-5 of the logits):

    CausalTemporalConv   k-tap sum over a buffer `(B, k-1, C, H, W)`  ->  k-1 separate
                         channels-last frames `(B, H, W, C)`, the step's state, concatenated
                         with the new frame along H and convolved by one depthwise conv dilated
                         by H. TFLite is channels-last: the 5D buffer cost 30 transposes and 39
                         slices a step, a third of its time; k MULs and ADDs a tap, 10% more.
    SkipPool             pool of the zero-padded map divided by a count map computed from the
                         input  ->  a pool TFLite has: 'SAME' with (0, 1) padding is PyTorch's
                         ceil_mode; with (1, 1), a pool that counts the padding times a constant
                         correction (the count map's traced ops broke the converter's layout pass
                         and, kept, are not XNNPACK ops).
    SpatialMean          mean over (H, W)  ->  adaptive average pool (no transpose before it).

The graph's inputs are the frame `(1, 3, H, W)`, then the state: `frame_count`,
`head_pool_sum`, each block's buffer frames and pool sums. Outputs: logits, the frame's features
(`step_features`), then the next state in the same order. Batch 1 and the frame size are fixed (a
TFLite graph has static shapes), the size being the model's input size.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidrec.deploy.graph import GraphState, GraphStep, Refuse, cached_graph, state_arrays
from vidrec.deploy.swap import swap_modules
from vidrec.errors import ConfigError
from vidrec.models.layers import same_padding
from vidrec.models.movinet import CausalTemporalConv, MoViNet, SkipPool, SpatialMean
from vidrec.utils import atomic_write

_FORM = "2"  # the graph's interface: a new one is a new cache entry


class SlotTemporalConv(nn.Module):
    """`CausalTemporalConv` (batch norm folded) on one frame, its buffer as `k - 1` channels-last
    frames: `(x (B, C, H, W), frames) -> (y, next frames)`."""

    def __init__(self, conv: CausalTemporalConv):
        super().__init__()
        if not isinstance(conv.bn, nn.Identity):
            raise ConfigError("fold the batch norms first (fuse_conv_bn)")
        weight = conv.conv.weight.detach()  # (C, 1, k, 1): depthwise taps over time
        bias = conv.conv.bias
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.zeros(weight.shape[0]) if bias is None else bias.detach())
        self.act, self.buffer_size = conv.act, conv.buffer_size

    def forward(self, x: torch.Tensor, frames: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
        newest = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        # the k frames stacked along H, concatenated channels-last (a transpose-free CONCATENATION in
        # TFLite), then the k taps as one depthwise conv dilated by H: one kernel with its bias and
        # activation fused, where k MULs and k ADDs cost 10% more of the step
        seen = torch.cat([*frames, newest], dim=1).permute(0, 3, 1, 2)  # (B, C, k*H, W), oldest first
        y = F.conv2d(seen, self.weight, self.bias, dilation=(x.shape[-2], 1), groups=x.shape[1])
        return self.act(y), (*frames[1:], newest)


def _window_counts(size: int, before: int) -> np.ndarray:
    """How many real pixels each 3-wide, stride-2 window holds along one axis padded by `before`."""
    out = -(-size // 2)
    return np.array([min(2 * i - before + 2, size - 1) - max(2 * i - before, 0) + 1 for i in range(out)])


class SamePool(nn.Module):
    """`SkipPool` (3x3 stride 2, TensorFlow 'SAME', padding left out of the mean) as pools TFLite
    has. 'SAME' pads an even size by (0, 1), an odd one by (1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h0, _), (w0, _) = (same_padding(size, 3, 2) for size in x.shape[-2:])
        if h0 != w0:
            raise ConfigError(f"TFLite export: frames of {tuple(x.shape[-2:])} pool differently by axis")
        if h0 == 0:  # (0, 1) or none: the last window just stops at the edge
            return F.avg_pool2d(x, 3, 2, ceil_mode=True)
        # a constant (computed here, not traced) correcting the border windows' divisor 9
        counts = _window_counts(x.shape[-2], h0)[:, None] * _window_counts(x.shape[-1], w0)[None, :]
        return F.avg_pool2d(x, 3, 2, padding=h0) * torch.from_numpy((9.0 / counts).astype(np.float32))


class PoolMean(nn.Module):
    """`SpatialMean` as an adaptive average pool: `(N, C, H, W)` -> `(N, C)`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def state_layout(model: MoViNet) -> list[tuple[str, str, int]]:
    """The graph's state inputs in order: (state name, block name or "", buffer frame or -1)."""
    layout = [("frame_count", "", -1), ("head_pool_sum", "", -1)]
    for name, block in model.named_layers():
        if block.temporal is not None:
            layout += [(f"{name}_stream_buffer_{j}", name, j) for j in range(block.temporal.buffer_size)]
        if block.se is not None:
            layout.append((f"{name}_pool_sum", name, -1))
    return layout


class LiteRTStep(nn.Module):
    """One frame of `model` (its export form): `(frame (1, C, H, W), *state) -> (logits, features,
    *next state)`, the state in `state_layout`'s order."""

    def __init__(self, model: MoViNet):
        super().__init__()
        self.model = model
        self.layout = state_layout(model)

    def forward(self, frame: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m, named = self.model, dict(zip((n for n, _, _ in self.layout), state))
        count = named["frame_count"]
        x = m.stem(frame)
        next_state = []
        for name, block in m.named_layers():
            frames = tuple(
                state[i] for i, (_, owner, j) in enumerate(self.layout) if owner == name and j >= 0
            )
            pool_sum = named.get(f"{name}_pool_sum")
            x, frames, pool_sum = block(x, frames or None, pool_sum, count)
            next_state += [*(frames or ()), *([] if pool_sum is None else [pool_sum])]
        feats = m.frame_pool(m.project(x))  # (1, P)
        total = named["head_pool_sum"] + feats
        logits = m.forward_head(total / (count + 1))
        return (logits, feats, count + 1, total, *next_state)


def export_form(model: MoViNet) -> LiteRTStep:
    """A copy of `model` in the form converted to TFLite (see the module's docstring)."""
    from vidrec.deploy import fuse_conv_bn

    if not isinstance(model, MoViNet):
        raise ConfigError(f"TFLite export and --backend litert cover MoViNet stream models, not {model.arch}")
    fused = fuse_conv_bn(copy.deepcopy(model).eval())
    forms = {
        CausalTemporalConv: SlotTemporalConv,
        SkipPool: lambda _: SamePool(),
        SpatialMean: lambda _: PoolMean(),
    }
    swap_modules(fused, lambda _, m: forms[type(m)](m) if type(m) in forms else None)
    return LiteRTStep(fused).eval()


def zero_state(model: MoViNet) -> list[torch.Tensor]:
    """The graph's state inputs at the start of a stream (batch 1, the model's input size)."""
    reference = model.init_state(1)
    zeros = []
    for name, owner, j in state_layout(model):
        if j < 0:
            zeros.append(torch.zeros_like(reference[name]))
        else:  # one frame of the (1, k-1, C, H, W) buffer, channels-last
            zeros.append(torch.zeros_like(reference[f"{owner}_stream_buffer"][:, j]).permute(0, 2, 3, 1))
    return [z.contiguous() for z in zeros]


def _sample_inputs(model: MoViNet) -> tuple[torch.Tensor, ...]:
    size = model.preprocessing.test_crop_size or model.preprocessing.crop_size
    frame = torch.randn(1, model.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    return (frame, *zero_state(model))


def tflite_bytes(model: MoViNet) -> bytes:
    """The TFLite flatbuffer of `model`'s step (litert-torch: seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ info lines
    try:
        import litert_torch
    except ImportError:
        raise ConfigError("TFLite export needs litert-torch: pip install 'vidrec[litert]'") from None
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # its per-pass progress lines
    with torch.no_grad():
        return litert_torch.convert(export_form(model), _sample_inputs(model)).model_content()


def export_tflite_stream(model: MoViNet, path: str | os.PathLike) -> dict:
    """Write `model`'s step as a `.tflite` file (atomically); its input shapes."""
    data = tflite_bytes(model)
    atomic_write(path, lambda tmp: open(tmp, "wb").write(data))
    names = ["frame", *(n for n, _, _ in state_layout(model))]
    return {"inputs": {n: tuple(x.shape) for n, x in zip(names, _sample_inputs(model))}}


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
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ConfigError(
                "running .tflite files needs ai-edge-litert: pip install 'vidrec[litert]'"
            ) from None
        threads = self.num_threads or torch.get_num_threads()
        self.interpreter = Interpreter(model_content=self.data, num_threads=threads)
        self.interpreter.allocate_tensors()
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

    def init_state(self, batch_size: int, *, height: int | None = None, width: int | None = None) -> dict:
        size = (height or self.frame_size[0], width or self.frame_size[1])
        if batch_size != 1 or size != self.frame_size:
            raise ConfigError(
                f"the TFLite step takes batch 1 at {self.frame_size[0]}x{self.frame_size[1]} "
                f"(asked: batch {batch_size} at {size[0]}x{size[1]}): use --backend pytorch for others"
            )
        return GraphState(self.names, list(self.zeros))

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

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.step(clip, self.init_state(clip.shape[0], height=clip.shape[-2], width=clip.shape[-1]))[0]


def to_litert(model: MoViNet, *, cache: str | None = None) -> MoViNet:
    """A copy of `model` whose `step`, `step_features` and `forward` (the clip streamed) run its
    TFLite graph in the TFLite runtime; exported once per set of weights when `cache` is a folder."""
    if not isinstance(model, MoViNet):
        raise ConfigError(f"--backend litert runs MoViNet stream models, not {model.arch}: use onnxruntime")
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("--backend litert runs on the CPU: leave out --device")
    converted = copy.deepcopy(model).eval()
    data = cached_graph(model, f"step-v{_FORM}", cache, lambda: tflite_bytes(model), suffix=".tflite")
    step = _Step(LiteRTGraph(data), model)
    converted.step, converted.step_features, converted.init_state = (
        step.step,
        step.step_features,
        step.init_state,
    )
    converted.forward = step.forward
    converted.forward_features = Refuse(f"{model.arch}'s forward_features", "the TFLite runtime")
    converted.backend = "litert"
    return converted


def check_tflite_stream(model: MoViNet, path: str | os.PathLike, *, steps: int = 4) -> float:
    """Max abs difference of the logits, step after step with the state fed back, between the
    TFLite runtime on `path` and `model.step` (PyTorch)."""
    with open(path, "rb") as f:
        step = _Step(LiteRTGraph(f.read()), model)
    frame = _sample_inputs(model)[0][:, :, None]  # (1, C, 1, H, W)
    ours, theirs = model.eval().init_state(1), step.init_state(1)
    worst = 0.0
    for i in range(steps):
        frames = frame.roll(i, dims=-1)  # a different picture each step
        with torch.no_grad():
            expected, ours = model.step(frames, ours)
        got, theirs = step.step(frames, theirs)
        worst = max(worst, float((got - expected).abs().max()))
    return worst


__all__ = ["LiteRTGraph", "check_tflite_stream", "export_form", "export_tflite_stream", "to_litert"]
