"""VideoMAE checkpoints from elsewhere.

- transformers' format, both ways (`config.json` with `model_type: videomae`, `model.safetensors`
  or `pytorch_model.bin`, `preprocessor_config.json`). transformers takes `(B, T, C, H, W)`;
  vidrec takes `(B, C, T, H, W)`: the layouts differ only at the call, the weights map one to one
  (q, k, v are one matrix here, three there).
- The original `.pth` files of MCG-NJU/VideoMAE and OpenGVLab/VideoMAEv2 (fine-tuned and
  pretraining), whose block names vidrec shares; the architecture is read from the shapes."""

from __future__ import annotations

import json
import os
import re

import torch
from safetensors.torch import load_file

from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, VidrecError
from vidrec.models.base import PretrainingModel
from vidrec.models.convert.common import load_exact
from vidrec.models.registry import create_model
from vidrec.models.videomae import SIZES, position_table
from vidrec.utils import atomic_write_text, write_safetensors

_BLOCK = {  # transformers per-layer names -> vidrec block names
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
}
_TOP = {
    "videomae.embeddings.patch_embeddings.projection": "encoder.patch_embed",
    "videomae.layernorm": "norm",
    "fc_norm": "fc_norm",
    "classifier": "head",
}


def _arch(dim: int) -> str:
    """The registered size with this width (any other width builds on videomae_b's defaults)."""
    return next((name for name, size in SIZES.items() if size[0] == dim), "videomae_b")


def is_transformers_videomae(directory: str) -> bool:
    """Whether a directory holds a transformers VideoMAE (`model_type: videomae`)."""
    try:
        with open(os.path.join(directory, "config.json")) as f:
            return json.load(f).get("model_type") == "videomae"
    except (OSError, json.JSONDecodeError):
        return False


def config_overrides(hf: dict) -> dict:
    """vidrec VideoMAEConfig fields from a transformers VideoMAEConfig dict."""
    if hf.get("hidden_act", "gelu") != "gelu":
        raise VidrecError(f"unsupported VideoMAE activation {hf['hidden_act']}")
    labels = hf.get("id2label") or {}
    return {
        "num_classes": len(labels) or hf.get("num_labels", 2),
        "in_channels": hf.get("num_channels", 3),
        "num_frames": hf.get("num_frames", 16),
        "image_size": hf.get("image_size", 224),
        "patch_size": hf.get("patch_size", 16),
        "tubelet_size": hf.get("tubelet_size", 2),
        "dim": hf.get("hidden_size", 768),
        "depth": hf.get("num_hidden_layers", 12),
        "num_heads": hf.get("num_attention_heads", 12),
        "mlp_dim": hf.get("intermediate_size", 3072),
        "qkv_bias": hf.get("qv_bias", True),
        "use_mean_pooling": hf.get("use_mean_pooling", True),
        "layer_norm_eps": hf.get("layer_norm_eps", 1e-12),
        "fc_norm_eps": 1e-5,  # transformers builds fc_norm with torch's default eps
    }


def _block_pairs(depth: int, decoder_depth: int) -> list[tuple[str, str]]:
    """(transformers prefix, vidrec prefix) of every transformer block."""
    return [(f"videomae.encoder.layer.{i}.", f"encoder.blocks.{i}.") for i in range(depth)] + [
        (f"decoder.decoder_layers.{i}.", f"decoder_blocks.{i}.") for i in range(decoder_depth)
    ]


_PRETRAIN_TOP = {
    "encoder_to_decoder": "encoder_to_decoder",
    "decoder.norm": "decoder_norm",
    "decoder.head": "decoder_head",
}


def from_transformers_state(
    state: dict[str, torch.Tensor], depth: int, decoder_depth: int = 0
) -> dict[str, torch.Tensor]:
    """transformers' VideoMAE keys -> vidrec's (q, k, v joined into one qkv)."""
    out = {"mask_token": state["mask_token"]} if "mask_token" in state else {}
    for key, value in state.items():
        for src, dst in {**_TOP, **_PRETRAIN_TOP}.items():
            if key.startswith(src + "."):
                out[dst + key[len(src) :]] = value
    for src, dst in _block_pairs(depth, decoder_depth):
        a = src + "attention.attention."
        out[dst + "attn.qkv.weight"] = torch.cat(
            [state[a + "query.weight"], state[a + "key.weight"], state[a + "value.weight"]]
        )
        # Checkpoints on disk (and transformers < 5 in memory) call the biases q_bias / v_bias.
        for q, v in ((a + "q_bias", a + "v_bias"), (a + "query.bias", a + "value.bias")):
            if q in state:
                out[dst + "attn.q_bias"], out[dst + "attn.v_bias"] = state[q], state[v]
        for name, ours in _BLOCK.items():
            for p in ("weight", "bias"):
                out[f"{dst}{ours}.{p}"] = state[f"{src}{name}.{p}"]
    return out


def to_transformers_state(
    state: dict[str, torch.Tensor], depth: int, decoder_depth: int = 0
) -> dict[str, torch.Tensor]:
    """vidrec's VideoMAE keys -> transformers' (qkv split into query, key, value)."""
    out = {"mask_token": state["mask_token"]} if "mask_token" in state else {}
    for key, value in state.items():
        for src, dst in {**_TOP, **_PRETRAIN_TOP}.items():
            if key.startswith(dst + "."):
                out[src + key[len(dst) :]] = value
    for src, dst in _block_pairs(depth, decoder_depth):
        a = src + "attention.attention."
        q, k, v = state[dst + "attn.qkv.weight"].chunk(3)
        out[a + "query.weight"], out[a + "key.weight"], out[a + "value.weight"] = q, k, v
        if dst + "attn.q_bias" in state:  # the on-disk names every transformers version reads
            out[a + "q_bias"], out[a + "v_bias"] = state[dst + "attn.q_bias"], state[dst + "attn.v_bias"]
        for name, ours in _BLOCK.items():
            for p in ("weight", "bias"):
                out[f"{src}{name}.{p}"] = state[f"{dst}{ours}.{p}"]
    return {k: v.contiguous() for k, v in out.items()}


def _read_weights(directory: str) -> dict[str, torch.Tensor]:
    st, bin_ = os.path.join(directory, "model.safetensors"), os.path.join(directory, "pytorch_model.bin")
    if os.path.exists(st):
        return load_file(st)
    if os.path.exists(bin_):
        return torch.load(bin_, map_location="cpu", weights_only=True)
    raise VidrecError(f"{directory}: no model.safetensors or pytorch_model.bin")


def _preprocessing(directory: str, overrides: dict) -> Preprocessing:
    prep = {
        "num_frames": overrides["num_frames"],
        "sampling_rate": 4,
        "resize": overrides["image_size"],
        "crop_size": overrides["image_size"],
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    path = os.path.join(directory, "preprocessor_config.json")
    if os.path.exists(path):
        with open(path) as f:
            p = json.load(f)
        size, crop = p.get("size") or {}, p.get("crop_size") or {}
        prep["resize"] = (
            size.get("shortest_edge", size.get("height", prep["resize"])) if isinstance(size, dict) else size
        )
        prep["crop_size"] = crop.get("height", prep["crop_size"]) if isinstance(crop, dict) else crop
        prep["mean"], prep["std"] = (
            tuple(p.get("image_mean", prep["mean"])),
            tuple(p.get("image_std", prep["std"])),
        )
        prep["resize"] = max(prep["resize"], prep["crop_size"])
    return Preprocessing(**prep)


def load_transformers_videomae(directory: str):
    """A vidrec VideoMAE from a transformers directory (weights, labels, preprocessing)."""
    with open(os.path.join(directory, "config.json")) as f:
        hf = json.load(f)
    archs = hf.get("architectures") or ["VideoMAEForVideoClassification"]
    overrides = config_overrides(hf)
    arch = _arch(overrides["dim"])
    decoder_depth = 0
    if "VideoMAEForPreTraining" in archs:
        arch += "_pretrain"
        decoder_depth = hf.get("decoder_num_hidden_layers", 4)
        overrides.pop("num_classes")
        overrides.pop("fc_norm_eps")
        overrides.update(
            decoder_dim=hf.get("decoder_hidden_size", 384),
            decoder_depth=decoder_depth,
            decoder_heads=hf.get("decoder_num_attention_heads", 6),
            decoder_mlp_dim=hf.get("decoder_intermediate_size", 1536),
            decoder_norm_eps=1e-5,
            norm_pix_loss=hf.get("norm_pix_loss", True),
        )
    elif "VideoMAEForVideoClassification" not in archs:
        raise VidrecError(
            f"{directory}: {archs[0]} is not a VideoMAE classification or pretraining checkpoint"
        )
    model = create_model(arch, **overrides)
    state = from_transformers_state(_read_weights(directory), overrides["depth"], decoder_depth)
    load_exact(model, state, directory)
    labels = hf.get("id2label") if not decoder_depth else None
    if labels and not all(v == f"LABEL_{k}" for k, v in labels.items()):
        model.set_labels([labels[str(i)] if str(i) in labels else labels[i] for i in range(len(labels))])
    model.preprocessing = _preprocessing(directory, overrides)
    return model


def save_transformers_videomae(model, directory: str) -> None:
    """Write a directory that transformers' `VideoMAEForVideoClassification.from_pretrained` (or,
    for a pretraining model, `VideoMAEForPreTraining.from_pretrained`) loads."""
    if not model.arch.startswith("videomae"):
        raise ConfigError(f"{model.arch} has no transformers counterpart; save it in vidrec's format")
    c = model.config
    if c.layer_scale_init is not None:
        raise VidrecError("transformers' VideoMAE has no layer scale: cannot export this model")
    pretraining = isinstance(model, PretrainingModel)
    hf = {
        "architectures": ["VideoMAEForPreTraining" if pretraining else "VideoMAEForVideoClassification"],
        "model_type": "videomae",
        "num_channels": c.in_channels,
        "num_frames": c.num_frames,
        "image_size": c.image_size,
        "patch_size": c.patch_size,
        "tubelet_size": c.tubelet_size,
        "hidden_size": c.dim,
        "num_hidden_layers": c.depth,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.mlp_dim,
        "qv_bias": c.qkv_bias,
        "use_mean_pooling": c.use_mean_pooling,
        "layer_norm_eps": c.layer_norm_eps,
        "hidden_act": "gelu",
    }
    if pretraining:  # transformers' decoder norm has torch's default eps; the mask comes with each call
        hf.update(
            decoder_hidden_size=c.decoder_dim,
            decoder_num_hidden_layers=c.decoder_depth,
            decoder_num_attention_heads=c.decoder_heads,
            decoder_intermediate_size=c.decoder_mlp_dim,
            norm_pix_loss=c.norm_pix_loss,
        )
    else:
        labels = model.labels or [f"LABEL_{i}" for i in range(c.num_classes)]
        hf.update(
            id2label={str(i): n for i, n in enumerate(labels)}, label2id={n: i for i, n in enumerate(labels)}
        )
    os.makedirs(directory, exist_ok=True)
    state = to_transformers_state(model.state_dict(), c.depth, c.decoder_depth if pretraining else 0)
    write_safetensors(os.path.join(directory, "model.safetensors"), state, {"format": "pt"})
    p = model.preprocessing
    atomic_write_text(
        os.path.join(directory, "preprocessor_config.json"),
        json.dumps(
            {
                "image_processor_type": "VideoMAEImageProcessor",
                "size": {"shortest_edge": p.resize},
                "crop_size": {
                    "height": p.test_crop_size or p.crop_size,
                    "width": p.test_crop_size or p.crop_size,
                },
                "image_mean": list(p.mean),
                "image_std": list(p.std),
                "do_resize": True,
                "do_center_crop": True,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
            },
            indent=2,
        )
        + "\n",
    )
    atomic_write_text(os.path.join(directory, "config.json"), json.dumps(hf, indent=2) + "\n")


# --- the original MCG-NJU/VideoMAE and OpenGVLab/VideoMAEv2 checkpoints --------------------------------
# Heads cannot be read from shapes: the official models' head counts by width (V2's ViT-g is 1408
# wide with 16 heads; V1's ViT-H decoder is 640 wide with 8), otherwise 64-wide heads.
_HEADS = {**{size[0]: size[2] for size in SIZES.values()}, 1408: 16}
_DECODER_HEADS = {192: 3, 384: 6, 512: 8, 640: 8}


def is_original_videomae(state: dict) -> bool:
    """Whether a state dict has the original VideoMAE / VideoMAE V2 key names."""
    return any(k.endswith("patch_embed.proj.weight") for k in state) and any(
        ".attn.qkv.weight" in k for k in state
    )


def original_videomae_key(key: str) -> str:
    """`blocks.3.attn.qkv.weight` -> `encoder.blocks.3.attn.qkv.weight`,
    `encoder.norm.weight` -> `norm.weight`, `decoder.head.bias` -> `decoder_head.bias`."""
    if key.startswith("encoder."):
        key = key.removeprefix("encoder.")
    for src, dst in (
        ("decoder.blocks.", "decoder_blocks."),
        ("decoder.norm.", "decoder_norm."),
        ("decoder.head.", "decoder_head."),
        ("patch_embed.proj.", "encoder.patch_embed."),
        ("blocks.", "encoder.blocks."),
    ):
        if key.startswith(src):
            return dst + key[len(src) :]
    return key  # norm, fc_norm, head, encoder_to_decoder, mask_token


def _depth(state: dict, prefix: str) -> int:
    return 1 + max(
        (int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))), default=-1
    )


def original_videomae_config(state: dict) -> tuple[str, dict]:
    """(arch, config overrides) of an original checkpoint (renamed to vidrec keys), from its shapes."""
    dim, channels, tubelet, patch, _ = state["encoder.patch_embed.weight"].shape
    overrides = {
        "in_channels": channels,
        "tubelet_size": tubelet,
        "patch_size": patch,
        "dim": dim,
        "depth": _depth(state, "encoder.blocks."),
        "num_heads": _HEADS.get(dim, max(1, dim // 64)),
        "mlp_dim": state["encoder.blocks.0.mlp.fc1.weight"].shape[0],
        "qkv_bias": "encoder.blocks.0.attn.q_bias" in state,
        # any value creates the scales; the checkpoint's replace it
        "layer_scale_init": 0.1 if "encoder.blocks.0.gamma_1" in state else None,
        "layer_norm_eps": 1e-6,  # every official model builds its norms with eps 1e-6
    }
    arch = _arch(dim)
    if "encoder_to_decoder.weight" in state:
        decoder_dim = state["encoder_to_decoder.weight"].shape[0]
        overrides.update(
            decoder_dim=decoder_dim,
            decoder_depth=_depth(state, "decoder_blocks."),
            decoder_heads=_DECODER_HEADS.get(decoder_dim, max(1, decoder_dim // 64)),
            decoder_mlp_dim=state["decoder_blocks.0.mlp.fc1.weight"].shape[0],
            use_mean_pooling="norm.weight" not in state,
        )
        return arch + "_pretrain", overrides
    overrides.update(num_classes=state["head.weight"].shape[0], use_mean_pooling="fc_norm.weight" in state)
    return arch, overrides


def load_original_videomae(state: dict, source: str):
    """A vidrec VideoMAE (classifier or pretraining model) from an original checkpoint's state."""
    pos = state.pop("pos_embed", state.pop("encoder.pos_embed", None))
    state = {original_videomae_key(k): v for k, v in state.items()}
    arch, overrides = original_videomae_config(state)
    model = create_model(arch, **overrides)
    if pos is not None:  # a saved copy of the fixed table is harmless; a learned one is not supported
        table = position_table(pos.shape[-2], pos.shape[-1], device="cpu", dtype=torch.float32)
        if not torch.allclose(pos.reshape(table.shape).float(), table, atol=1e-5):
            raise VidrecError(
                f"{source}: learned position embeddings are not supported (vidrec uses the fixed table)"
            )
    return load_exact(model, state, source)


def from_original_videomae(state: dict, arch: str | None):
    """`load_checkpoint`'s entry for MCG-NJU/VideoMAE and OpenGVLab/VideoMAEv2 files."""
    model = load_original_videomae(state, "VideoMAE checkpoint")
    if arch is not None and arch != model.arch:
        raise ConfigError(f"this VideoMAE checkpoint is a {model.arch}, not {arch} (its shapes say so)")
    return model
