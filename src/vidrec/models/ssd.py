"""SSD MobileNet v1 (Liu et al., ECCV 2016; Howard et al., 2017): the COCO detector of TensorFlow's
object-detection API that its TFLite example ships, here to find the people whose actions vidrec
recognises. An image model: frames in, boxes and scores out (no time axis).

    image (B, 3, 300, 300) in [-1, 1]
      └─> MobileNet v1 (depth x0.75): conv 3x3/2, 13 depthwise-separable blocks, ReLU6
            ├─ block 11 (19x19) ───────────────────────────────> predictors, 3 anchors per cell
            └─ block 13 (10x10) ───────────────────────────────> predictors, 6 anchors per cell
                 └─> 4 extra layers (1x1, then 3x3/2): 5x5, 3x3, 2x2, 1x1 ─> predictors, 6 each
      1917 anchors: box encodings (ty, tx, th, tw) and 1 + 90 class logits (0 = background)
      └─> decode on the anchors, sigmoid, class-agnostic NMS: TFLite_Detection_PostProcess's
          fast path (one class per box, at most `max_detections`)

Convolutions pad as TensorFlow's 'SAME' (the extra pixel at the end), so the weights of the
TensorFlow export line up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, nms

from vidrec.errors import ConfigError
from vidrec.models.base import ImageDetector, build_config
from vidrec.models.layers import same_padding

MOBILENET_V1 = (  # (output width at depth 1.0, stride) of blocks 1-13 (block 0 is the 3x3 conv)
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


@dataclass(frozen=True)
class SSDConfig:
    """The TF object-detection API's ssd_mobilenet_v1 (COCO, 300x300) settings."""

    num_classes: int = 90  # COCO's 90 ids; the heads add the background as logit 0
    depth_multiplier: float = 0.75  # the TFLite example's model (0.75 of MobileNet v1's widths)
    min_depth: int = 16  # no layer narrower than this
    extra_depths: tuple[int, int, int, int] = (512, 256, 256, 128)  # 3x3 widths of the extra layers
    image_size: int = 300
    min_scale: float = 0.2  # anchor scales spread from min to max over the 6 maps
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    box_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w
    nms_iou: float = 0.6
    score_threshold: float = 1e-8  # the post-processing op's own floor; callers filter higher
    max_detections: int = 10


def _depth(width: int, c: SSDConfig) -> int:
    return max(int(width * c.depth_multiplier), c.min_depth)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding for its input size, then ReLU6 when `relu6`."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, relu6=True):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=True)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h0, h1), (w0, w1) = (same_padding(s, self.kernel_size[0], self.stride[0]) for s in x.shape[2:])
        y = super().forward(F.pad(x, (w0, w1, h0, h1)) if h0 or h1 or w0 or w1 else x)
        return F.relu6(y) if self.relu6 else y


def anchor_boxes(c: SSDConfig, sizes: list[int]) -> torch.Tensor:
    """The SSD anchor generator of the TF object-detection API: `(A, 4)` as (y, x, h, w),
    normalised, ordered cell by cell (row-major) and, in a cell, box by box; the lowest map has 3
    boxes (scale 0.1 square, and 2:1, 1:2 at its scale), the others one per aspect ratio plus a
    square at the geometric mean of this scale and the next."""
    n = len(sizes)
    scales = [c.min_scale + (c.max_scale - c.min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for i, size in enumerate(sizes):
        if i == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[i], a) for a in c.aspect_ratios] + [(math.sqrt(scales[i] * scales[i + 1]), 1.0)]
        hw = torch.tensor([(s / math.sqrt(a), s * math.sqrt(a)) for s, a in specs])  # (K, 2)
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        yx = torch.stack([y, x], -1).reshape(-1, 1, 2).expand(-1, len(specs), 2)  # (cells, K, 2)
        out.append(torch.cat([yx, hw.expand_as(yx)], -1).reshape(-1, 4))
    return torch.cat(out)


class SSDPostprocess:
    """What turns frames into the network's input and its outputs into detections, without the
    network's weights (a runtime's copy of the detector uses it too): frames resized whole to the
    square input on the uint8 grid, box encodings decoded against the anchors, then NMS."""

    def __init__(self, config: SSDConfig, map_sizes: list[int]):
        self.config = config
        with torch.device("cpu"):  # not a weight: real even where the network is built on meta
            self.anchors = anchor_boxes(config, map_sizes)  # (A, 4) y, x, h, w

    def decode(self, encodings: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
        """Box encodings `(..., A, 4)` -> boxes `(..., A, 4)` as (x1, y1, x2, y2), normalised;
        `anchors` (a mask or indices) picks the anchors the encodings are of."""
        sy, sx, sh, sw = self.config.box_scales
        chosen = self.anchors if anchors is None else self.anchors[anchors]
        ya, xa, ha, wa = chosen.to(encodings.device).unbind(-1)
        ty, tx, th, tw = encodings.unbind(-1)
        yc, xc = ty / sy * ha + ya, tx / sx * wa + xa
        h, w = torch.exp(th / sh) * ha, torch.exp(tw / sw) * wa
        return torch.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)

    @torch.no_grad()
    def detections(
        self,
        encodings: torch.Tensor,
        logits: torch.Tensor,
        *,
        per_class: bool = False,
        only: int | None = None,
        max_detections: int | None = None,
        min_score: float = 0.0,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image `{"boxes": (K, 4) x1 y1 x2 y2 normalised, "scores": (K,), "classes": (K,)}`
        with classes 0-based without the background (COCO: 0 is person), best first, at most
        `max_detections` (default: the file's 10). TFLite's fast NMS: each box keeps its best class
        and NMS runs across classes; `per_class` runs it per class instead (a person next to a chair
        keeps both); `only` scores every box as that one class (a person detector: a person is not
        hidden by a box that scores higher as a handbag, and ten people are not the cap). Boxes
        scored below `min_score` are dropped before NMS, which cannot change what is kept above it
        (a box is only suppressed by a better one) and spares decoding and NMS most anchors."""
        c = self.config
        if only is None:
            scores, classes = torch.sigmoid(logits[..., 1:]).max(-1)  # (B, A): best non-background class
        else:
            scores = torch.sigmoid(logits[..., 1 + only])
            classes = torch.full_like(scores, only, dtype=torch.long)
        limit = c.max_detections if max_detections is None else max_detections
        out = []
        floor = max(c.score_threshold, min_score)
        for e, s, k in zip(encodings, scores, classes):
            keep = (s > c.score_threshold) & (s >= floor)
            boxes, s, k = self.decode(e[keep], keep), s[keep], k[keep]
            order = batched_nms(boxes, s, k, c.nms_iou) if per_class else nms(boxes, s, c.nms_iou)
            order = order[:limit]
            out.append({"boxes": boxes[order], "scores": s[order], "classes": k[order]})
        return out

    def images(self, frames) -> torch.Tensor:
        """uint8 RGB frames, `(N, H, W, 3)` or a list of `(H, W, 3)` of any sizes: each resized
        whole to the square input (no crop, as the TFLite example), scaled to [-1, 1]."""
        images = [torch.as_tensor(np.asarray(f)) for f in frames]
        if not images or any(f.ndim != 3 or f.shape[-1] != 3 or f.dtype != torch.uint8 for f in images):
            shapes = sorted({(tuple(f.shape), str(f.dtype)) for f in images})
            raise ConfigError(f"detect_frames expects uint8 frames (H, W, 3), got {shapes[:3]}")
        size = self.config.image_size
        x = torch.stack([_square(f.permute(2, 0, 1), size) for f in images]).float()  # (N, 3, S, S)
        return (x - 128.0) / 128.0  # the file's input grid: scale 1/128, zero point 128


def _square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size) uint8, the grid the TFLite model takes: antialiased
    bilinear, computed on uint8 (PyTorch's vectorised kernel, 3x faster than on float; within one
    level of it)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(
        image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]


class SSDMobileNetV1(ImageDetector):
    """`forward(images)` -> `(box_encodings (B, A, 4), class_logits (B, A, 1 + num_classes))`;
    `detect(images)` decodes them into boxes (`SSDPostprocess`); `detect_frames(frames)` takes
    uint8 frames."""

    arch = "ssd_mobilenet_v1"
    # quant_grids: {module path: (scale, zero point)} of the uint8 file the weights came from (its
    # importer sets them; vidrec.deploy.on_uint8_grids computes on them).

    def __init__(self, config: SSDConfig):
        super().__init__()
        self.config = c = config
        layers, width, taps = [SameConv2d(3, _depth(32, c), 3, stride=2)], _depth(32, c), []
        for i, (w, stride) in enumerate(MOBILENET_V1, start=1):
            layers += [
                SameConv2d(width, width, 3, stride=stride, groups=width),  # depthwise
                SameConv2d(width, _depth(w, c), 1),  # pointwise
            ]
            width = _depth(w, c)
            if i in (11, 13):
                taps.append((len(layers) - 1, width))
        self.features = nn.ModuleList(layers)
        self.taps = [t for t, _ in taps]
        widths = [w for _, w in taps]
        self.extras = nn.ModuleList()
        for d in c.extra_depths:
            inner, out = _depth(d // 2, c), _depth(d, c)
            self.extras.append(
                nn.Sequential(SameConv2d(width, inner, 1), SameConv2d(inner, out, 3, stride=2))
            )
            widths.append(width := out)
        self.num_anchors = [3] + [len(c.aspect_ratios) + 1] * (len(widths) - 1)
        self.box_heads = nn.ModuleList([nn.Conv2d(w, a * 4, 1) for w, a in zip(widths, self.num_anchors)])
        self.class_heads = nn.ModuleList(
            [nn.Conv2d(w, a * (c.num_classes + 1), 1) for w, a in zip(widths, self.num_anchors)]
        )
        self.postprocess = SSDPostprocess(c, self.map_sizes())

    def map_sizes(self) -> list[int]:
        """Side of each predicted map at the configured image size (19, 10, 5, 3, 2, 1 at 300)."""
        size, sizes = self.config.image_size, []
        for i, layer in enumerate(self.features):
            size = -(-size // layer.stride[0])
            if i in self.taps:
                sizes.append(size)
        for _ in self.extras:
            sizes.append(size := -(-size // 2))
        return sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.image_size
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (size, size):
            raise ConfigError(
                f"{self.arch} expects images (B, 3, {size}, {size}) in [-1, 1], got {tuple(x.shape)}"
            )
        maps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                maps.append(x)
        for extra in self.extras:
            maps.append(x := extra(x))
        b = x.shape[0]
        # (B, A*4, H, W) -> (B, H, W, A*4) -> (B, H*W*A, 4): cell by cell, then box by box, as the anchors
        boxes = torch.cat(
            [h(m).permute(0, 2, 3, 1).reshape(b, -1, 4) for h, m in zip(self.box_heads, maps)], 1
        )
        logits = torch.cat(
            [
                h(m).permute(0, 2, 3, 1).reshape(b, -1, self.config.num_classes + 1)
                for h, m in zip(self.class_heads, maps)
            ],
            1,
        )
        return boxes, logits

    @property
    def anchors(self) -> torch.Tensor:
        """The anchors `(A, 4)` as (y, x, h, w), normalised."""
        return self.postprocess.anchors

    def decode(self, encodings: torch.Tensor) -> torch.Tensor:
        """Box encodings `(..., A, 4)` -> boxes `(..., A, 4)` as (x1, y1, x2, y2), normalised."""
        return self.postprocess.decode(encodings)


def coco_labels() -> list[str]:
    """COCO's 90 category ids in order (id 1 first), "???" where COCO left an id unused, as the
    TFLite example's labelmap.txt; index i is the detector's class i."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"][1:]  # without __background__
    return ["???" if n == "N/A" else n for n in names]


def ssd_mobilenet_v1(**overrides) -> SSDMobileNetV1:
    """SSD MobileNet v1 at depth 0.75, 300x300, COCO's 90 classes (the TFLite example's detector)."""
    model = SSDMobileNetV1(build_config(SSDConfig, {}, overrides))
    return model


__all__ = ["SSDConfig", "SSDMobileNetV1", "SSDPostprocess", "anchor_boxes", "coco_labels", "ssd_mobilenet_v1"]
