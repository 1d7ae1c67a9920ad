"""MoViNet's stream step as a TFLite graph (`vidrec export MODEL OUT --format tflite`), the graph that
`--backend litert` runs (`vidrec.runtime.litert`).

A conversion like the others in `vidrec.deploy`: a copy of the model with batch norms folded and
three kinds of module swapped for forms TFLite's kernels take whole, then one step (one frame) of
it converted by litert-torch (`vidrec[litert]`). In float32 that step runs close to the official
int8 file in the same runtime, far faster than ONNX Runtime runs it (`bench/movinet.py` measures
all three; the README's table comes from its records). The swapped forms compute the same
numbers (within 1e-5 of the logits):

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

from vidrec.deploy import fuse_conv_bn
from vidrec.deploy.swap import swap_modules
from vidrec.errors import ConfigError
from vidrec.models.layers import same_padding
from vidrec.models.movinet import CausalTemporalConv, MoViNet, SkipPool, SpatialMean
from vidrec.utils import atomic_write

FORM = "2"  # the graph's interface: a new one is a new cache entry


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
    if "tflite" not in model.forms:
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


def sample_inputs(model: MoViNet) -> tuple[torch.Tensor, ...]:
    """A sample frame `(1, C, S, S)` and the zero state: what the step is traced with."""
    size = model.preprocessing.test_crop_size or model.preprocessing.crop_size
    frame = torch.randn(1, model.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    return (frame, *zero_state(model))


def _converter():
    """litert-torch, quiet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ info lines
    try:
        import litert_torch
    except ImportError:
        raise ConfigError("TFLite export needs litert-torch: pip install 'vidrec[litert]'") from None
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # its per-pass progress lines
    return litert_torch


def tflite_bytes(model: MoViNet) -> bytes:
    """The TFLite flatbuffer of `model`'s step (litert-torch: seconds)."""
    litert_torch = _converter()
    with torch.no_grad():
        return litert_torch.convert(export_form(model), sample_inputs(model)).model_content()


class _Head(nn.Module):
    """The classifier on pooled features `(1, P)` (batch norms folded): what a window's mean goes through."""

    def __init__(self, model: MoViNet):
        super().__init__()
        self.model = fuse_conv_bn(copy.deepcopy(model).eval())

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(pooled)


def head_tflite_bytes(model: MoViNet) -> bytes:
    """The TFLite flatbuffer of `model`'s classifier on one pooled feature vector."""
    litert_torch = _converter()
    with torch.no_grad():
        return litert_torch.convert(
            _Head(model).eval(), (torch.zeros(1, model.num_features),)
        ).model_content()


def export_tflite_stream(model: MoViNet, path: str | os.PathLike) -> dict:
    """Write `model`'s step as a `.tflite` file (atomically); its input shapes."""
    data = tflite_bytes(model)
    atomic_write(path, lambda tmp: open(tmp, "wb").write(data))
    names = ["frame", *(n for n, _, _ in state_layout(model))]
    return {"inputs": {n: tuple(x.shape) for n, x in zip(names, sample_inputs(model))}}


__all__ = [
    "FORM",
    "export_form",
    "export_tflite_stream",
    "head_tflite_bytes",
    "sample_inputs",
    "state_layout",
    "tflite_bytes",
    "zero_state",
]
