"""I3D: Inflated 3D ConvNets (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017,
https://arxiv.org/abs/1705.07750), and the I3D-ResNet-50 baseline of Wang et al. (Non-local
Neural Networks, CVPR 2018, https://arxiv.org/abs/1711.07971).

Inception I3D follows kinetics-i3d and its PyTorch port pytorch-i3d exactly: TensorFlow 'SAME'
padding, batch norm with eps 1e-3, no temporal pooling in the first two max-pools (the paper's
argument: early temporal pooling would merge frames before motion is seen), logits computed per
remaining time step and averaged.

    (B, 3|2, T, 224, 224)
      conv1a 7x7x7 /2 ─ pool2a 1x3x3 /(1,2,2) ─ conv2b 1x1x1 ─ conv2c 3x3x3 ─ pool3a 1x3x3 /(1,2,2)
      mixed3b ─ mixed3c ─ pool4a 3x3x3 /2 ─ mixed4b..4f ─ pool5a 2x2x2 /2 ─ mixed5b ─ mixed5c
      avg pool 2x7x7 /1 ─ dropout ─ 1x1x1 conv (logits per time step) ─ mean over time
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.data.preprocessing import KINETICS_MEAN, KINETICS_STD, Preprocessing
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import VideoModel, build_model, linear_head
from vidrec.models.layers import (
    FROM_SCRATCH_INIT,
    TEMPORAL_PADDINGS,
    ConvBNReLU,
    SameMaxPool3d,
    init_cnn_weights,
    res_stage,
    resnet_stem,
)
from vidrec.models.tsn import BACKBONES as TSN_BACKBONES

# Inception module widths: (branch0 1x1, branch1 1x1 -> 3x3x3, branch2 1x1 -> 3x3x3, branch3 pool -> 1x1)
INCEPTION_WIDTHS = OrderedDict(
    [
        ("mixed3b", (64, 96, 128, 16, 32, 32)),
        ("mixed3c", (128, 128, 192, 32, 96, 64)),
        ("mixed4b", (192, 96, 208, 16, 48, 64)),
        ("mixed4c", (160, 112, 224, 24, 64, 64)),
        ("mixed4d", (128, 128, 256, 24, 64, 64)),
        ("mixed4e", (112, 144, 288, 32, 64, 64)),
        ("mixed4f", (256, 160, 320, 32, 128, 128)),
        ("mixed5b", (256, 160, 320, 32, 128, 128)),
        ("mixed5c", (384, 192, 384, 48, 128, 128)),
    ]
)


@dataclass(frozen=True)
class I3DConfig:
    """Inception I3D's options (`create_model(..., **fields)`)."""

    num_classes: int = 400  # classifier outputs
    in_channels: int = 3  # 3 for RGB, 2 for optical flow (x, y)
    dropout: float = 0.5  # before the logits, as kinetics-i3d
    temporal_padding: str = "zeros"  # "zeros" (as the original) or "replicate" (keeps a boring video boring)
    width_multiplier: float = 1.0  # every conv's width x this (rounded, >= 4): CPU-scale variants


def _out_channels(widths: tuple[int, ...]) -> int:
    return widths[0] + widths[2] + widths[4] + widths[5]


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated along channels (Szegedy et al., 2015)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], *, temporal_padding: str):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        unit = dict(temporal_padding=temporal_padding)
        self.branch0 = ConvBNReLU(in_channels, b0, **unit)
        self.branch1 = nn.Sequential(
            ConvBNReLU(in_channels, b1a, **unit), ConvBNReLU(b1a, b1b, (3, 3, 3), **unit)
        )
        self.branch2 = nn.Sequential(
            ConvBNReLU(in_channels, b2a, **unit), ConvBNReLU(b2a, b2b, (3, 3, 3), **unit)
        )
        self.branch3 = nn.Sequential(
            SameMaxPool3d((3, 3, 3), (1, 1, 1), **unit), ConvBNReLU(in_channels, b3, **unit)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class InceptionI3D(VideoModel):
    """Inflated Inception-v1 with batch norm. Input `(B, C, T>=8, H>=112, W>=112)`."""

    def __init__(self, config: I3DConfig):
        super().__init__()
        if config.temporal_padding not in TEMPORAL_PADDINGS:
            raise ConfigError(
                unknown_name_message("temporal_padding", config.temporal_padding, TEMPORAL_PADDINGS)
            )
        self.config = config
        unit = dict(temporal_padding=config.temporal_padding)

        def width(w: int) -> int:
            return max(4, round(w * config.width_multiplier))

        layers: list[tuple[str, nn.Module]] = [
            ("conv1a", ConvBNReLU(config.in_channels, width(64), (7, 7, 7), stride=(2, 2, 2), **unit)),
            ("pool2a", SameMaxPool3d((1, 3, 3), (1, 2, 2), **unit)),
            ("conv2b", ConvBNReLU(width(64), width(64), **unit)),
            ("conv2c", ConvBNReLU(width(64), width(192), (3, 3, 3), **unit)),
            ("pool3a", SameMaxPool3d((1, 3, 3), (1, 2, 2), **unit)),
        ]
        channels = width(192)
        for name, full in INCEPTION_WIDTHS.items():
            widths = tuple(width(w) for w in full)
            if name == "mixed4b":
                layers.append(("pool4a", SameMaxPool3d((3, 3, 3), (2, 2, 2), **unit)))
            elif name == "mixed5b":
                layers.append(("pool5a", SameMaxPool3d((2, 2, 2), (2, 2, 2), **unit)))
            layers.append((name, InceptionBlock(channels, widths, **unit)))
            channels = _out_channels(widths)
        self.features = nn.Sequential(OrderedDict(layers))
        self.num_features = channels  # 1024
        self.dropout = nn.Dropout(config.dropout)
        self.head = self.make_head(config.num_classes)

    def make_head(self, num_classes: int) -> nn.Conv3d:
        return nn.Conv3d(self.num_features, num_classes, 1, bias=True)  # kinetics-i3d's 1x1x1 logits conv

    feature_stride = 32

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last Inception block's output `(B, 1024, T/8, H/32, W/32)`."""
        self.check_input(x)
        for layer in self.features:
            x = self.checkpointed(layer, x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_maps(x)
        t, h, w = x.shape[2:]
        # The original pools 2x7x7 with stride 1 (global in space at 224 px), computes logits per
        # remaining time step and averages them. The logits are affine, so averaging the pooled
        # windows first gives the same result; adapting the window keeps that meaning at any size.
        return F.avg_pool3d(x, (min(2, t), h, w), stride=1).mean((2, 3, 4))  # (B, 1024)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x
        return self.head(self.dropout(x)[:, :, None, None, None]).flatten(1)  # (B, classes)


@dataclass(frozen=True)
class I3DResNetConfig:
    """I3D-ResNet's options."""

    num_classes: int = 400  # classifier outputs
    in_channels: int = 3  # 3 for RGB, 2 for optical flow
    dropout: float = 0.5  # before the classifier
    stage_depths: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks per stage (ResNet-50)
    width: int = 64  # stem width; stage widths are 1x, 2x, 4x, 8x (x4 after each bottleneck)
    zero_init_final_bn: bool = True  # each block starts as identity (PySlowFast RESNET.ZERO_INIT_FINAL_BN)
    head_init_std: float | None = 0.01  # classifier normal(std) (MODEL.FC_INIT_STD); None: PyTorch default


# Temporal kernel of each bottleneck's first conv, by stage: Wang et al.'s I3D-R50 inflates every
# other block from res3 on (PyTorchVideo's i3d_r50 and PySlowFast's I3D config).
def _temporal_kernels(stage: int, depth: int) -> list[int]:
    pattern = {0: [3], 1: [3, 1], 2: [3, 1], 3: [1, 3]}[stage]
    return [pattern[i % len(pattern)] for i in range(depth)]


class ResNetI3D(VideoModel):
    """I3D-ResNet: a ResNet-50 with 5x7x7 stem and 3x1x1 kernels inflated in alternate blocks,
    temporal stride 2 after res2. Layer names follow torchvision's ResNet (stem, layer1..4)."""

    def __init__(self, config: I3DResNetConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.stem = resnet_stem(config.in_channels, w, temporal_kernel=5)
        channels = w
        for s, depth in enumerate(config.stage_depths):
            inner, out = w * 2**s, w * 2**s * 4
            setattr(
                self,
                f"layer{s + 1}",
                res_stage(
                    channels,
                    inner,
                    out,
                    temporal_kernels=_temporal_kernels(s, depth),
                    spatial_stride=2 if s > 0 else 1,
                ),
            )
            channels = out
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))  # temporal stride after res2
        self.num_features = channels
        self.dropout = nn.Dropout(config.dropout)
        init_cnn_weights(self, zero_init_final_bn=config.zero_init_final_bn)
        self.head = self.make_head(config.num_classes)

    def make_head(self, num_classes: int) -> nn.Linear:
        return linear_head(self.num_features, num_classes, std=self.config.head_init_std)

    feature_stride = 32

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """res5's output `(B, 2048, T/2, H/32, W/32)`."""
        self.check_input(x)
        x = self.checkpointed(self.layer1, self.checkpointed(self.stem, x))
        x = self.pool2(x) if x.shape[2] > 1 else x
        for stage in (self.layer2, self.layer3, self.layer4):
            x = self.checkpointed(stage, x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x).mean((2, 3, 4))  # global average pool (B, 2048)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(self.dropout(x))


@dataclass(frozen=True)
class InflatedCNNConfig:
    """An I3D made the paper's way from a 2D CNN: every layer of a TSN backbone turned 3D."""

    num_classes: int = 400  # classifier outputs
    in_channels: int = 3  # 3 for RGB, 2 for optical flow
    backbone: str = "small"  # the 2D network (vidrec.models.tsn.BACKBONES; layer-by-layer: "small")
    width: int = 32  # its base width
    temporal_kernel: int = 3  # time extent given to every k x k conv (k > 1)
    temporal_strides: tuple[int, ...] = (1, 1, 2, 2)  # time stride of each spatially strided conv, in order
    dropout: float = 0.5  # before the classifier


def _inflate_layers(net: nn.Sequential, *, time_kernel: int, time_strides: tuple[int, ...]) -> nn.Sequential:
    """The same layers in 3D: k x k convs get `time_kernel` frames (centred, zero padded in time),
    strided ones the next of `time_strides`; norms and pools become their 3D kinds."""
    strides, out = iter(time_strides), []
    for layer in net:
        if isinstance(layer, nn.Conv2d):
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            t = time_kernel if kh > 1 else 1
            st = next(strides, 1) if sh > 1 else 1
            layer = nn.Conv3d(
                layer.in_channels,
                layer.out_channels,
                (t, kh, kw),
                stride=(st, sh, sw),
                padding=(t // 2, ph, pw),
                bias=layer.bias is not None,
            )
        elif isinstance(layer, nn.BatchNorm2d):
            layer = nn.BatchNorm3d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            layer = nn.AdaptiveAvgPool3d(1)
        elif not isinstance(layer, (nn.ReLU, nn.Flatten)):
            raise ConfigError(f"cannot inflate a {type(layer).__name__} layer by layer")
        out.append(layer)
    return nn.Sequential(*out)


class InflatedCNN(VideoModel):
    """A TSN frame encoder inflated to 3D (I3D's construction, section 2.2 of the paper): the same
    layers and state-dict keys as the 2D network, so its trained weights inflate onto it one to
    one (`vidrec.models.inflate.inflate_tsn`)."""

    def __init__(self, config: InflatedCNNConfig):
        super().__init__()
        if config.backbone != "small":  # the torchvision ResNets are not plain layer sequences
            raise ConfigError(
                f"only the 'small' TSN backbone inflates layer by layer, got '{config.backbone}'"
            )
        self.config = config
        net2d, self.num_features = TSN_BACKBONES[config.backbone](config.width, config.in_channels)
        self.backbone = _inflate_layers(
            net2d, time_kernel=config.temporal_kernel, time_strides=config.temporal_strides
        )
        self.dropout = nn.Dropout(config.dropout)
        init_cnn_weights(self)
        self.head = self.make_head(config.num_classes)

    def make_head(self, num_classes: int) -> nn.Linear:
        # PyTorch's default linear init, not PySlowFast's normal(0.01): trained from scratch on
        # SynthMotion it reached 76% test top-1 after 400 steps against 55% with the 0.01 head.
        return nn.Linear(self.num_features, num_classes)

    feature_stride = 16  # the small backbone's four stride-2 convs

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv block's output `(B, D, T', H', W')` (before the global pool)."""
        self.check_input(x)
        return self.checkpointed(self.backbone[:-2], x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x).mean((2, 3, 4))  # (B, D)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(self.dropout(x))


def _build(cls, config_cls, arch: str, defaults: dict, overrides: dict, prep: Preprocessing):
    return build_model(cls, config_cls, arch=arch, defaults=defaults, overrides=overrides, preprocessing=prep)


# kinetics-i3d: 64 consecutive frames at 25 fps for training, RGB scaled to [-1, 1], 224 crops.
_INCEPTION_RGB_PREP = Preprocessing(
    num_frames=64,
    sampling_rate=1,
    target_fps=25,
    resize=256,
    crop_size=224,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
# Flow is stored as uint8 over [-20, 20] px (vidrec.data.flow) and extracted at the video's own
# rate; mean 0.5, std 0.5 of uint8/255 gives flow / 20 in [-1, 1], as kinetics-i3d feeds it.
_INCEPTION_FLOW_PREP = dataclasses.replace(
    _INCEPTION_RGB_PREP, target_fps=None, mean=(0.5, 0.5), std=(0.5, 0.5), modality="flow"
)
# i3d_small's flow stream (in_channels=2) on SynthMotion flow (`vidrec flow --short-side 64`): the
# RGB crops and timing, the flow scaled as the Inception flow stream's, and no clip centering (a
# clip's mean flow is motion, not a colour offset).
_SYNTHMOTION_FLOW_PREP = dataclasses.replace(
    SYNTHMOTION_PREP, modality="flow", mean=(0.5, 0.5), std=(0.5, 0.5), centering="dataset"
)
# PySlowFast / PyTorchVideo I3D-R50: 8 frames at stride 8, short side 256, 224 crops.
_R50_PREP = Preprocessing(
    num_frames=8, sampling_rate=8, resize=256, crop_size=224, mean=KINETICS_MEAN, std=KINETICS_STD
)


def i3d_inception_rgb(**overrides) -> InceptionI3D:
    """Inception-v1 I3D, RGB stream (12,697,264 parameters with 400 classes, as pytorch-i3d)."""
    return _build(
        InceptionI3D, I3DConfig, "i3d_inception_rgb", {"in_channels": 3}, overrides, _INCEPTION_RGB_PREP
    )


def i3d_inception_flow(**overrides) -> InceptionI3D:
    """Inception-v1 I3D, optical-flow stream: 2 input channels (12,675,312 parameters)."""
    return _build(
        InceptionI3D, I3DConfig, "i3d_inception_flow", {"in_channels": 2}, overrides, _INCEPTION_FLOW_PREP
    )


def i3d_r50(**overrides) -> ResNetI3D:
    """I3D-ResNet-50 (28,043,472 parameters with 400 classes, as PyTorchVideo's i3d_r50)."""
    return _build(ResNetI3D, I3DResNetConfig, "i3d_r50", {}, overrides, _R50_PREP)


# CPU-scale variants for SynthMotion (16 frames of 64 px): the same models, narrower and shallower.
def i3d_inception_small(**overrides) -> InceptionI3D:
    """Inception I3D at a quarter of the width (every conv x 0.25), for SynthMotion on a CPU."""
    defaults = {"in_channels": 3, "width_multiplier": 0.25, "dropout": 0.2}
    return _build(InceptionI3D, I3DConfig, "i3d_inception_small", defaults, overrides, SYNTHMOTION_PREP)


def i3d_resnet_small(**overrides) -> ResNetI3D:
    """I3D-ResNet with one bottleneck per stage and a 16-wide stem, for SynthMotion on a CPU
    (initialised for training from scratch: `vidrec.models.layers.FROM_SCRATCH_INIT`)."""
    defaults = {"stage_depths": (1, 1, 1, 1), "width": 16, "dropout": 0.2, **FROM_SCRATCH_INIT}
    return _build(ResNetI3D, I3DResNetConfig, "i3d_resnet_small", defaults, overrides, SYNTHMOTION_PREP)


def i3d_small(**overrides) -> InflatedCNN:
    """tsn_small's four-layer CNN inflated to 3D (3x3x3 kernels, time stride 2 in the last two
    layers): the I3D that learns SynthMotion in minutes on a CPU, and takes tsn_small's weights.
    With `in_channels=2` it is a flow stream and takes flow preprocessing."""
    defaults = {"backbone": "small", "width": 32, "dropout": 0.2}
    prep = _SYNTHMOTION_FLOW_PREP if overrides.get("in_channels") == 2 else SYNTHMOTION_PREP
    return _build(InflatedCNN, InflatedCNNConfig, "i3d_small", defaults, overrides, prep)


ARCHITECTURES = (
    i3d_inception_rgb,
    i3d_inception_flow,
    i3d_r50,
    i3d_inception_small,
    i3d_resnet_small,
    i3d_small,
)
