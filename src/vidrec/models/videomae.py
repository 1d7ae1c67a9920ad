"""VideoMAE (Tong et al., NeurIPS 2022, https://arxiv.org/abs/2203.12602): a plain ViT over
space-time tubelets, as in MCG-NJU/VideoMAE and transformers' VideoMAEForVideoClassification.

    clip (B, C, T, H, W)
      ─ tubelet embedding: Conv3d, kernel = stride = (tubelet, patch, patch)  -> (B, N, D),
        N = T/tubelet * H/patch * W/patch, tokens in (t, h, w) order
      ─ + fixed sinusoidal position table over the N flattened positions (recomputed for any T, H, W)
      ─ [keep visible tokens only, when a mask is given: this is where MAE's speed comes from]
      ─ depth x pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x))   (SDPA attention, q/v biases)
      ─ mean over tokens + fc_norm (fine-tuning default)  |  final norm + first token
      ─ dropout ─ linear head
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth

from vidrec.data.preprocessing import Preprocessing
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.base import VideoModel, build_model


@dataclass(frozen=True)
class VideoMAEConfig:
    """VideoMAE (ViT) options: tubelets, width, depth, heads, pooling, regularisation."""

    num_classes: int = 400  # classifier outputs
    in_channels: int = 3  # RGB
    num_frames: int = 16  # default clip length (other lengths work: positions are recomputed)
    image_size: int = 224  # default side (likewise)
    patch_size: int = 16  # spatial patch side
    tubelet_size: int = 2  # frames per tubelet
    dim: int = 768  # token width
    depth: int = 12  # transformer blocks
    num_heads: int = 12  # attention heads
    mlp_dim: int = 3072  # hidden width of each block's MLP
    qkv_bias: bool = True  # learned q and v biases (k has none), as the original
    use_mean_pooling: bool = True  # mean of tokens + fc_norm; False: final norm + first token
    layer_norm_eps: float = 1e-6  # of the blocks' and final norms (transformers' configs say 1e-12)
    fc_norm_eps: float = 1e-6  # of fc_norm (transformers builds it with torch's default 1e-5)
    drop_path: float = 0.0  # stochastic depth rate at the last block (linear from 0)
    dropout: float = 0.0  # before the head
    layer_scale_init: float | None = None  # per-channel residual scale (None: off, as VideoMAE)
    patch_embed: str = "linear"  # 'linear': VideoMAE's Conv3d; 'mlp': a per-tubelet MLP (see TubeletMLP)


@functools.lru_cache(maxsize=16)
def _sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    # angle(p, j) = p / 10000^(2 * (j // 2) / dim); sin on even j, cos on odd j (VideoMAE's table).
    # NumPy, not torch: a tensor made while torch.export or torch.compile traces is a fake one,
    # and a cached fake tensor would break every later eager call.
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    angles = position / np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)
    table = np.empty((num_positions, dim), dtype=np.float64)
    table[:, 0::2], table[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    table = table.astype(np.float32)  # (N, D)
    table.flags.writeable = False
    return table


def position_table(num_positions: int, dim: int, *, device, dtype) -> torch.Tensor:
    """The fixed sinusoidal position table `(N, D)` on `device` in `dtype` (cached on the CPU)."""
    return torch.tensor(_sinusoid_table(num_positions, dim), device=device, dtype=dtype)


class Attention(nn.Module):
    # The q, k, v products are made with `self.linear` (F.linear): a deployable form may put
    # another implementation of the same product there (vidrec.deploy.to_onednn_linear).
    linear = staticmethod(F.linear)

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        # The original learns q and v biases only; k's bias would cancel in the softmax anyway.
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, dim = x.shape
        # Three products on views of the one qkv matrix: contiguous q, k, v outputs let SDPA run
        # without copies (measurably faster on CPU than slicing one (B, N, 3D) product).
        wq, wk, wv = self.qkv.weight.chunk(3)
        q = self.linear(x, wq, self.q_bias).view(b, n, self.num_heads, -1).transpose(1, 2)  # (B, h, N, d)
        k = self.linear(x, wk).view(b, n, self.num_heads, -1).transpose(1, 2)
        v = self.linear(x, wv, self.v_bias).view(b, n, self.num_heads, -1).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(x.transpose(1, 2).reshape(b, n, dim))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        *,
        qkv_bias: bool,
        eps: float,
        drop_path: float,
        layer_scale_init: float | None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, mlp_dim))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(mlp_dim, dim))
        self.drop_path = StochasticDepth(drop_path, "row")  # drops a sample's whole branch
        self.gamma_1 = nn.Parameter(torch.full((dim,), layer_scale_init)) if layer_scale_init else None
        self.gamma_2 = nn.Parameter(torch.full((dim,), layer_scale_init)) if layer_scale_init else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.norm1(x))
        x = x + self.drop_path(a if self.gamma_1 is None else self.gamma_1 * a)
        m = self.mlp(self.norm2(x))
        return x + self.drop_path(m if self.gamma_2 is None else self.gamma_2 * m)


PATCH_EMBEDS = ("linear", "mlp")


class TubeletMLP(nn.Sequential):
    """Tubelet embedding as a small MLP on each tubelet alone: Conv3d (kernel = stride = tubelet),
    GELU, 1x1x1 Conv3d. The hMLP stem of Touvron et al. 2022 ("Three things everyone should know
    about ViTs"): like the linear embedding it never mixes tubelets, so masked pretraining stays
    exact (a hidden tubelet leaks into no visible token).

    Why: measured on SynthMotion (textured backgrounds, 3600 videos), the linear embedding under
    pre-norm blocks sat at chance for 5 epochs at every lr tried (1e-4 to 1e-3, depth 1 to 4):
    each block's LayerNorm rescales every token to one norm, which erases how strongly a tubelet
    responds to motion against a static texture. A nonlinearity before the first norm keeps it:
    the same ViT then leaves chance in its second epoch and reaches 78% in ten
    (results/synthmotion.md)."""

    def __init__(self, in_channels: int, dim: int, kernel: tuple[int, int, int]):
        super().__init__()
        # Not named "proj": `patch_embed.proj.weight` is how original VideoMAE checkpoints are told
        # apart (is_original_videomae, in the VideoMAE converter).
        self.add_module("embed", nn.Conv3d(in_channels, dim, kernel, stride=kernel))
        self.add_module("act", nn.GELU())
        self.add_module("fc", nn.Conv3d(dim, dim, 1))


class VideoMAEEncoder(nn.Module):
    """Tubelet embedding + positions + blocks: `(B, C, T, H, W)` [+ mask] -> tokens `(B, N_visible, D)`."""

    def __init__(self, c: VideoMAEConfig):
        super().__init__()
        self.config = c
        if c.patch_embed not in PATCH_EMBEDS:
            raise ConfigError(unknown_name_message("patch_embed", c.patch_embed, PATCH_EMBEDS))
        kernel = (c.tubelet_size, c.patch_size, c.patch_size)
        if c.patch_embed == "mlp":
            self.patch_embed = TubeletMLP(c.in_channels, c.dim, kernel)
        else:  # one Conv3d, VideoMAE's (checkpoint keys encoder.patch_embed.weight / .bias)
            self.patch_embed = nn.Conv3d(c.in_channels, c.dim, kernel, stride=kernel)
        rates = [c.drop_path * i / max(c.depth - 1, 1) for i in range(c.depth)]
        self.blocks = nn.ModuleList(
            [
                Block(
                    c.dim,
                    c.num_heads,
                    c.mlp_dim,
                    qkv_bias=c.qkv_bias,
                    eps=c.layer_norm_eps,
                    drop_path=r,
                    layer_scale_init=c.layer_scale_init,
                )
                for r in rates
            ]
        )
        self.grad_checkpointing = False  # recompute each block in backward (set by the model)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """Tubelets along (T, H, W) for input `x`, which must divide evenly."""
        c = self.config
        t, h, w = x.shape[2:]
        if t % c.tubelet_size or h % c.patch_size or w % c.patch_size:
            raise ConfigError(
                f"input {t}x{h}x{w} is not divisible into {c.tubelet_size}x{c.patch_size}x"
                f"{c.patch_size} tubelets"
            )
        return t // c.tubelet_size, h // c.patch_size, w // c.patch_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.grid(x)
        x = rearrange(self.patch_embed(x), "b d t h w -> b (t h w) d")  # (B, N, D)
        # contiguous (B, N, D): the conv output viewed as tokens is strided, which slows every later op
        x = (x + position_table(x.shape[1], x.shape[2], device=x.device, dtype=x.dtype)).contiguous()
        if mask is not None:  # (B, N) bool, True = masked: the encoder sees visible tokens only
            x = x[~mask].reshape(x.shape[0], -1, x.shape[2])
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def init_vit_weights(module: nn.Module) -> None:
    """Truncated normal (std 0.02) linear weights, zero biases, unit norms: ViT/VideoMAE init."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class VideoMAE(VideoModel):
    """VideoMAE classifier (fine-tuning form). Input `(B, C, T, H, W)` with T divisible by the
    tubelet and H, W by the patch size."""

    def __init__(self, config: VideoMAEConfig):
        super().__init__()
        self.config = c = config
        self.encoder = VideoMAEEncoder(c)
        self.norm = None if c.use_mean_pooling else nn.LayerNorm(c.dim, eps=c.layer_norm_eps)
        self.fc_norm = nn.LayerNorm(c.dim, eps=c.fc_norm_eps) if c.use_mean_pooling else None
        self.dropout = nn.Dropout(c.dropout)
        self.num_features = c.dim
        init_vit_weights(self)
        self.head = self.make_head(c.num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = self.encoder.grad_checkpointing = enable

    def shard_units(self) -> list[nn.Module]:
        return list(self.encoder.blocks)

    def make_head(self, num_classes: int) -> nn.Linear:
        head = nn.Linear(self.config.dim, num_classes)
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        return head

    def no_weight_decay(self) -> set[str]:
        return {
            n for n, _ in self.named_parameters() if n.endswith(("q_bias", "v_bias", "gamma_1", "gamma_2"))
        }

    @property
    def num_layers(self) -> int | None:
        return self.config.depth

    def layer_id(self, name: str) -> int:
        """Depth of a parameter for layer-wise lr decay: 0 the embedding, i + 1 block i, depth + 1
        the final norms and the head (as BEiT / VideoMAE fine-tuning)."""
        if name.startswith("encoder.patch_embed."):
            return 0
        if name.startswith("encoder.blocks."):
            return int(name.split(".")[2]) + 1
        return self.config.depth + 1

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output tokens `(B, N, D)`, in (t, h, w) order."""
        self.check_input(x)
        x = self.encoder(x)
        return x if self.norm is None else self.norm(x)

    @property
    def feature_stride(self) -> int:
        """Input pixels per token of the map: the patch size."""
        return self.config.patch_size

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The output tokens laid back on their grid: `(B, D, T/tubelet, H/patch, W/patch)` (what a
        box head pools, as VideoMAE's detection models do)."""
        t, h, w = self.encoder.grid(x)
        return rearrange(self.tokens(x), "b (t h w) d -> b d t h w", t=t, h=h, w=w)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokens(x)
        return self.fc_norm(x.mean(1)) if self.fc_norm is not None else x[:, 0]  # (B, D)

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(self.dropout(x))


# VideoMAE's Kinetics fine-tuning input: 16 frames at stride 4, short side 256 (test), 224 crops,
# ImageNet statistics.
_PREP = Preprocessing(
    num_frames=16,
    sampling_rate=4,
    resize=256,
    crop_size=224,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    train_crop="resized",
    train_scale=(0.08, 1.0),
)
SIZES = {  # dim, depth, heads, mlp (ViT-S/B/L/H of the paper)
    "videomae_s": (384, 12, 6, 1536),
    "videomae_b": (768, 12, 12, 3072),
    "videomae_l": (1024, 24, 16, 4096),
    "videomae_h": (1280, 32, 16, 5120),
    # VideoMAE V2's ViT-g/14: MLP ratio 48/11 (6144), 14 px patches (vit_giant_patch14_224)
    "videomae_g": (1408, 40, 16, 6144),
}
PATCHES = {"videomae_g": 14}  # the others use 16 px patches


def _build(arch: str, overrides: dict, defaults: dict | None = None, prep: Preprocessing = _PREP) -> VideoMAE:
    dim, depth, heads, mlp = SIZES.get(arch, (64, 2, 2, 128))
    base = {
        "dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_dim": mlp,
        "patch_size": PATCHES.get(arch, 16),
    }
    base.update(defaults or {})
    return build_model(
        VideoMAE, VideoMAEConfig, arch=arch, defaults=base, overrides=overrides, preprocessing=prep
    )


def videomae_s(**overrides) -> VideoMAE:
    """ViT-S/16 VideoMAE (22 M parameters)."""
    return _build("videomae_s", overrides)


def videomae_b(**overrides) -> VideoMAE:
    """ViT-B/16 VideoMAE (87 M parameters with 400 classes)."""
    return _build("videomae_b", overrides)


def videomae_l(**overrides) -> VideoMAE:
    """ViT-L/16 VideoMAE."""
    return _build("videomae_l", overrides)


def videomae_h(**overrides) -> VideoMAE:
    """ViT-H/16 VideoMAE."""
    return _build("videomae_h", overrides)


def videomae_g(**overrides) -> VideoMAE:
    """ViT-g/14 VideoMAE V2 (about a billion parameters; Wang et al., CVPR 2023,
    https://arxiv.org/abs/2303.16727): 16 x 224 x 224 clips, 2048 tokens."""
    return _build("videomae_g", overrides)


def videomae_tiny(**overrides) -> VideoMAE:
    """A 2-block, 64-wide VideoMAE on 4 frames of 32 px, for tests and CPU experiments."""
    prep = Preprocessing(num_frames=4, sampling_rate=2, resize=32, crop_size=32)
    return _build("videomae_tiny", overrides, {"num_frames": 4, "image_size": 32, "patch_size": 8}, prep)


def videomae_small_synth(**overrides) -> VideoMAE:
    """A 4-block, 128-wide VideoMAE on SynthMotion (16 frames of 56 px, 8 px patches: 392 tokens,
    embedded by a TubeletMLP)."""
    size = {"dim": 128, "depth": 4, "num_heads": 4, "mlp_dim": 256, "patch_embed": "mlp"}
    defaults = {**size, "num_frames": 16, "image_size": 56, "patch_size": 8}
    return _build("videomae_small_synth", overrides, defaults, SYNTHMOTION_PREP)


ARCHITECTURES = (
    videomae_s,
    videomae_b,
    videomae_l,
    videomae_h,
    videomae_g,
    videomae_tiny,
    videomae_small_synth,
)

__all__ = ["VideoMAE", "VideoMAEConfig", "VideoMAEEncoder"]
