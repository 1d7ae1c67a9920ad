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
from torchvision.ops import StochasticDepth

from vidrec.data.preprocessing import Preprocessing
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import StreamingModel, build_model, linear_head
from vidrec.models.layers import same_padding

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU, "hard_swish": nn.Hardswish}
GATES = {"sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid}
SE_TYPES = ("none", "3d", "2plus3d")


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
    "a0": Spec(
        8,
        (
            _stage(8, (24, K15, 2)),
            _stage(32, (80, K33, 2), (80, K33), (80, K33)),
            _stage(56, (184, K53, 2), (112, K33), (184, K33)),
            _stage(56, (184, K53), (184, K33), (184, K33), (184, K33)),
            _stage(104, (384, K53, 2), (280, K15), (280, K15), (344, K15)),
        ),
        project=480,
        hidden=2048,
    ),
    "a1": Spec(
        16,
        (
            _stage(16, (40, K15, 2), (40, K33)),
            _stage(40, (96, K33, 2), (120, K33), (96, K33), (96, K33)),
            _stage(64, (216, K53, 2), (128, K33), (216, K33), (168, K33), (216, K33)),
            _stage(64, (216, K53), (216, K33), (216, K33), (128, K33), (128, K15), (216, K33)),
            _stage(
                136, (456, K53, 2), (360, K15), (360, K15), (360, K15), (456, K15), (456, K33), (544, K13)
            ),
        ),
        project=600,
        hidden=2048,
    ),
}


@dataclass(frozen=True)
class MoViNetConfig:
    """MoViNet stream options: which architecture, squeeze-excitation, activations."""

    num_classes: int = 600  # Kinetics-600, as the released models
    model_id: str = "a0"  # key of SPECS
    # squeeze-excitation pooling: "none" | "3d" (cumulative) | "2plus3d" (cumulative + per frame)
    se_type: str = "2plus3d"
    activation: str = "hard_swish"  # of every conv unit: "hard_swish" | "swish" | "relu6" | "relu"
    gating_activation: str = "hard_sigmoid"  # of the squeeze-excitation gate
    se_ratio: float = 0.25  # squeeze-excitation hidden width / expansion width
    dropout: float = 0.5  # before the classifier
    stochastic_depth: float = 0.0  # drop rate of the last block (linear in depth)
    bn_eps: float = 1e-3  # TensorFlow's batch norm epsilon
    in_channels: int = 3

    def __post_init__(self):
        for name, value, valid in (
            ("MoViNet model_id", self.model_id, SPECS),
            ("se_type", self.se_type, SE_TYPES),
            ("activation", self.activation, ACTIVATIONS),
            ("gating_activation", self.gating_activation, GATES),
        ):
            if value not in valid:
                raise ConfigError(unknown_name_message(name, value, list(valid)))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of `divisor`, never below 90% of it (TF's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class FrameConv(nn.Module):
    """A per-frame conv (TensorFlow 'SAME' padding), batch norm and optional activation on `(N, C, H, W)`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        *,
        stride: int = 1,
        depthwise: bool = False,
        act: str | None,
        eps: float,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            bias=False,
            groups=in_channels if depthwise else 1,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero padding for TensorFlow 'SAME' (the extra pixel at the end)."""
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        if k == 1:
            return x
        (h0, h1), (w0, w1) = (same_padding(size, k, s) for size in x.shape[-2:])
        return F.pad(x, (w0, w1, h0, h1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class CausalTemporalConv(nn.Module):
    """Depthwise `(k, 1, 1)` convolution over time that sees only the past: the last `k - 1` input
    frames are carried in a stream buffer (zeros at the start), then BN and activation."""

    def __init__(self, channels: int, kernel: int, *, act: str, eps: float):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), groups=channels, bias=False)  # taps over time
        self.bn = nn.BatchNorm2d(channels, eps=eps)
        self.act = ACTIVATIONS[act]()
        self.buffer_size = kernel - 1

    def with_buffer(self, x: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
        """`x` (B*T, C, H, W) after the buffered frames: `(B, k-1+T, C, H, W)`."""
        if buffer.shape[-3:] != x.shape[-3:]:
            raise ConfigError(
                f"stream state holds {tuple(buffer.shape[-2:])} feature maps, these frames give "
                f"{tuple(x.shape[-2:])}: make the state with init_state(batch, height=H, width=W)"
            )
        return torch.cat([buffer, x.view(buffer.shape[0], -1, *x.shape[1:])], dim=1)

    def taps(self, frames: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The k-tap causal sum over `frames` (B, k-1+T, C, H, W) -> `(B*T, C, H, W)`: a weighted sum of
        shifted views, cheaper than a grouped Conv3d on CPU, same result."""
        t = frames.shape[1] - self.buffer_size
        weight = weight.reshape(-1, self.buffer_size + 1)  # (C, k)
        y = sum(frames[:, i : i + t] * weight[:, i, None, None] for i in range(self.buffer_size + 1))
        return y.flatten(0, 1)

    def forward(self, x: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x` (B*T, C, H, W), `buffer` (B, k-1, C, H, W) -> output (B*T, C, H, W), next buffer."""
        frames = self.with_buffer(x, buffer)
        y = self.taps(frames, self.conv.weight)
        if self.conv.bias is not None:  # batch norm folded in for inference
            y = y + self.conv.bias[:, None, None]
        return self.act(self.bn(y)), frames[:, frames.shape[1] - self.buffer_size :]


def running_mean(
    frame_means: torch.Tensor, total: torch.Tensor, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal global average: `frame_means` (B, T, C) -> mean over all frames so far at each frame
    (B, T, C), and the new running sum (B, C). `count` is the number of frames before this call:
    one for every row (a scalar), or one per row `(B,)` (streams of different ages in a batch)."""
    t = frame_means.shape[1]
    sums = frame_means.cumsum(1) + total[:, None]
    seen = count.reshape(-1, 1) + torch.arange(1, t + 1, device=sums.device, dtype=sums.dtype)  # (1|B, T)
    return sums / seen[..., None], sums[:, -1]


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

    def forward(
        self, x: torch.Tensor, total: torch.Tensor, count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = total.shape[0]
        frame_means = x.mean((2, 3)).view(b, -1, x.shape[1])  # (B, T, C)
        squeezed, total = running_mean(frame_means, total, count)
        if self.se_type == "2plus3d":
            squeezed = torch.cat([squeezed, frame_means], dim=-1)  # (B, T, 2C)
        scale = self.gate(self.expand(self.act(self.reduce(squeezed))))  # (B, T, C)
        return x * scale.reshape(-1, x.shape[1], 1, 1), total


class SkipPool(nn.Module):
    """3x3 stride-2 average pool, 'SAME' padding, padded pixels left out of the mean (as TF)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h0, h1), (w0, w1) = (same_padding(size, 3, 2) for size in x.shape[-2:])
        return F.avg_pool2d(F.pad(x, (w0, w1, h0, h1)), 3, 2, divisor_override=1) / self.counts(x)

    @staticmethod
    def counts(x: torch.Tensor) -> torch.Tensor:
        """How many real (unpadded) pixels each output window holds `(1, 1, H', W')`."""
        (h0, h1), (w0, w1) = (same_padding(size, 3, 2) for size in x.shape[-2:])
        ones = F.pad(torch.ones_like(x[:1, :1]), (w0, w1, h0, h1))
        return F.avg_pool2d(ones, 3, 2, divisor_override=1)


class ReZero(nn.Module):
    """The residual branch times a learned scalar that starts at zero (each block starts as identity)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Add(nn.Module):
    """`branch + skip`: a module so that a deployable form can swap in its own arithmetic."""

    def forward(self, branch: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return skip + branch


class Bottleneck(nn.Module):
    """Inverted bottleneck: 1x1 expand, kxk depthwise (stride s), causal kt depthwise over time,
    squeeze-excite, 1x1 project; the branch is scaled by a zero-initialised scalar (ReZero) and
    added to the input (average-pooled and projected where the shape changes).

        x ─> expansion ─> spatial (k x k /s) ─> temporal (kt, buffered) ─> SE ─> projection ─> rezero ─(+)─>
        └─────────────── [skip_pool ─> skip 1x1, where the shape changes] ────────────────────────┘
    """

    def __init__(
        self, in_channels: int, out_channels: int, layer: Layer, *, config: MoViNetConfig, drop: float
    ):
        super().__init__()
        act, eps = config.activation, config.bn_eps
        kt, k, _ = layer.kernel
        self.channels = layer.expand  # width of the stream state this block keeps
        self.expansion = FrameConv(in_channels, layer.expand, act=act, eps=eps)
        self.spatial = FrameConv(
            layer.expand, layer.expand, k, stride=layer.stride, depthwise=True, act=act, eps=eps
        )
        self.temporal = CausalTemporalConv(layer.expand, kt, act=act, eps=eps) if kt > 1 else None
        self.se = None
        if config.se_type != "none":
            hidden = make_divisible(
                config.se_ratio * layer.expand * (2 if config.se_type == "2plus3d" else 1)
            )
            self.se = CausalSqueezeExcite(
                layer.expand, hidden, se_type=config.se_type, act=act, gate=config.gating_activation
            )
        self.projection = FrameConv(layer.expand, out_channels, act=None, eps=eps)
        self.rezero = ReZero()
        self.drop_path = StochasticDepth(drop, "row")
        self.downsample = layer.stride > 1
        self.skip_pool = SkipPool() if self.downsample else None
        self.skip = None
        if self.downsample or in_channels != out_channels:
            self.skip = FrameConv(in_channels, out_channels, act=None, eps=eps)
        self.add = Add()

    def forward(
        self, x: torch.Tensor, buffer: torch.Tensor | None, pool_sum: torch.Tensor | None, count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`x` (B*T, C, H, W) and this block's state -> output and next state (a pure function, so
        it can be recomputed under gradient checkpointing)."""
        y = self.spatial(self.expansion(x))
        if self.temporal is not None:
            y, buffer = self.temporal(y, buffer)
        if self.se is not None:
            y, pool_sum = self.se(y, pool_sum, count)
        y = self.drop_path(self.rezero(self.projection(y)))
        if self.skip_pool is not None:
            x = self.skip_pool(x)
        if self.skip is not None:
            x = self.skip(x)
        return self.add(y, x), buffer, pool_sum


class SpatialMean(nn.Module):
    """Each frame's global spatial average: `(N, C, H, W)` -> `(N, C)`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class RunningMean(nn.Module):
    """The head's causal pool: per-frame features `(B, T, P)` and the running sum of the frames
    before -> the mean over every frame seen `(B, P)` and the new running sum."""

    def forward(
        self, feats: torch.Tensor, total: torch.Tensor, count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        total = total + feats.sum(1)
        return total / (count.reshape(-1, 1) + feats.shape[1]), total


class MoViNet(StreamingModel):
    """Causal MoViNet: `forward((B, C, T, H, W))` gives the logits after the last frame, which is
    exactly what `step` gives after streaming the same frames."""

    forms = frozenset({"int8", "tflite"})

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
                stage.append(
                    Bottleneck(c_in, out, layer, config=config, drop=config.stochastic_depth * index / depth)
                )
                c_in = out
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.project = FrameConv(c_in, spec.project, act=act, eps=eps)
        self.frame_pool = SpatialMean()
        self.pool = RunningMean()
        self.num_features = spec.project
        self.hidden = nn.Linear(spec.project, spec.hidden)
        self.hidden_act = ACTIVATIONS[act]()
        self.dropout = nn.Dropout(config.dropout)
        self.head = self.make_head(config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # Keras HeNormal

    def make_head(self, num_classes: int) -> nn.Linear:
        return linear_head(self.hidden.out_features, num_classes)

    def named_layers(self):
        """(`blockS_layerL`, block) in order: the official names, used for states and weight import."""
        for s, stage in enumerate(self.blocks):
            for i, block in enumerate(stage):
                yield f"block{s}_layer{i}", block

    def init_state(self, batch_size: int, *, height: int | None = None, width: int | None = None) -> dict:
        """Zero state for a stream of `height x width` frames (default: the model's input size)."""
        size = self.preprocessing.test_crop_size or self.preprocessing.crop_size
        h, w = height or size, width or size
        p = next(self.parameters())
        zeros = dict(device=p.device, dtype=p.dtype)
        state = {
            "frame_count": torch.zeros((), **zeros),
            "head_pool_sum": torch.zeros(batch_size, self.num_features, **zeros),
        }
        h, w = -(-h // 2), -(-w // 2)  # after the stem
        for name, block in self.named_layers():
            if block.downsample:
                h, w = -(-h // 2), -(-w // 2)
            channels = block.channels
            if block.temporal is not None:
                state[f"{name}_stream_buffer"] = torch.zeros(
                    batch_size, block.temporal.buffer_size, channels, h, w, **zeros
                )
            if block.se is not None:
                state[f"{name}_pool_sum"] = torch.zeros(batch_size, channels, **zeros)
        return state

    def step_pooled(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Frames `(B, C, t, H, W)` after `state`: the pooled features over every frame seen
        `(B, P)`, each frame's features before that pool `(B, t, P)`, and the next state."""
        self.check_input(x)
        b, c, t, h, w = x.shape
        buffers = [v for k, v in state.items() if k.endswith("stream_buffer")]
        if buffers and buffers[0].shape[0] != b:
            raise ConfigError(f"state is for batch size {buffers[0].shape[0]}, frames have batch size {b}")
        new_state, count = {}, state["frame_count"]
        x = self.stem(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, C, H, W): per-frame 2D ops
        for name, block in self.named_layers():
            buffer, pool_sum = state.get(f"{name}_stream_buffer"), state.get(f"{name}_pool_sum")
            x, buffer, pool_sum = self.checkpointed(block, x, buffer, pool_sum, count)
            if buffer is not None:
                new_state[f"{name}_stream_buffer"] = buffer
            if pool_sum is not None:
                new_state[f"{name}_pool_sum"] = pool_sum
        feats = self.frame_pool(self.project(x)).view(b, t, -1)  # (B, T, P)
        pooled, new_state["head_pool_sum"] = self.pool(feats, state["head_pool_sum"], count)
        new_state["frame_count"] = count + t
        return pooled, feats, new_state

    def step_features(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Like `step`, but each frame's features before the head's pool `(B, t, P)`: a pool over
        a window of them gives logits for the last seconds instead of the whole stream
        (`forward_head(window.mean(1))`)."""
        _, feats, new_state = self.step_pooled(frames, state)
        return feats, new_state

    def step(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Feed `t >= 1` more frames `(B, C, t, H, W)`: the logits after the last of them (B, classes),
        i.e. for the whole stream so far, and the next state (the given one is not modified)."""
        pooled, _, new_state = self.step_pooled(frames, state)
        return self.forward_head(pooled), new_state

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The causal pool after the clip's last frame `(B, P)`, streamed from the zero state."""
        return self.step_pooled(x, self.init_state(x.shape[0], height=x.shape[-2], width=x.shape[-1]))[0]

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.hidden_act(self.hidden(x)))
        return x if pre_logits else self.head(x)


# Activations an int8 runtime rounds inside the pools and the head, beside the modules' outputs.
POOL_POINTS = (
    "input",
    "frame_pool.sum",
    "frame_pool.mean",
    "pool.state",
    "pool.sum",
    "pool.mean",
    "hidden",
    "head",
)


def int8_points(model: MoViNet) -> list[str]:
    """Every activation an int8 runtime rounds (the points of `quant_grids`): each conv's output (by
    module path), per block its ReZero product, skip pool (where it downsamples) and sum, and
    POOL_POINTS."""
    kinds = (FrameConv, CausalTemporalConv, ReZero, SkipPool, Add)
    return [name for name, m in model.named_modules() if isinstance(m, kinds)] + list(POOL_POINTS)


def _build(arch: str, defaults: dict, overrides: dict, prep: Preprocessing | None = None) -> MoViNet:
    return build_model(
        MoViNet,
        MoViNetConfig,
        arch=arch,
        defaults=defaults,
        overrides=overrides,
        preprocessing=prep or STREAM_PREP,
    )


# The released stream models: RGB in [0, 1] (no normalisation), 172x172, frames at 5 fps.
STREAM_PREP = Preprocessing(
    num_frames=50,
    sampling_rate=1,
    target_fps=5.0,
    resize=172,
    crop_size=172,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
)


def kinetics600_labels() -> list[str]:
    """The 600 Kinetics-600 class names in the released models' logit order."""
    with open(os.path.join(os.path.dirname(__file__), "kinetics600_labels.txt")) as f:
        return [line.strip() for line in f if line.strip()]


def movinet_a0_stream(**overrides) -> MoViNet:
    """MoViNet-A0 Stream (3.1M parameters, 2.7 GFLOPs on 50x172x172)."""
    return _build("movinet_a0_stream", {"model_id": "a0"}, overrides)


def movinet_a1_stream(**overrides) -> MoViNet:
    """MoViNet-A1 Stream."""
    return _build("movinet_a1_stream", {"model_id": "a1"}, overrides)


def movinet_a0_synth(**overrides) -> MoViNet:
    """MoViNet-A0 Stream's network, for training from scratch on SynthMotion (16 frames of 56 px).
    Each frame is centred on its own colour: SynthMotion's random background colour otherwise
    meets the causal buffer's zero start as a sudden appearance (see `normalize`), and a frame's
    own mean, unlike a clip's, is known when the frame arrives, so the model still streams."""
    prep = dataclasses.replace(SYNTHMOTION_PREP, centering="frame")
    return _build("movinet_a0_synth", {"model_id": "a0"}, overrides, prep)


ARCHITECTURES = (movinet_a0_stream, movinet_a1_stream, movinet_a0_synth)
