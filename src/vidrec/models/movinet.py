"""MoViNet stream models: causal (2+1)D mobile networks that classify video one frame at a time.

Mobile Video Networks (Kondratyuk et al., CVPR 2021, https://arxiv.org/abs/2103.11511), as built
by TF Model Garden's `official/projects/movinet` with `causal=True, conv_type="2plus1d"`. Every
temporal convolution looks only backwards: in streaming it keeps the last `k - 1` frames it saw in
a *stream buffer*, and every global pool is a running (cumulative) mean. So a clip fed whole and
the same clip fed frame by frame give the same logits, and the model can watch a live stream with
constant memory::

    state = model.init_state(batch_size)
    for frames in stream:                    # (B, C, t, H, W), t >= 1
        logits, state = model.step(frames, state)

Inside, activations are kept per frame, `(B*T, C, H, W)`: all but the temporal convolutions and
the pools are 2D operations, which is how the official model runs (and what its TFLite export
contains). The state dict's buffers are frame-major, `(B, k-1, C, H, W)`, for the same reason.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.ops import StochasticDepth

from vidrec.data.transforms import Preprocessing
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.hub import WeightEntry, register_weights
from vidrec.models.base import VideoModel, build_model, linear_head
from vidrec.models.int8 import fake_int8, from_int, int8_add, int8_affine, int8_sum, round_half_away, to_int
from vidrec.models.layers import same_padding
from vidrec.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU, "hard_swish": nn.Hardswish}
GATES = {"sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid}
SE_TYPES = ("none", "3d", "2plus3d")
# Activations an int8 runtime rounds besides each conv's output: per block, and the model's own
# (input image, the head's per-frame pixel sum and mean, the running-sum state as read back, the
# running sum, the mean over frames, hidden layer, logits).
BLOCK_POINTS = ("rezero", "skip_pool", "out")
MODEL_POINTS = ("input", "pool.frame_sum", "pool.frame_mean", "pool.state", "pool.sum", "pool.mean", "hidden", "head")


@dataclass(frozen=True)
class Layer:
    """One bottleneck: expansion width, kernel `(kt, k, k)` and spatial stride."""

    expand: int
    kernel: tuple[int, int, int]
    stride: int = 1


@dataclass(frozen=True)
class Spec:
    """A MoViNet architecture: stem width, stages of (output width, layers), head widths."""

    stem: int
    stages: tuple[tuple[int, tuple[Layer, ...]], ...]
    project: int  # pointwise projection before the pool
    hidden: int  # classifier hidden width


def _stage(out: int, *layers: tuple) -> tuple[int, tuple[Layer, ...]]:
    return out, tuple(Layer(*layer) for layer in layers)


K13, K15, K33, K53 = (1, 3, 3), (1, 5, 5), (3, 3, 3), (5, 3, 3)
# BLOCK_SPECS of TF Model Garden (movinet.py); the stem is a (1, 3, 3) stride-2 convolution in all.
SPECS = {
    "a0": Spec(8, (
        _stage(8, (24, K15, 2)),
        _stage(32, (80, K33, 2), (80, K33), (80, K33)),
        _stage(56, (184, K53, 2), (112, K33), (184, K33)),
        _stage(56, (184, K53), (184, K33), (184, K33), (184, K33)),
        _stage(104, (384, K53, 2), (280, K15), (280, K15), (344, K15)),
    ), project=480, hidden=2048),
    "a1": Spec(16, (
        _stage(16, (40, K15, 2), (40, K33)),
        _stage(40, (96, K33, 2), (120, K33), (96, K33), (96, K33)),
        _stage(64, (216, K53, 2), (128, K33), (216, K33), (168, K33), (216, K33)),
        _stage(64, (216, K53), (216, K33), (216, K33), (128, K33), (128, K15), (216, K33)),
        _stage(136, (456, K53, 2), (360, K15), (360, K15), (360, K15), (456, K15), (456, K33), (544, K13)),
    ), project=600, hidden=2048),
}


@dataclass(frozen=True)
class MoViNetConfig:
    num_classes: int = 600  # Kinetics-600, as the released models
    model_id: str = "a0"  # key of SPECS
    se_type: str = "2plus3d"  # squeeze-excitation pooling: "none" | "3d" (cumulative) | "2plus3d" (cumulative + per frame)
    activation: str = "hard_swish"  # of every conv unit: "hard_swish" | "swish" | "relu6" | "relu"
    gating_activation: str = "hard_sigmoid"  # of the squeeze-excitation gate
    se_ratio: float = 0.25  # squeeze-excitation hidden width / expansion width
    dropout: float = 0.5  # before the classifier
    stochastic_depth: float = 0.0  # drop rate of the last block (linear in depth)
    bn_eps: float = 1e-3  # TensorFlow's batch norm epsilon
    in_channels: int = 3
    # The int8 grid {point: (scale, zero_point)} of every activation of an int8 TFLite export (read
    # by vidrec.convert.tflite; conv points add their input's scale and zero point), and whether to
    # compute as that runtime does: integer convolutions, every activation rounded to its grid.
    int8_activations: dict | None = None
    simulate_int8: bool = False

    def __post_init__(self):
        if self.simulate_int8 and not self.int8_activations:
            raise ConfigError("simulate_int8 needs int8_activations: load a model from an int8 TFLite file")
        for name, value, valid in (("MoViNet model_id", self.model_id, SPECS), ("se_type", self.se_type, SE_TYPES),
                                   ("activation", self.activation, ACTIVATIONS),
                                   ("gating_activation", self.gating_activation, GATES)):
            if value not in valid:
                raise ConfigError(unknown_name_message(name, value, list(valid)))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of `divisor`, never below 90% of it (TF's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def folded(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias with its eval-mode batch norm folded in (as TFLite files hold them)."""
    bias = conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0, 0])
    if isinstance(bn, nn.BatchNorm2d):  # not yet fused by fuse_conv_bn_
        return fuse_conv_bn_weights(conv.weight, bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return conv.weight, bias


def _int8_unit(unit: nn.Module, x: torch.Tensor, apply) -> torch.Tensor:
    """A unit's conv (`apply`), batch norm and activation as the int8 runtime computes them."""
    weight, bias = folded(unit.conv, unit.bn)
    return fake_int8(unit.act(int8_affine(x, weight, bias, apply, unit.int8)), unit.int8)


class FrameConv(nn.Module):
    """A per-frame conv (TensorFlow 'SAME' padding), batch norm and optional activation on `(N, C, H, W)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, *, stride: int = 1,
                 depthwise: bool = False, act: str | None, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, bias=False,
                              groups=in_channels if depthwise else 1)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()
        self.int8 = None  # output and input grids when simulating an int8 runtime (MoViNet.simulate_int8_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        if k > 1:
            (h0, h1), (w0, w1) = (same_padding(size, k, s) for size in x.shape[-2:])
            x = F.pad(x, (w0, w1, h0, h1))  # zeros: the input zero point, in the runtime's integers
        if self.int8 is None:
            return self.act(self.bn(self.conv(x)))
        return _int8_unit(self, x, lambda v, w: F.conv2d(v, w, stride=self.conv.stride, groups=self.conv.groups))


class CausalTemporalConv(nn.Module):
    """Depthwise `(k, 1, 1)` convolution over time that sees only the past: the last `k - 1` input
    frames are carried in a stream buffer (zeros at the start), then BN and activation."""

    def __init__(self, channels: int, kernel: int, *, act: str, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), groups=channels, bias=False)  # taps over time
        self.bn = nn.BatchNorm2d(channels, eps=eps)
        self.act = ACTIVATIONS[act]()
        self.buffer_size = kernel - 1
        self.int8 = None

    def forward(self, x: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x` (B*T, C, H, W), `buffer` (B, k-1, C, H, W) -> output (B*T, C, H, W), next buffer."""
        b = buffer.shape[0]
        if buffer.shape[-3:] != x.shape[-3:]:
            raise ConfigError(f"stream state holds {tuple(buffer.shape[-2:])} feature maps, these frames give "
                              f"{tuple(x.shape[-2:])}: make the state with init_state(batch, height=H, width=W)")
        frames = torch.cat([buffer, x.view(b, -1, *x.shape[1:])], dim=1)  # (B, k-1+T, C, H, W)
        t = frames.shape[1] - self.buffer_size

        def taps(v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # -> (B*T, C, H, W)
            # A k-tap weighted sum of shifted views: cheaper than a grouped Conv3d on CPU, same result.
            weight = weight.reshape(-1, self.buffer_size + 1)  # (C, k)
            return sum(v[:, i:i + t] * weight[:, i, None, None] for i in range(self.buffer_size + 1)).reshape_as(x)

        if self.int8 is None:
            y = taps(frames, self.conv.weight)
            if self.conv.bias is not None:  # batch norm folded in for inference
                y = y + self.conv.bias[:, None, None]
            y = self.act(self.bn(y))
        else:
            y = _int8_unit(self, frames, taps)
        return y, frames[:, t:]


def running_mean(frame_means: torch.Tensor, total: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal global average: `frame_means` (B, T, C) -> mean over all frames so far at each frame
    (B, T, C), and the new running sum (B, C). `count` is the number of frames before this call."""
    t = frame_means.shape[1]
    sums = frame_means.cumsum(1) + total[:, None]
    seen = count + torch.arange(1, t + 1, device=sums.device, dtype=sums.dtype)
    return sums / seen[None, :, None], sums[:, -1]


class CausalSqueezeExcite(nn.Module):
    """Squeeze-excitation whose squeeze is the running mean over all frames so far ("3d"), or that
    concatenated with the current frame's spatial mean ("2plus3d")."""

    def __init__(self, channels: int, hidden: int, *, se_type: str, act: str, gate: str):
        super().__init__()
        self.se_type = se_type
        self.reduce = nn.Linear(channels * (2 if se_type == "2plus3d" else 1), hidden)
        self.act = ACTIVATIONS[act]()
        self.expand = nn.Linear(hidden, channels)
        self.gate = GATES[gate]()

    def forward(self, x: torch.Tensor, total: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = total.shape[0]
        frame_means = x.mean((2, 3)).view(b, -1, x.shape[1])  # (B, T, C)
        squeezed, total = running_mean(frame_means, total, count)
        if self.se_type == "2plus3d":
            squeezed = torch.cat([squeezed, frame_means], dim=-1)  # (B, T, 2C)
        scale = self.gate(self.expand(self.act(self.reduce(squeezed))))  # (B, T, C)
        return x * scale.reshape(-1, x.shape[1], 1, 1), total


def skip_pool(x: torch.Tensor, grid: tuple[float, int] | None = None) -> torch.Tensor:
    """3x3 stride-2 average pool, 'SAME' padding, padded pixels left out of the mean (as TF).

    With an int8 `grid` (input and output share it), as TFLite's int8 kernel: the mean of the
    stored integers, rounded half away from zero. Ties are common here (4 or 6 pixels at the
    border), so rounding the float mean would differ from the runtime in ~1% of the outputs."""
    (h0, h1), (w0, w1) = (same_padding(size, 3, 2) for size in x.shape[-2:])
    if grid is not None:
        x = to_int(x, grid)
    padded = F.pad(x, (w0, w1, h0, h1))
    ones = F.pad(torch.ones_like(x[:1, :1]), (w0, w1, h0, h1))
    y = F.avg_pool2d(padded, 3, 2, divisor_override=1) / F.avg_pool2d(ones, 3, 2, divisor_override=1)  # sum / count
    return y if grid is None else from_int(round_half_away(y), grid)


class Bottleneck(nn.Module):
    """Inverted bottleneck: 1x1 expand, kxk depthwise (stride s), causal kt depthwise over time,
    squeeze-excite, 1x1 project; the branch is scaled by a zero-initialised scalar (ReZero) and
    added to the input (average-pooled and projected where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, layer: Layer, *, config: MoViNetConfig, drop: float):
        super().__init__()
        act, eps = config.activation, config.bn_eps
        kt, k, _ = layer.kernel
        self.expansion = FrameConv(in_channels, layer.expand, act=act, eps=eps)
        self.spatial = FrameConv(layer.expand, layer.expand, k, stride=layer.stride, depthwise=True, act=act, eps=eps)
        self.temporal = CausalTemporalConv(layer.expand, kt, act=act, eps=eps) if kt > 1 else None
        self.se = None
        if config.se_type != "none":
            hidden = make_divisible(config.se_ratio * layer.expand * (2 if config.se_type == "2plus3d" else 1))
            self.se = CausalSqueezeExcite(layer.expand, hidden, se_type=config.se_type, act=act,
                                          gate=config.gating_activation)
        self.projection = FrameConv(layer.expand, out_channels, act=None, eps=eps)
        self.rezero = nn.Parameter(torch.zeros(()))
        self.drop_path = StochasticDepth(drop, "row")
        self.downsample = layer.stride > 1
        self.skip = None
        if self.downsample or in_channels != out_channels:
            self.skip = FrameConv(in_channels, out_channels, act=None, eps=eps)
        self.int8 = dict.fromkeys(BLOCK_POINTS)  # grids of the ReZero product, skip pool and sum

    def forward(self, x: torch.Tensor, state: dict, prefix: str, new_state: dict) -> torch.Tensor:
        y = self.spatial(self.expansion(x))
        if self.temporal is not None:
            y, new_state[prefix + "stream_buffer"] = self.temporal(y, state[prefix + "stream_buffer"])
        if self.se is not None:
            y, new_state[prefix + "pool_sum"] = self.se(y, state[prefix + "pool_sum"], state["frame_count"])
        y = self.drop_path(fake_int8(self.projection(y) * self.rezero, self.int8["rezero"]))
        if self.skip is not None:
            x = self.skip(skip_pool(x, self.int8["skip_pool"]) if self.downsample else x)
        return x + y if self.int8["out"] is None else int8_add(y, x, self.int8["out"])


class MoViNet(VideoModel):
    """Causal MoViNet: `forward((B, C, T, H, W))` gives the logits after the last frame, which is
    exactly what `step` gives after streaming the same frames."""

    def __init__(self, config: MoViNetConfig):
        super().__init__()
        self.config = config
        spec = SPECS[config.model_id]
        act, eps = config.activation, config.bn_eps
        self.stem = FrameConv(config.in_channels, spec.stem, 3, stride=2, act=act, eps=eps)
        depth = sum(len(layers) for _, layers in spec.stages)
        blocks, c_in, index = [], spec.stem, 0
        for out, layers in spec.stages:
            stage = []
            for layer in layers:
                index += 1
                stage.append(Bottleneck(c_in, out, layer, config=config, drop=config.stochastic_depth * index / depth))
                c_in = out
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.project = FrameConv(c_in, spec.project, act=act, eps=eps)
        self.hidden = nn.Linear(spec.project, spec.hidden)
        self.hidden_act = ACTIVATIONS[act]()
        self.dropout = nn.Dropout(config.dropout)
        self.head = self.make_head(config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # Keras HeNormal
        self.simulate_int8_(config.simulate_int8)

    def make_head(self, num_classes: int) -> nn.Linear:
        return linear_head(self.hidden.out_features, num_classes)

    def named_layers(self):
        """(`blockS_layerL`, block) in order: the official names, used for states and weight import."""
        for s, stage in enumerate(self.blocks):
            for i, block in enumerate(stage):
                yield f"block{s}_layer{i}", block

    def int8_points(self) -> list[str]:
        """Every activation an int8 runtime rounds: each conv's output (by module path), per block
        its ReZero product, skip pool (where it downsamples) and sum (`{block}.rezero` ...), and
        MODEL_POINTS."""
        points = []
        for name, m in self.named_modules():
            if isinstance(m, (FrameConv, CausalTemporalConv)):
                points.append(name)
            elif isinstance(m, Bottleneck):
                points += [f"{name}.{p}" for p in BLOCK_POINTS if p != "skip_pool" or m.downsample]
        return points + list(MODEL_POINTS)

    def simulate_int8_(self, enabled: bool = True) -> MoViNet:
        """Round every activation to the int8 grid of the TFLite file the weights came from, as its
        runtime does (`enabled=False`: plain float32 again). The grids describe the imported
        weights: after fine-tuning they no longer apply."""
        self.config = dataclasses.replace(self.config, simulate_int8=enabled)
        grids = self.config.int8_activations if enabled else {}
        missing = [p for p in self.int8_points() if p not in grids] if enabled else []
        if missing:
            raise ConfigError(f"int8_activations lacks {len(missing)} of this model's points, e.g. {missing[:3]}")
        for name, m in self.named_modules():
            if isinstance(m, (FrameConv, CausalTemporalConv)):
                m.int8 = grids.get(name)
            elif isinstance(m, Bottleneck):
                m.int8 = {p: grids.get(f"{name}.{p}") for p in BLOCK_POINTS}
        self.int8 = {p: grids.get(p) for p in MODEL_POINTS}
        return self

    def init_state(self, batch_size: int, *, height: int | None = None, width: int | None = None) -> dict:
        """Zero state for a stream of `height x width` frames (default: the model's input size)."""
        size = self.preprocessing.test_crop_size or self.preprocessing.crop_size
        h, w = height or size, width or size
        p = next(self.parameters())
        zeros = dict(device=p.device, dtype=p.dtype)
        state = {"frame_count": torch.zeros((), **zeros), "head_pool_sum": torch.zeros(batch_size, self.project.conv.out_channels, **zeros)}
        h, w = -(-h // 2), -(-w // 2)  # after the stem
        for name, block in self.named_layers():
            if block.downsample:
                h, w = -(-h // 2), -(-w // 2)
            channels = block.spatial.conv.out_channels
            if block.temporal is not None:
                state[f"{name}_stream_buffer"] = torch.zeros(batch_size, block.temporal.buffer_size, channels, h, w, **zeros)
            if block.se is not None:
                state[f"{name}_pool_sum"] = torch.zeros(batch_size, channels, **zeros)
        return state

    def _stream(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Frames `(B, C, t, H, W)` through the network: per-frame pooled projections (B, t, P)
        and the next state."""
        self.check_input(x)
        b, c, t, h, w = x.shape
        buffers = [v for k, v in state.items() if k.endswith("stream_buffer")]
        if buffers and buffers[0].shape[0] != b:
            raise ConfigError(f"state is for batch size {buffers[0].shape[0]}, frames have batch size {b}")
        new_state = {}
        x = fake_int8(x, self.int8["input"])
        x = self.stem(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, C, H, W)
        for name, block in self.named_layers():
            x = block(x, state, f"{name}_", new_state)
        x = self.project(x)
        if self.config.simulate_int8:  # the runtime's mean: a rounded pixel sum times 1/(H*W), rounded
            x = fake_int8(int8_sum(x, (2, 3), self.int8["pool.frame_sum"]) / (x.shape[-2] * x.shape[-1]),
                          self.int8["pool.frame_mean"])
        else:
            x = x.mean((2, 3))
        x = x.view(b, t, -1)  # (B, T, P)
        new_state["frame_count"] = state["frame_count"] + t
        return x, new_state

    def step(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Feed `t >= 1` more frames `(B, C, t, H, W)`: the logits after the last of them (B, classes),
        i.e. for the whole stream so far, and the next state (the given one is not modified)."""
        feats, new_state = self._stream(frames, state)
        if self.config.simulate_int8:  # the runtime rounds the state it reads back and the sum, frame by frame
            total = state["head_pool_sum"]
            for frame in feats.unbind(1):
                total = int8_add(frame, fake_int8(total, self.int8["pool.state"]), self.int8["pool.sum"])
        else:
            total = state["head_pool_sum"] + feats.sum(1)
        new_state["head_pool_sum"] = total
        pooled = fake_int8(total / new_state["frame_count"], self.int8["pool.mean"])
        return self.forward_head(pooled), new_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x, self.init_state(x.shape[0], height=x.shape[-2], width=x.shape[-1]))[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame pooled features `(B, T, P)` of a clip streamed from the zero state."""
        return self._stream(x, self.init_state(x.shape[0], height=x.shape[-2], width=x.shape[-1]))[0]

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        """`x`: pooled features (B, P), or per-frame features (B, T, P) to average first."""
        if x.ndim == 3:
            x = x.mean(1)
        if not self.config.simulate_int8:
            x = self.dropout(self.hidden_act(self.hidden(x)))
            return x if pre_logits else self.head(x)
        x = fake_int8(self.hidden_act(int8_affine(x, self.hidden.weight, self.hidden.bias, F.linear, self.int8["hidden"], dim=-1)),
                      self.int8["hidden"])
        return x if pre_logits else int8_affine(x, self.head.weight, self.head.bias, F.linear, self.int8["head"], dim=-1)


def _build(arch: str, defaults: dict, overrides: dict) -> MoViNet:
    return build_model(MoViNet, MoViNetConfig, arch=arch, defaults=defaults, overrides=overrides,
                       preprocessing=STREAM_PREP)


# The released stream models: RGB in [0, 1] (no normalisation), 172x172, frames at 5 fps.
STREAM_PREP = Preprocessing(num_frames=50, sampling_rate=1, target_fps=5.0, resize=172, crop_size=172,
                            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def kinetics600_labels() -> list[str]:
    """The 600 Kinetics-600 class names in the released models' logit order."""
    with open(os.path.join(os.path.dirname(__file__), "kinetics600_labels.txt")) as f:
        return [line.strip() for line in f if line.strip()]


@register_model
def movinet_a0_stream(**overrides) -> MoViNet:
    """MoViNet-A0 Stream (3.1M parameters, 2.7 GFLOPs on 50x172x172)."""
    return _build("movinet_a0_stream", {"model_id": "a0"}, overrides)


# Google's int8 TFLite export (TF Hub / Kaggle, Apache-2.0): the quantization-friendly variant,
# ReLU6 and no squeeze-excitation, which vidrec reads from the file itself (vidrec.convert.tflite).
register_weights(WeightEntry(
    name="movinet_a0_stream.k600_int8",
    url="https://tfhub.dev/tensorflow/lite-model/movinet/a0/stream/kinetics-600/classification/tflite/int8/1"
        "?lite-format=tflite",
    sha256="6125b36e2485eeb5cc1fd6206cf5e5d70235593fbc84610d1dce97fe3aa9c2ac",
    filename="movinet_a0_int8.tflite", num_classes=600, labels=tuple(kinetics600_labels()),
    preprocessing=STREAM_PREP, num_params=2_732_383,
))


@register_model
def movinet_a1_stream(**overrides) -> MoViNet:
    """MoViNet-A1 Stream."""
    return _build("movinet_a1_stream", {"model_id": "a1"}, overrides)
