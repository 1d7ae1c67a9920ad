"""SlowFast networks (Feichtenhofer et al., ICCV 2019, https://arxiv.org/abs/1812.03982), as in
PySlowFast and PyTorchVideo: same layers, same parameter counts, same logits.

One clip at the Fast pathway's frame rate goes in; the Slow pathway sees every alpha-th frame
(PySlowFast's `linspace(0, T - 1, T // alpha)`). The Fast pathway has 1/beta of the channels and
temporal kernels everywhere; the Slow pathway is temporal only in res4 and res5. Lateral
connections (time-strided convs, 2*beta*C channels, stride alpha) join Fast into Slow by
concatenation after pool1, res2, res3 and res4.

    clip (B, 3, T, H, W)
      ├── every alpha-th frame ─> slow stem ─┬(+)─> slow res2 ─(+)─> res3 ─(+)─> res4 ─(+)─> res5 ─> pool ─┐
      │                                      │ ^               ^             ^             ^                │
      └── all T frames ────────> fast stem ──┴─┼─> fast res2 ──┼─> res3 ─────┼─> res4 ─────┼─> res5 ─> pool ─┤
                                (C / beta)   fuse0           fuse1         fuse2         fuse3              │
                                                                           concat ─> dropout ─> fc <────────┘
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.data.preprocessing import KINETICS_MEAN, KINETICS_STD, Preprocessing
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import VideoModel, build_model, linear_head
from vidrec.models.layers import FROM_SCRATCH_INIT, init_cnn_weights, res_stage, resnet_stem

PATHWAYS = ("both", "slow", "fast")


@dataclass(frozen=True)
class SlowFastConfig:
    """SlowFast options: speed and channel ratios, laterals, depths, temporal kernels, pathways."""

    num_classes: int = 400  # classifier outputs
    in_channels: int = 3  # RGB
    dropout: float = 0.5  # before the classifier
    alpha: int = 4  # speed ratio: Fast frames per Slow frame (and the laterals' temporal stride)
    beta_inv: int = 8  # channel ratio: Fast width = Slow width / beta_inv
    fusion_channel_ratio: int = 2  # lateral output channels = ratio x Fast width (2 beta C)
    fusion_kernel: int = 7  # temporal kernel of the lateral convs (7 for R50 8x8, 5 elsewhere)
    stage_depths: tuple[int, int, int, int] = (3, 4, 6, 3)  # bottlenecks per stage (ResNet-50)
    width: int = 64  # Slow stem width
    slow_temporal: tuple[int, int, int, int] = (1, 1, 3, 3)  # conv_a temporal kernel per stage, Slow
    fast_temporal: tuple[int, int, int, int] = (3, 3, 3, 3)  # ... and Fast
    res4_temporal_blocks: int | None = None  # only the first n res4 blocks temporal (R101 16x8 "50_50")
    pathways: str = "both"  # "slow" or "fast" alone for ablations
    res5_stride: int = 2  # res5's spatial stride (1 in PySlowFast's AVA detectors: feature stride 16)
    res5_dilation: int = 1  # res5's spatial dilation (2 in the AVA detectors)
    # Non-local blocks after these blocks of each stage (PySlowFast NONLOCAL.LOCATION), Slow
    # pathway then Fast; R101 AVA: after res4 blocks 6, 13, 20 of the Slow pathway.
    slow_nonlocal: tuple[tuple[int, ...], ...] = ((), (), (), ())
    fast_nonlocal: tuple[tuple[int, ...], ...] = ((), (), (), ())
    nonlocal_pool: tuple[int, int, int] = (1, 2, 2)  # max pool before phi and g (NONLOCAL.POOL)
    nonlocal_instantiation: str = "dot_product"  # or "softmax" (NONLOCAL.INSTANTIATION)
    zero_init_final_bn: bool = True  # each block starts as identity (PySlowFast RESNET.ZERO_INIT_FINAL_BN)
    head_init_std: float | None = 0.01  # classifier normal(std) (MODEL.FC_INIT_STD); None: PyTorch default


class FastToSlow(nn.Module):
    """Lateral connection: a time-strided conv on Fast features, concatenated onto Slow."""

    def __init__(self, fast_channels: int, out_channels: int, *, kernel: int, alpha: int):
        super().__init__()
        self.conv = nn.Conv3d(
            fast_channels,
            out_channels,
            (kernel, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel // 2, 0, 0),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(out_channels)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, F.relu(self.bn(self.conv(fast)), inplace=True)], dim=1)


def stage_input_width(width: int, stage: int) -> int:
    """Channels a pathway of stem width `width` has before stage `stage` (0 = res2)."""
    return width if stage == 0 else width * 2 ** (stage + 1)


def _pathway(
    in_channels: int,
    width: int,
    *,
    stem_kernel: int,
    depths: tuple,
    temporal: tuple,
    laterals: list[int],
    res4_temporal_blocks: int | None,
    nonlocal_after: tuple[tuple[int, ...], ...],
    res5_stride: int = 2,
    res5_dilation: int = 1,
    **nonlocal_options,
) -> nn.ModuleDict:
    """Stem and four stages of one pathway; `laterals[s]` extra input channels of stage s (fused)."""
    layers = {"stem": resnet_stem(in_channels, width, temporal_kernel=stem_kernel)}
    for s, depth in enumerate(depths):
        kernels = [temporal[s]] * depth
        if s == 2 and res4_temporal_blocks is not None:
            kernels = [temporal[s] if i < res4_temporal_blocks else 1 for i in range(depth)]
        layers[f"layer{s + 1}"] = res_stage(
            stage_input_width(width, s) + laterals[s],
            width * 2**s,
            width * 2**s * 4,
            temporal_kernels=kernels,
            spatial_stride=(res5_stride if s == 3 else 2) if s > 0 else 1,
            spatial_dilation=res5_dilation if s == 3 else 1,
            nonlocal_after=tuple(nonlocal_after[s]),
            **nonlocal_options,
        )
    return nn.ModuleDict(layers)


class SlowFast(VideoModel):
    """Input: one `(B, C, T, H, W)` clip at the Fast rate (T divisible by alpha), or an explicit
    `[slow, fast]` pair. Output logits `(B, num_classes)`."""

    def __init__(self, config: SlowFastConfig):
        super().__init__()
        if config.pathways not in PATHWAYS:
            raise ConfigError(unknown_name_message("pathways", config.pathways, PATHWAYS))
        self.config = config
        c = config
        fast_width = c.width // c.beta_inv
        fast_in = [stage_input_width(fast_width, s) for s in range(4)]  # Fast channels at each fusion
        laterals = [c.fusion_channel_ratio * ch if c.pathways == "both" else 0 for ch in fast_in]
        common = dict(
            depths=c.stage_depths,
            res4_temporal_blocks=c.res4_temporal_blocks,
            res5_stride=c.res5_stride,
            res5_dilation=c.res5_dilation,
            nonlocal_pool=tuple(c.nonlocal_pool),
            nonlocal_instantiation=c.nonlocal_instantiation,
        )
        dims = []
        self.pathways = ("slow", "fast") if c.pathways == "both" else (c.pathways,)
        if c.pathways in ("both", "slow"):
            self.slow = _pathway(
                c.in_channels,
                c.width,
                stem_kernel=1,
                temporal=c.slow_temporal,
                laterals=laterals,
                nonlocal_after=c.slow_nonlocal,
                **common,
            )
            dims.append(c.width * 32)
        if c.pathways in ("both", "fast"):
            self.fast = _pathway(
                c.in_channels,
                fast_width,
                stem_kernel=5,
                temporal=c.fast_temporal,
                laterals=[0] * 4,
                nonlocal_after=c.fast_nonlocal,
                **common,
            )
            dims.append(fast_width * 32)
        if c.pathways == "both":
            self.fuse = nn.ModuleList(
                [
                    FastToSlow(ch, lat, kernel=c.fusion_kernel, alpha=c.alpha)
                    for ch, lat in zip(fast_in, laterals)
                ]
            )
        self.num_features = sum(dims)  # == sum(self.feature_dims)
        self.dropout = nn.Dropout(c.dropout)
        init_cnn_weights(self, zero_init_final_bn=c.zero_init_final_bn)
        self.head = self.make_head(c.num_classes)

    def make_head(self, num_classes: int) -> nn.Linear:
        return linear_head(self.num_features, num_classes, std=self.config.head_init_std)

    def split_pathways(
        self, x: torch.Tensor | list | tuple
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The Slow and Fast inputs from one clip (never modified in place) or a given pair."""
        if isinstance(x, (list, tuple)):
            if len(x) != 2:
                raise ConfigError(
                    f"{self.arch} expects one clip or a [slow, fast] pair, got {len(x)} tensors"
                )
            slow, fast = x
        else:
            self.check_input(x)
            fast = slow = x  # a single-pathway model takes the clip as it is
            t = x.shape[2]
            if self.config.pathways == "both":
                if t < self.config.alpha:
                    raise ConfigError(f"{self.arch} needs at least alpha={self.config.alpha} frames, got {t}")
                index = torch.linspace(0, t - 1, t // self.config.alpha, device=x.device).long()
                slow = torch.index_select(x, 2, index)  # a new tensor: the caller's clip is untouched
        return (
            slow if self.config.pathways != "fast" else None,
            fast if self.config.pathways != "slow" else None,
        )

    @property
    def feature_stride(self) -> int:
        """Input pixels per feature-map cell: 32, or 16 with res5 at stride 1."""
        return 16 * self.config.res5_stride

    @property
    def feature_dims(self) -> list[int]:
        c = self.config
        dims = {"slow": c.width * 32, "fast": c.width // c.beta_inv * 32}
        return [d for p, d in dims.items() if c.pathways in (p, "both")]

    def feature_maps(self, x) -> list[torch.Tensor]:
        """res5's output of each pathway: `[(B, 2048, T/alpha, H/32, W/32), (B, 256, T, H/32, W/32)]`
        (one of them for a single-pathway model; H/16, W/16 with res5 at stride 1)."""
        slow, fast = self.split_pathways(x)
        names = ["stem", "layer1", "layer2", "layer3", "layer4"]
        for i, name in enumerate(names):
            slow = self.checkpointed(self.slow[name], slow) if slow is not None else None
            fast = self.checkpointed(self.fast[name], fast) if fast is not None else None
            if slow is not None and fast is not None and i < 4:
                slow = self.fuse[i](slow, fast)
        return [f for f in (slow, fast) if f is not None]

    def forward_features(self, x) -> torch.Tensor:
        return torch.cat([f.mean((2, 3, 4)) for f in self.feature_maps(x)], dim=1)  # pool per pathway, concat

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(self.dropout(x))


def _build(arch: str, defaults: dict, overrides: dict, prep: Preprocessing) -> SlowFast:
    return build_model(
        SlowFast, SlowFastConfig, arch=arch, defaults=defaults, overrides=overrides, preprocessing=prep
    )


def _prep(num_frames: int, sampling_rate: int) -> Preprocessing:
    # PySlowFast Kinetics recipe: short-side jitter [256, 320] + 224 crops for training; short
    # side 256 and 256 crops (x3) for testing; mean 0.45, std 0.225.
    return Preprocessing(
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        resize=256,
        crop_size=224,
        test_crop_size=256,
        mean=KINETICS_MEAN,
        std=KINETICS_STD,
    )


_R101 = {"stage_depths": (3, 4, 23, 3), "fusion_kernel": 5}


def slowfast_r50_4x16(**overrides) -> SlowFast:
    """SlowFast R50, 4 Slow frames at stride 16 (32 Fast frames at stride 2, alpha 8)."""
    return _build("slowfast_r50_4x16", {"alpha": 8, "fusion_kernel": 5}, overrides, _prep(32, 2))


def slowfast_r50_8x8(**overrides) -> SlowFast:
    """SlowFast R50, 8 Slow frames at stride 8 (32 Fast at stride 2, alpha 4): 34,566,488 params."""
    return _build("slowfast_r50_8x8", {"alpha": 4, "fusion_kernel": 7}, overrides, _prep(32, 2))


def slowfast_r101_8x8(**overrides) -> SlowFast:
    """SlowFast R101 8x8 (PyTorchVideo's slowfast_r101): 62,826,968 params."""
    return _build("slowfast_r101_8x8", {"alpha": 4, **_R101}, overrides, _prep(32, 2))


def slowfast_r101_16x8(**overrides) -> SlowFast:
    """SlowFast R101 16x8 (64 Fast frames), temporal kernels in the first 6 res4 blocks only, as
    the released SLOWFAST_16x8_R101_50_50 model."""
    return _build(
        "slowfast_r101_16x8", {"alpha": 4, **_R101, "res4_temporal_blocks": 6}, overrides, _prep(64, 2)
    )


def slow_r50_8x8(**overrides) -> SlowFast:
    """The Slow pathway alone (Slow-only R50 8x8; PyTorchVideo's slow_r50)."""
    return _build("slow_r50_8x8", {"pathways": "slow"}, overrides, _prep(8, 8))


def fast_r50(**overrides) -> SlowFast:
    """The Fast pathway alone (32 frames at stride 2, 1/8 of the channels)."""
    return _build("fast_r50", {"pathways": "fast"}, overrides, _prep(32, 2))


# CPU-scale variants for SynthMotion (16 frames of 64 px): one bottleneck per stage, a 32-wide Slow
# stem and a Fast pathway at 1/4 of it (1/8 of 32 would leave it 4 channels wide), alpha 4.
_SMALL = {
    "stage_depths": (1, 1, 1, 1),
    "width": 32,
    "beta_inv": 4,
    "alpha": 4,
    "fusion_kernel": 5,
    "dropout": 0.2,
    **FROM_SCRATCH_INIT,
}


def slowfast_small(**overrides) -> SlowFast:
    """SlowFast at CPU scale: 4 Slow and 16 Fast frames of SynthMotion."""
    return _build("slowfast_small", _SMALL, overrides, SYNTHMOTION_PREP)


def slow_small(**overrides) -> SlowFast:
    """slowfast_small's Slow pathway alone (it sees all 16 frames: no Fast pathway to subsample for)."""
    return _build("slow_small", {**_SMALL, "pathways": "slow"}, overrides, SYNTHMOTION_PREP)


def fast_small(**overrides) -> SlowFast:
    """slowfast_small's Fast pathway alone."""
    return _build("fast_small", {**_SMALL, "pathways": "fast"}, overrides, SYNTHMOTION_PREP)


ARCHITECTURES = (
    slowfast_r50_4x16,
    slowfast_r50_8x8,
    slowfast_r101_8x8,
    slowfast_r101_16x8,
    slow_r50_8x8,
    fast_r50,
    slowfast_small,
    slow_small,
    fast_small,
)
