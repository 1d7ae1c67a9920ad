"""TSN-style frame model: a 2D CNN on every frame, scores averaged over time.

Temporal Segment Networks (Wang et al., ECCV 2016, https://arxiv.org/abs/1608.00859). It has no
temporal modelling at all: the consensus is an order-less average, so a video and its time
reversal get the same prediction. vidrec keeps it as the control in every comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import VideoModel, build_model, linear_head


@dataclass(frozen=True)
class TSNConfig:
    """TSN options: the 2D backbone and the classifier."""

    num_classes: int = 400  # classifier outputs
    backbone: str = "resnet50"  # 2D network run on each frame: "resnet18" | "resnet50" | "small"
    width: int = 32  # base width of the "small" backbone (ignored by the ResNets)
    in_channels: int = 3  # 3 for RGB
    dropout: float = 0.5  # before the classifier, as TSN


def _small_cnn(width: int, in_channels: int) -> tuple[nn.Module, int]:
    """Four strided conv-BN-ReLU layers: a frame encoder small enough for CPU tests and demos."""
    layers, c_in = [], in_channels
    for c_out in (width, 2 * width, 4 * width, 4 * width):
        layers += [
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


def _torchvision_resnet(factory) -> callable:
    def build(width: int, in_channels: int) -> tuple[nn.Module, int]:
        net = factory(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim

    return build


BACKBONES = {
    "small": _small_cnn,
    "resnet18": _torchvision_resnet(resnet18),
    "resnet50": _torchvision_resnet(resnet50),
}


class TSN(VideoModel):
    """A 2D network on every frame, features averaged over time, one linear classifier."""

    def __init__(self, config: TSNConfig):
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ConfigError(unknown_name_message("TSN backbone", config.backbone, list(BACKBONES)))
        self.config = config
        self.backbone, self.num_features = BACKBONES[config.backbone](config.width, config.in_channels)
        self.dropout = nn.Dropout(config.dropout)
        self.head = self.make_head(config.num_classes)

    def make_head(self, num_classes: int) -> nn.Linear:
        return linear_head(self.num_features, num_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 2D network's pooled output for every frame `(B, T, D)`."""
        self.check_input(x)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        return self.checkpointed(self.backbone, frames).view(b, t, -1)

    @property
    def feature_stride(self) -> int:
        """Input pixels per feature-map cell of the 2D network: 16 (small), 32 (ResNets)."""
        return 16 if self.config.backbone == "small" else 32

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Every frame's unpooled 2D feature map, stacked in time: `(B, D, T, H', W')`."""
        self.check_input(x)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        spatial = nn.Sequential(*list(self.backbone.children())[:-2])  # without the global pool (and fc)
        maps = self.checkpointed(spatial, frames)  # (B*T, D, H', W')
        return maps.view(b, t, *maps.shape[1:]).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_features(x).mean(dim=1)  # (B, D): the order-less consensus

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(self.dropout(x))


def _build(arch: str, defaults: dict, overrides: dict, preprocessing: Preprocessing) -> TSN:
    return build_model(
        TSN, TSNConfig, arch=arch, defaults=defaults, overrides=overrides, preprocessing=preprocessing
    )


# Kinetics-style TSN recipe: 8 segments, 224 crops of 256 short side.
_IMAGENET_PREP = Preprocessing(
    num_frames=8,
    sampling_rate=8,
    resize=256,
    crop_size=224,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)
# SynthMotion-sized input for the small backbone.
_SMALL_PREP = Preprocessing(num_frames=8, sampling_rate=2, resize=64, crop_size=56)


def tsn_r50(**overrides) -> TSN:
    """TSN with a ResNet-50 frame encoder (the usual Kinetics baseline)."""
    return _build("tsn_r50", {"backbone": "resnet50"}, overrides, _IMAGENET_PREP)


def tsn_r18(**overrides) -> TSN:
    """TSN with a ResNet-18 frame encoder."""
    return _build("tsn_r18", {"backbone": "resnet18"}, overrides, _IMAGENET_PREP)


def tsn_small(**overrides) -> TSN:
    """TSN with a four-layer CNN: trains on SynthMotion in minutes on a CPU."""
    return _build("tsn_small", {"backbone": "small", "dropout": 0.2}, overrides, _SMALL_PREP)


ARCHITECTURES = (tsn_r50, tsn_r18, tsn_small)
