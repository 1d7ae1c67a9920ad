"""Spatio-temporal action detection (AVA): a video backbone's feature maps, pooled inside each
person's box, classified per box with independent sigmoids (Gu et al., CVPR 2018; the SlowFast
paper's AVA detector, PySlowFast's `ResNetRoIHead`; VideoMAE's detector pools its token map the
same way).

    clip (B, C, T, H, W) ─> backbone.feature_maps ─> [(B, C_p, T_p, H', W') per pathway]
    boxes (K, 5): batch index, x1, y1, x2, y2 in input pixels
      per pathway: mean over T_p ─> RoIAlign 7x7 (1/stride, aligned) ─> max over 7x7 ─> (K, C_p)
      concat ─> dropout ─> linear ─> logits (K, num_classes)     (sigmoid: per-class scores)

The backbones are the classifiers of the other families, built by their own builders and with
their classifier removed; PySlowFast's AVA models run res5 at spatial stride 1 with dilation 2
(feature stride 16), set here through the backbone's options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.ops import roi_align

from vidrec.data.preprocessing import KINETICS_MEAN, KINETICS_STD, Preprocessing
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models import i3d, slowfast, tsn, videomae
from vidrec.models.base import DetectionModel, VideoModel, build_model, linear_head

BACKBONES = {
    fn.__name__: fn
    for fn in (*slowfast.ARCHITECTURES, *tsn.ARCHITECTURES, *videomae.ARCHITECTURES, *i3d.ARCHITECTURES)
}
DILATED_RES5 = {"res5_stride": 1, "res5_dilation": 2}  # PySlowFast's AVA backbones: feature stride 16


@dataclass(frozen=True)
class DetectorConfig:
    """An action detector: which backbone (a registered classifier) and the box head's options."""

    backbone: str = "slowfast_r50_8x8"  # a classifier builder of vidrec.models (slowfast, i3d, tsn, videomae)
    backbone_options: dict = field(default_factory=dict)  # its config overrides (res5 dilation, ...)
    num_classes: int = 80  # AVA's 80 actions (evaluated on 60)
    dropout: float = 0.5  # before the projection
    resolution: int = 7  # RoIAlign output side
    aligned: bool = True  # RoIAlign's half-pixel alignment (PySlowFast DETECTION.ALIGNED)
    head_init_std: float | None = 0.01  # projection init, normal(std) (None: PyTorch's default)


class RoIHead(nn.Module):
    """Per pathway: temporal mean, RoIAlign, spatial max; then concat, dropout, linear."""

    def __init__(
        self,
        dims: list[int],
        num_classes: int,
        *,
        stride: int,
        resolution: int = 7,
        dropout: float = 0.5,
        aligned: bool = True,
        init_std: float | None = 0.01,
    ):
        super().__init__()
        self.stride, self.resolution, self.aligned = stride, resolution, aligned
        self.dropout = nn.Dropout(dropout)
        self.projection = linear_head(sum(dims), num_classes, std=init_std)

    def pool(self, maps: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """One feature vector per box `(K, sum(dims))`."""
        pooled = []
        for m in maps:  # (B, C, T, H', W')
            frame = m.mean(2)  # (B, C, H', W'): PySlowFast's AvgPool3d over all of T
            r = roi_align(
                frame,
                boxes.to(frame.dtype),
                self.resolution,
                spatial_scale=1.0 / self.stride,
                sampling_ratio=0,
                aligned=self.aligned,
            )  # (K, C, 7, 7)
            pooled.append(r.amax(dim=(2, 3)))  # MaxPool2d(7, stride 1) on a 7x7 map
        return torch.cat(pooled, dim=1)

    def forward(self, maps: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(self.pool(maps, boxes)))


class ActionDetector(DetectionModel):
    """A backbone's feature maps and a `RoIHead`: `forward(x, boxes)` -> logits `(K, num_classes)`."""

    def __init__(self, config: DetectorConfig):
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ConfigError(unknown_name_message("detection backbone", config.backbone, list(BACKBONES)))
        self.config = config
        backbone = BACKBONES[config.backbone](**config.backbone_options)
        if not isinstance(backbone, VideoModel) or backbone.feature_stride is None:
            raise ConfigError(f"{config.backbone} gives no feature maps: it cannot be a detection backbone")
        backbone.drop_classifier()
        self.backbone = backbone
        self.head = self.make_head(config.num_classes)

    def make_head(self, num_classes: int) -> RoIHead:
        c = self.config
        return RoIHead(
            self.backbone.feature_dims,
            num_classes,
            stride=self.backbone.feature_stride,
            resolution=c.resolution,
            dropout=c.dropout,
            aligned=c.aligned,
            init_std=c.head_init_std,
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}

    def check_boxes(self, boxes: torch.Tensor, batch: int) -> None:
        """One clear error for boxes of the wrong shape or batch indices outside the batch."""
        if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
            shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
            raise ConfigError(f"{self.arch} expects boxes (K, 5): batch index, x1, y1, x2, y2; got {shape}")
        if torch.compiler.is_compiling():  # traced (torch.export, ONNX): values are not known yet
            return
        if len(boxes) and not boxes.is_meta and (boxes[:, 0].min() < 0 or boxes[:, 0].max() >= batch):
            raise ConfigError(
                f"box batch indices must be in [0, {batch}), got {boxes[:, 0].unique().tolist()}"
            )

    def feature_maps(self, x) -> list[torch.Tensor]:
        """The backbone's maps, always as a list (one per pathway)."""
        maps = self.backbone.feature_maps(x)
        return maps if isinstance(maps, list) else [maps]

    def forward(self, x, boxes: torch.Tensor) -> torch.Tensor:
        batch = (x[0] if isinstance(x, (list, tuple)) else x).shape[0]
        self.check_boxes(boxes, batch)
        return self.head(self.feature_maps(x), boxes)


def _build(arch: str, defaults: dict, overrides: dict, prep: Preprocessing) -> ActionDetector:
    return build_model(
        ActionDetector, DetectorConfig, arch=arch, defaults=defaults, overrides=overrides, preprocessing=prep
    )


def _ava_prep(num_frames: int, sampling_rate: int, test_size: int) -> Preprocessing:
    # PySlowFast's AVA recipe: short side jittered in [256, 320] and 224 crops with flips for
    # training; at test the whole frame, short side TEST_CROP_SIZE (no crop).
    return Preprocessing(
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        resize=256,
        crop_size=224,
        test_crop_size=test_size,
        mean=KINETICS_MEAN,
        std=KINETICS_STD,
    )


def slowfast_r50_ava(**overrides) -> ActionDetector:
    """SlowFast R50 8x8 on AVA (PySlowFast's AVA/SLOWFAST_32x2_R50_SHORT: res5 dilated, aligned
    RoIAlign, 80 classes, test short side 224)."""
    defaults = {"backbone": "slowfast_r50_8x8", "backbone_options": dict(DILATED_RES5)}
    return _build("slowfast_r50_ava", defaults, overrides, _ava_prep(32, 2, 224))


def slowfast_r101_ava(**overrides) -> ActionDetector:
    """SlowFast R101 8x8 on AVA (PySlowFast's AVA/c2/SLOWFAST_32x2_R101_50_50: res5 dilated,
    temporal kernels in the first 6 res4 blocks, dot-product non-local blocks after Slow res4
    blocks 6, 13 and 20 with 2x2x2 pooling, unaligned RoIAlign, test short side 256)."""
    options = {
        **DILATED_RES5,
        "res4_temporal_blocks": 6,
        "slow_nonlocal": ((), (), (6, 13, 20), ()),
        "nonlocal_pool": (2, 2, 2),
        "nonlocal_instantiation": "dot_product",
    }
    defaults = {"backbone": "slowfast_r101_8x8", "backbone_options": options, "aligned": False}
    return _build("slowfast_r101_ava", defaults, overrides, _ava_prep(32, 2, 256))


def slow_r50_ava(**overrides) -> ActionDetector:
    """Slow-only R50 on AVA, 4 frames at stride 16 (PySlowFast's AVA/SLOW_8x8_R50_SHORT)."""
    defaults = {"backbone": "slow_r50_8x8", "backbone_options": dict(DILATED_RES5)}
    return _build("slow_r50_ava", defaults, overrides, _ava_prep(4, 16, 256))


def videomae_b_ava(**overrides) -> ActionDetector:
    """VideoMAE ViT-B/16 with the box head on its token map (stride 16), as VideoMAE's AVA models."""
    defaults = {"backbone": "videomae_b", "backbone_options": {"use_mean_pooling": False}}
    prep = Preprocessing(
        num_frames=16,
        sampling_rate=4,
        resize=256,
        crop_size=224,
        test_crop_size=256,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    return _build("videomae_b_ava", defaults, overrides, prep)


# SynthMotion-AVA (128 px frames, actors at SynthMotion's scale): 16 frames, 112 px training
# crops of the short side jittered in [128, 160], the whole 128 px frame at test, no flips (left
# and right are labels), clips centred on their own colour as the SynthMotion classifiers were.
SYNTH_AVA_PREP = Preprocessing(
    num_frames=16,
    sampling_rate=1,
    resize=128,
    crop_size=112,
    test_crop_size=128,
    flip=False,
    centering="clip",
)
_SMALL_HEAD = {"num_classes": 13, "dropout": 0.2, "head_init_std": None}


def i3d_small_ava(**overrides) -> ActionDetector:
    """i3d_small (SynthMotion's I3D) with the box head, for SynthMotion-AVA."""
    defaults = {"backbone": "i3d_small", **_SMALL_HEAD}
    return _build("i3d_small_ava", defaults, overrides, SYNTH_AVA_PREP)


def tsn_small_ava(**overrides) -> ActionDetector:
    """The per-frame (2D) baseline: tsn_small's CNN on every frame, maps averaged over time."""
    defaults = {"backbone": "tsn_small", **_SMALL_HEAD}
    return _build("tsn_small_ava", defaults, overrides, SYNTH_AVA_PREP)


def slowfast_small_ava(**overrides) -> ActionDetector:
    """slowfast_small with res5 dilated (stride 16) and the box head, for SynthMotion-AVA."""
    defaults = {"backbone": "slowfast_small", "backbone_options": dict(DILATED_RES5), **_SMALL_HEAD}
    return _build("slowfast_small_ava", defaults, overrides, SYNTH_AVA_PREP)


def fast_small_ava(**overrides) -> ActionDetector:
    """fast_small (SlowFast's Fast pathway alone) with res5 dilated and the box head."""
    defaults = {"backbone": "fast_small", "backbone_options": dict(DILATED_RES5), **_SMALL_HEAD}
    return _build("fast_small_ava", defaults, overrides, SYNTH_AVA_PREP)


def videomae_small_ava(**overrides) -> ActionDetector:
    """videomae_small_synth (8 px patches) with the box head on its token map."""
    defaults = {
        "backbone": "videomae_small_synth",
        "backbone_options": {"use_mean_pooling": False},
        **_SMALL_HEAD,
    }
    return _build("videomae_small_ava", defaults, overrides, SYNTH_AVA_PREP)


ARCHITECTURES = (
    slowfast_r50_ava,
    slowfast_r101_ava,
    slow_r50_ava,
    videomae_b_ava,
    i3d_small_ava,
    tsn_small_ava,
    slowfast_small_ava,
    fast_small_ava,
    videomae_small_ava,
)
