"""VideoMAE masked-autoencoder pretraining (Tong et al. 2022) and VideoMAE V2's dual masking
(Wang et al., CVPR 2023, https://arxiv.org/abs/2303.16727).

    clip ─ tube mask (90% of tubes hidden, same spatial mask at every time step)
         ─ encoder on the ~10% visible tokens only ─ linear to decoder width
         ─ + mask tokens at the hidden positions (V2: at the decoder's running-cell positions only)
         ─ light decoder ─ per-patch pixels of the hidden tubelets
         ─ MSE against per-patch normalised pixels (norm_pix_loss), on hidden tokens only
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidrec.data.preprocessing import Preprocessing
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError
from vidrec.models.base import PretrainingModel, VideoModel, build_model
from vidrec.models.videomae import (
    SIZES,
    Block,
    VideoMAE,
    VideoMAEConfig,
    VideoMAEEncoder,
    init_vit_weights,
    position_table,
)

MASKINGS = ("tube", "random")


@dataclass(frozen=True)
class VideoMAEPretrainConfig(VideoMAEConfig):
    """VideoMAE pretraining options: the encoder's, the decoder's and the masking."""

    num_classes: int = 0  # no classifier: the decoder predicts pixels
    use_mean_pooling: bool = False  # the encoder ends with a norm, as the pretraining original
    decoder_dim: int = 384  # decoder width (ViT-B: 384)
    decoder_depth: int = 4  # decoder blocks (ViT-B: 4)
    decoder_heads: int = 6
    decoder_mlp_dim: int = 1536
    decoder_norm_eps: float = 1e-6  # of the decoder's final norm (transformers: torch's default 1e-5)
    masking: str = "tube"  # "tube" or "random"
    mask_ratio: float = 0.9  # share of tokens hidden from the encoder
    decoder_mask_ratio: float = 0.0  # V2 dual masking: share of hidden tokens the decoder skips (0: off)
    norm_pix_loss: bool = True  # targets normalised per patch and channel


def _check_ratio(name: str, ratio: float) -> None:
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {ratio}")


def tube_mask(
    grid: tuple[int, int, int],
    ratio: float,
    *,
    batch: int,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """`(B, N)` bool, True = hidden: one random spatial mask per sample, the same at every time
    step (tube masking), hiding exactly `int(ratio * H * W)` positions per frame."""
    _check_ratio("mask_ratio", ratio)
    t, h, w = grid
    hidden = int(ratio * h * w)
    scores = torch.rand(batch, h * w, generator=generator)
    spatial = torch.zeros(batch, h * w, dtype=torch.bool)
    spatial.scatter_(1, scores.argsort(dim=1)[:, :hidden], True)
    return spatial[:, None, :].expand(batch, t, h * w).reshape(batch, -1).to(device)


def random_mask(
    grid: tuple[int, int, int],
    ratio: float,
    *,
    batch: int,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """`(B, N)` bool: exactly `int(ratio * N)` tokens hidden anywhere in space-time."""
    _check_ratio("mask_ratio", ratio)
    n = int(np.prod(grid))
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask.scatter_(1, torch.rand(batch, n, generator=generator).argsort(dim=1)[:, : int(ratio * n)], True)
    return mask.to(device)


def running_cell_mask(grid: tuple[int, int, int], ratio: float, *, batch: int, device=None) -> torch.Tensor:
    """VideoMAE V2's decoder mask: in every 2x2 spatial cell, `4 * (1 - ratio)` positions are
    kept and the kept set shifts by one position each time step. `(B, N)` bool, True = skipped."""
    _check_ratio("decoder_mask_ratio", ratio)
    t, h, w = grid
    keep = max(1, round(4 * (1 - ratio)))
    cell = torch.arange(4).view(2, 2)  # position index inside a cell
    ys, xs = torch.arange(h) % 2, torch.arange(w) % 2
    within = cell[ys[:, None], xs[None, :]]  # (h, w)
    steps = torch.arange(t)[:, None, None]
    kept = ((within[None] - steps) % 4) < keep  # (t, h, w)
    return (~kept).reshape(1, -1).expand(batch, -1).to(device)


def patchify(video: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """`(B, C, T, H, W)` -> `(B, N, tubelet * patch * patch, C)` in token order (t, h, w)."""
    return rearrange(
        video, "b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c", p0=tubelet, p1=patch, p2=patch
    )


class VideoMAEPretrain(PretrainingModel):
    """Encoder + decoder for masked pretraining. `model(x)` draws masks from the config and
    returns the loss; `model.reconstruct(x, mask)` gives the decoder's pixels too."""

    def __init__(self, config: VideoMAEPretrainConfig):
        super().__init__()
        c = self.config = config
        if c.masking not in MASKINGS:
            raise ConfigError(f"unknown masking '{c.masking}' (valid: {', '.join(MASKINGS)})")
        _check_ratio("mask_ratio", c.mask_ratio)
        _check_ratio("decoder_mask_ratio", c.decoder_mask_ratio)
        self.encoder = VideoMAEEncoder(c)
        self.norm = None if c.use_mean_pooling else nn.LayerNorm(c.dim, eps=c.layer_norm_eps)
        self.encoder_to_decoder = nn.Linear(c.dim, c.decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            [
                Block(
                    c.decoder_dim,
                    c.decoder_heads,
                    c.decoder_mlp_dim,
                    qkv_bias=c.qkv_bias,
                    eps=c.layer_norm_eps,
                    drop_path=0.0,
                    layer_scale_init=None,
                )
                for _ in range(c.decoder_depth)
            ]
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=c.decoder_norm_eps)
        self.decoder_head = nn.Linear(c.decoder_dim, c.in_channels * c.tubelet_size * c.patch_size**2)
        init_vit_weights(self)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = self.encoder.grad_checkpointing = enable

    def shard_units(self) -> list[nn.Module]:
        return [*self.encoder.blocks, *self.decoder_blocks]

    def no_weight_decay(self) -> set[str]:
        return {"mask_token"} | {n for n, _ in self.named_parameters() if n.endswith(("q_bias", "v_bias"))}

    def draw_masks(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """The encoder's mask (tube or random) and V2's decoder mask, as the config says."""
        grid, c = self.encoder.grid(x), self.config
        draw = tube_mask if c.masking == "tube" else random_mask
        mask = draw(grid, c.mask_ratio, batch=x.shape[0], generator=generator, device=x.device)
        decoder_mask = None
        if c.decoder_mask_ratio > 0:
            decoder_mask = running_cell_mask(grid, c.decoder_mask_ratio, batch=x.shape[0], device=x.device)
        return mask, decoder_mask

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token pixel targets `(B, N, tubelet*p*p*C)` of the un-normalised clip."""
        c, p = self.config, self.preprocessing
        with torch.no_grad():
            if c.in_channels == len(p.mean):  # undo the input normalisation: pixels in [0, 1]
                mean = torch.tensor(p.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1, 1)
                std = torch.tensor(p.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1, 1)
                x = x * std + mean
            patches = patchify(x, c.tubelet_size, c.patch_size)  # (B, N, P, C)
            if c.norm_pix_loss:
                patches = (patches - patches.mean(dim=-2, keepdim=True)) / (
                    patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
                )
            return rearrange(patches, "b n p c -> b n (p c)")

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None):
        """Predicted pixels of the hidden tokens the decoder sees, and which tokens those are.

        `mask` (B, N): True = hidden from the encoder; the decoder reconstructs those tokens.
        `decoder_mask` (B, N), V2's dual masking: True = skipped by the decoder, which then
        reconstructs the tokens it keeps (its running cells), as VideoMAE V2's code does. Each
        row must select the same number of tokens."""
        self.check_input(x)
        b, c = x.shape[0], self.config
        visible = self.encoder(x, mask)  # (B, N_vis, D): the encoder never sees hidden tokens
        if self.norm is not None:
            visible = self.norm(visible)
        visible = self.encoder_to_decoder(visible)
        n, d = mask.shape[1], c.decoder_dim
        pos = position_table(n, d, device=x.device, dtype=visible.dtype).expand(b, -1, -1)
        predict = mask if decoder_mask is None else ~decoder_mask  # (B, N) tokens to reconstruct
        tokens = torch.cat(
            [visible + pos[~mask].reshape(b, -1, d), self.mask_token + pos[predict].reshape(b, -1, d)], dim=1
        )
        for block in self.decoder_blocks:
            tokens = block(tokens)
        n_pred = int(predict[0].sum())
        if n_pred == 0:
            raise ConfigError("nothing to reconstruct: the masks select no token for the decoder")
        return self.decoder_head(self.decoder_norm(tokens[:, -n_pred:])), predict  # (B, N_pred, P*C)

    def loss(
        self, x: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """MSE between the decoder's pixels and the targets of the tokens it reconstructs."""
        pred, predict = self.reconstruct(x, mask, decoder_mask)
        target = self.targets(x)[predict].reshape(pred.shape)
        return F.mse_loss(pred, target)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loss(x, *self.draw_masks(x, generator))

    def to_classifier(self, num_classes: int, **overrides) -> tuple[VideoModel, dict]:
        base = {f.name: getattr(self.config, f.name) for f in fields(VideoMAEConfig)}
        base.update(num_classes=num_classes, use_mean_pooling=True)
        arch = self.arch.replace("_pretrain", "") or "videomae_b"
        classifier = build_model(
            VideoMAE,
            VideoMAEConfig,
            arch=arch,
            defaults=base,
            overrides=overrides,
            preprocessing=self.preprocessing,
        )
        source, target = self.state_dict(), classifier.state_dict()
        shared = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
        classifier.load_state_dict(shared, strict=False)
        return classifier, {
            "loaded": sorted(shared),
            "new": sorted(set(target) - set(shared)),
            "dropped": sorted(set(source) - set(shared)),
        }


_PREP = Preprocessing(
    num_frames=16,
    sampling_rate=4,
    resize=256,
    crop_size=224,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    train_crop="resized",
    train_scale=(0.66, 1.0),
)


def _build(
    arch: str, overrides: dict, extra: dict | None = None, prep: Preprocessing = _PREP
) -> VideoMAEPretrain:
    dim, depth, heads, mlp = SIZES.get(arch.replace("_pretrain", ""), (64, 2, 2, 128))
    base = {"dim": dim, "depth": depth, "num_heads": heads, "mlp_dim": mlp, **(extra or {})}
    return build_model(
        VideoMAEPretrain,
        VideoMAEPretrainConfig,
        arch=arch,
        defaults=base,
        overrides=overrides,
        preprocessing=prep,
    )


def videomae_s_pretrain(**overrides) -> VideoMAEPretrain:
    """ViT-S encoder + 4-block, 192-wide decoder."""
    return _build(
        "videomae_s_pretrain", overrides, {"decoder_dim": 192, "decoder_heads": 3, "decoder_mlp_dim": 768}
    )


def videomae_b_pretrain(**overrides) -> VideoMAEPretrain:
    """ViT-B encoder + 4-block, 384-wide decoder, tube masking at 90% (the paper's setting)."""
    return _build("videomae_b_pretrain", overrides)


def videomae_l_pretrain(**overrides) -> VideoMAEPretrain:
    """ViT-L encoder + 4-block, 512-wide decoder."""
    return _build(
        "videomae_l_pretrain", overrides, {"decoder_dim": 512, "decoder_heads": 8, "decoder_mlp_dim": 2048}
    )


def videomae_g_pretrain(**overrides) -> VideoMAEPretrain:
    """ViT-g/14 encoder + 4-block, 512-wide decoder (MLP 2234: V2 builds it with the encoder's
    48/11 ratio), as VideoMAE V2's pretrain_videomae_giant_patch14_224 with its scripts' 4 decoder
    blocks; V2's dual masking with decoder_mask_ratio 0.5."""
    extra = {"decoder_dim": 512, "decoder_heads": 8, "decoder_mlp_dim": 2234, "decoder_mask_ratio": 0.5}
    return _build("videomae_g_pretrain", overrides, {"patch_size": 14, **extra})


def videomae_tiny_pretrain(**overrides) -> VideoMAEPretrain:
    """Tiny encoder and decoder on 4 frames of 32 px, for tests."""
    prep = Preprocessing(num_frames=4, sampling_rate=2, resize=32, crop_size=32)
    extra = {
        "num_frames": 4,
        "image_size": 32,
        "patch_size": 8,
        "decoder_dim": 32,
        "decoder_depth": 1,
        "decoder_heads": 2,
        "decoder_mlp_dim": 64,
    }
    return _build("videomae_tiny_pretrain", overrides, extra, prep)


def videomae_small_synth_pretrain(**overrides) -> VideoMAEPretrain:
    """videomae_small_synth's encoder + a 2-block, 64-wide decoder, tube masking at 90%, for
    masked pretraining on unlabelled SynthMotion."""
    extra = {
        "dim": 128,
        "depth": 4,
        "num_heads": 4,
        "mlp_dim": 256,
        "patch_embed": "mlp",
        "num_frames": 16,
        "image_size": 56,
        "patch_size": 8,
        "decoder_dim": 64,
        "decoder_depth": 2,
        "decoder_heads": 4,
        "decoder_mlp_dim": 128,
    }
    return _build("videomae_small_synth_pretrain", overrides, extra, SYNTHMOTION_PREP)


ARCHITECTURES = (
    videomae_s_pretrain,
    videomae_b_pretrain,
    videomae_l_pretrain,
    videomae_g_pretrain,
    videomae_tiny_pretrain,
    videomae_small_synth_pretrain,
)
