import json

import pytest
import torch

import vidrec
from vidrec.errors import VidrecError
from vidrec.flops import count_params
from vidrec.models.videomae import position_table

hf = pytest.importorskip("transformers")

CONFIGS = [  # vary frames, size, patch, tubelet, depth, width, heads, pooling, qkv bias
    dict(
        num_frames=4,
        image_size=32,
        patch_size=8,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        use_mean_pooling=True,
        qv_bias=True,
    ),
    dict(
        num_frames=6,
        image_size=48,
        patch_size=16,
        tubelet_size=3,
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=96,
        use_mean_pooling=False,
        qv_bias=True,
    ),
    dict(
        num_frames=8,
        image_size=32,
        patch_size=4,
        tubelet_size=2,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=40,
        use_mean_pooling=True,
        qv_bias=False,
    ),
]


def hf_classifier(cfg: dict, num_labels: int = 5):
    torch.manual_seed(0)
    config = hf.VideoMAEConfig(
        **cfg,
        num_labels=num_labels,
        id2label={i: f"act{i}" for i in range(num_labels)},
        label2id={f"act{i}": i for i in range(num_labels)},
    )
    model = hf.VideoMAEForVideoClassification(config).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("cfg", CONFIGS)
def test_logits_match_transformers(tmp_path, cfg):
    reference = hf_classifier(cfg)
    reference.save_pretrained(tmp_path / "hf")
    model = vidrec.load_model(tmp_path / "hf")
    assert model.labels == [f"act{i}" for i in range(5)]
    x = torch.randn(2, 3, cfg["num_frames"], cfg["image_size"], cfg["image_size"])  # (B, C, T, H, W)
    with torch.no_grad():
        expected = reference(pixel_values=x.transpose(1, 2)).logits  # transformers: (B, T, C, H, W)
        err = (model(x) - expected).abs().max().item()
    assert err <= 1e-4, err


def test_round_trip_vidrec_transformers_vidrec(tmp_path):
    model = vidrec.create_model("videomae_tiny", num_classes=3)
    model.set_labels(["a", "b", "c"])
    vidrec.save_model(model, tmp_path / "hf", format="transformers")
    reference = hf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert (reference(pixel_values=x.transpose(1, 2)).logits - model.eval()(x)).abs().max() <= 1e-4
    again = vidrec.load_model(tmp_path / "hf")
    assert again.labels == ["a", "b", "c"]
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    prep = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    assert prep["crop_size"]["height"] == model.preprocessing.crop_size


def test_pytorch_model_bin_loads_weights_only(tmp_path):
    from safetensors.torch import load_file

    reference = hf_classifier(CONFIGS[0])
    reference.save_pretrained(tmp_path / "hf")
    state = load_file(tmp_path / "hf" / "model.safetensors")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(state, tmp_path / "hf" / "pytorch_model.bin")  # the older checkpoint format
    model = vidrec.load_model(tmp_path / "hf")
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert (model(x) - reference(pixel_values=x.transpose(1, 2)).logits).abs().max() <= 1e-4


def test_parameter_counts_and_position_table():
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    with torch.device("meta"):  # shapes only: the counts of transformers' own classes, exactly
        for name, (dim, depth, heads, mlp) in (
            ("videomae_s", (384, 12, 6, 1536)),
            ("videomae_b", (768, 12, 12, 3072)),
        ):
            hf = VideoMAEForVideoClassification(
                VideoMAEConfig(
                    hidden_size=dim,
                    num_hidden_layers=depth,
                    num_labels=400,
                    num_attention_heads=heads,
                    intermediate_size=mlp,
                )
            )
            ours = count_params(vidrec.create_model(name, num_classes=400))
            print(f"{name}: {ours:,} parameters (transformers {count_params(hf):,})")
            assert ours == count_params(hf)
    assert ours == 86_534_800  # ViT-B: the paper's 87M

    torch.testing.assert_close(
        position_table(98, 64, device="cpu", dtype=torch.float32), get_sinusoid_encoding_table(98, 64)[0]
    )


def test_other_lengths_and_sizes_and_bad_shapes():
    model = vidrec.create_model("videomae_tiny", num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 40, 64)).shape == (1, 4)
    with pytest.raises(vidrec.errors.ConfigError, match="not divisible"):
        model(torch.randn(1, 3, 5, 32, 32))


def test_hub_id_offline_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(VidrecError, match="not in the Hugging Face cache"):
        vidrec.load_model("MCG-NJU/videomae-base-finetuned-kinetics")


@pytest.mark.parametrize("norm_pix,mean_pool", [(True, False), (False, True)])
def test_pretraining_loss_equals_transformers_for_the_same_mask(tmp_path, norm_pix, mean_pool):
    from vidrec.models.videomae_pretrain import tube_mask

    torch.manual_seed(0)
    cfg = hf.VideoMAEConfig(
        num_frames=4,
        image_size=32,
        patch_size=8,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        decoder_hidden_size=24,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=48,
        norm_pix_loss=norm_pix,
        use_mean_pooling=mean_pool,
    )
    reference = hf.VideoMAEForPreTraining(cfg).eval()
    with torch.no_grad():
        reference.mask_token.normal_()
    reference.save_pretrained(tmp_path / "pt")
    model = vidrec.load_model(tmp_path / "pt")
    assert model.arch == "videomae_b_pretrain" and model.config.decoder_depth == 2
    x = torch.randn(2, 3, 4, 32, 32)
    mask = tube_mask((2, 4, 4), 0.75, batch=2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=x.transpose(1, 2), bool_masked_pos=mask).loss
        got = model.loss(x, mask)
    assert abs(got.item() - expected.item()) <= 1e-5


def test_pretraining_model_round_trip_through_transformers(tmp_path):
    from vidrec.models.videomae_pretrain import tube_mask

    model = vidrec.create_model("videomae_tiny_pretrain", decoder_depth=2).eval()
    with torch.no_grad():
        model.mask_token.normal_()
    vidrec.save_model(model, tmp_path / "pt", format="transformers")
    reference = hf.VideoMAEForPreTraining.from_pretrained(tmp_path / "pt").eval()
    x = torch.randn(2, 3, 4, 32, 32)
    mask = tube_mask((2, 4, 4), 0.75, batch=2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(pixel_values=x.transpose(1, 2), bool_masked_pos=mask).loss
        got = model.loss(x, mask)
    assert abs(got.item() - expected.item()) <= 1e-4  # only the decoder norm's eps differs (1e-6 vs 1e-5)
    again = vidrec.load_model(tmp_path / "pt")
    assert again.config.decoder_depth == 2 and again.norm is not None
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_flop_counter_counts_attention():
    from vidrec.flops import count_macs

    model = vidrec.create_model("videomae_tiny", num_classes=4)  # 32 tokens of width 64, 2 blocks
    with_attention = count_macs(model, (1, 3, 4, 32, 32))
    attention = 2 * 2 * 32 * 32 * 64  # per block: Q K^T and A V, N x N x D each
    linear = count_macs(torch.nn.Linear(64, 64), (32, 64))
    assert with_attention > attention + 2 * 4 * linear  # qkv + proj per block at least


@pytest.mark.slow
@pytest.mark.parametrize("name,gmacs", [("videomae_s", 57), ("videomae_b", 180)])
def test_flops_match_the_paper(name, gmacs):
    from vidrec.flops import count_macs

    assert count_macs(vidrec.create_model(name), (1, 3, 16, 224, 224)) / 1e9 == pytest.approx(gmacs, rel=0.02)


def _perturb(model: torch.nn.Module) -> None:
    """Non-trivial norms and biases (they start at 1 and 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("bias", "gamma_1", "gamma_2")) or "norm" in name or name == "mask_token":
                p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("mean_pool,layer_scale", [(True, 0.1), (False, 0.0)])
def test_original_finetuned_checkpoint_matches_videomaev2(tmp_path, videomaev2, mean_pool, layer_scale):
    from functools import partial

    finetune, _ = videomaev2
    torch.manual_seed(0)
    # 16 frames: the reference resizes its position table for any other length
    reference = finetune.VisionTransformer(
        img_size=32,
        patch_size=8,
        num_classes=400,
        embed_dim=128,
        depth=2,
        num_heads=2,
        mlp_ratio=2,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        init_values=layer_scale,
        use_mean_pooling=mean_pool,
        init_scale=1.0,
    ).eval()
    _perturb(reference)
    torch.save({"module": reference.state_dict()}, tmp_path / "vit_finetuned.pth")  # as VideoMAEv2 saves them
    model = vidrec.load_model(tmp_path / "vit_finetuned.pth").eval()
    assert (model.config.dim, model.config.depth, model.config.num_heads, model.config.mlp_dim) == (
        128,
        2,
        2,
        256,
    )
    assert model.config.use_mean_pooling == mean_pool and (model.config.layer_scale_init is not None) == bool(
        layer_scale
    )
    assert model.labels[0] == "abseiling"  # 400 classes: Kinetics-400 names
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        err = (model(x) - reference(x)).abs().max().item()
    print(f"VideoMAE V2 fine-tuned checkpoint: max abs logit difference {err:.1e}")
    assert err <= 1e-4, err


@pytest.mark.parametrize("decoder_mask_ratio", [0.0, 0.5])
def test_original_pretraining_checkpoint_matches_videomaev2(tmp_path, videomaev2, decoder_mask_ratio):
    from functools import partial

    from vidrec.models.videomae_pretrain import running_cell_mask, tube_mask

    _, pretrain = videomaev2
    torch.manual_seed(0)
    reference = pretrain.PretrainVisionTransformer(
        img_size=32,
        patch_size=8,
        encoder_embed_dim=128,
        encoder_depth=2,
        encoder_num_heads=2,
        decoder_num_classes=3 * 2 * 8 * 8,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=1,
        mlp_ratio=2,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        tubelet_size=2,
        all_frames=16,
    ).eval()
    _perturb(reference)
    torch.save({"model": reference.state_dict()}, tmp_path / "checkpoint.pth")  # as VideoMAE saves them
    model = vidrec.load_model(tmp_path / "checkpoint.pth")
    assert (
        model.arch.endswith("_pretrain")
        and model.config.decoder_depth == 2
        and model.config.decoder_dim == 64
    )
    x = torch.randn(2, 3, 16, 32, 32)
    mask = tube_mask((8, 4, 4), 0.75, batch=2, generator=torch.Generator().manual_seed(0))
    decoder_mask = running_cell_mask((8, 4, 4), decoder_mask_ratio, batch=2) if decoder_mask_ratio else None
    with torch.no_grad():
        expected = reference(x, mask, decoder_mask)
        got, _ = model.reconstruct(x, mask, decoder_mask)
    assert got.shape == expected.shape
    err = (got - expected).abs().max().item()
    print(
        f"VideoMAE V2 pretraining checkpoint, decoder mask {decoder_mask_ratio}: max abs difference {err:.1e}"
    )
    assert err <= 1e-4


def test_original_checkpoint_with_learned_positions_is_refused(tmp_path, videomaev2):
    finetune, _ = videomaev2
    reference = finetune.VisionTransformer(
        img_size=32,
        patch_size=8,
        num_classes=3,
        embed_dim=64,
        depth=1,
        num_heads=1,
        qkv_bias=True,
        use_learnable_pos_emb=True,
    )
    torch.save(reference.state_dict(), tmp_path / "learned.pth")
    with pytest.raises(VidrecError, match="learned position embeddings"):
        vidrec.load_model(tmp_path / "learned.pth")
    state = {k: v for k, v in reference.state_dict().items() if k != "pos_embed"}
    torch.save(state, tmp_path / "fixed.pth")
    with pytest.raises(vidrec.errors.ConfigError, match="is a videomae_b, not videomae_s"):
        vidrec.load_model(tmp_path / "fixed.pth", arch="videomae_s")


def _on_meta_with_cpu_linspace(build):
    """Build an OpenGVLab model on the meta device: its constructor calls `.item()` on a
    `torch.linspace` (the drop-path schedule), which a meta tensor cannot give."""
    real = torch.linspace
    torch.linspace = lambda *a, **k: real(*a, **{**k, "device": "cpu"})
    try:
        with torch.device("meta"):
            return build()
    finally:
        torch.linspace = real


@pytest.mark.slow
def test_videomae_g_is_videomae_v2s_vit_g(videomaev2):
    """ViT-g/14 as VideoMAE V2 builds it: the same parameters, the same MACs, and every key of
    its fine-tuned and pretraining checkpoints mapped (full size, on the meta device)."""
    from vidrec.flops import count_macs, count_params
    from vidrec.models.convert.videomae import load_original_videomae

    finetune, pretrain = videomaev2
    reference = _on_meta_with_cpu_linspace(
        lambda: finetune.vit_giant_patch14_224(num_classes=710, all_frames=16)
    )
    reference_pt = _on_meta_with_cpu_linspace(
        lambda: pretrain.pretrain_videomae_giant_patch14_224(decoder_depth=4)
    )
    with torch.device("meta"):
        ours = vidrec.create_model("videomae_g", num_classes=710)
        ours_pt = vidrec.create_model("videomae_g_pretrain")
        loaded = load_original_videomae(dict(reference.state_dict()), "ViT-g checkpoint")  # strict: every key
        loaded_pt = load_original_videomae(dict(reference_pt.state_dict()), "ViT-g pretraining checkpoint")
    assert count_params(ours) == count_params(reference) == 1_012_611_142
    assert count_params(ours_pt) == count_params(reference_pt) == 1_026_306_560
    assert (loaded.arch, loaded.config) == ("videomae_g", ours.config)
    assert loaded_pt.arch == "videomae_g_pretrain" and loaded_pt.config.decoder_mlp_dim == 2234
    shape = (1, 3, 16, 224, 224)
    assert count_macs(ours, shape) == count_macs(reference, shape)


def test_a_narrow_vit_g_matches_videomaev2(tmp_path, videomaev2):
    """ViT-g's own shapes (14 px patches, MLP ratio 48/11) at a narrow width: the official model's
    logits from its checkpoint, to 1e-5 of their scale. (A checkpoint does not store the head
    count: it is read from the width, 16 for ViT-g's 1408, width / 64 for widths vidrec does not
    know, so the narrow model has 176 / 64 = 2 heads.)"""
    from functools import partial

    finetune, _ = videomaev2
    torch.manual_seed(0)
    reference = finetune.VisionTransformer(
        img_size=28, patch_size=14, num_classes=10, embed_dim=176, depth=2, num_heads=2, mlp_ratio=48 / 11,
        qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), init_scale=1.0,
    ).eval()  # fmt: skip
    _perturb(reference)
    torch.save({"module": reference.state_dict()}, tmp_path / "vit_g_narrow.pth")
    model = vidrec.load_model(tmp_path / "vit_g_narrow.pth").eval()
    assert (model.config.patch_size, model.config.mlp_dim, model.config.num_heads) == (14, 768, 2)
    x = torch.randn(2, 3, 16, 28, 28)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_load_in_bfloat16_from_memory_mapped_weights(tmp_path):
    """`load_model(dtype=torch.bfloat16)`: bfloat16 parameters (from a float32 file, or a
    bfloat16 one without a copy), logits near float32's under bfloat16 autocast; the file is
    never written through the mapping."""
    from vidrec.deploy.precision import to_bfloat16

    model = vidrec.create_model("videomae_g", num_classes=3, dim=56, depth=2, num_heads=4, mlp_dim=244)
    model.save_pretrained(tmp_path / "f32")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    x = torch.randn(1, 3, 4, 28, 28)
    with torch.inference_mode():
        reference = vidrec.load_model(tmp_path / "f32")(x)
    for folder in ("f32", "bf16"):
        loaded = vidrec.load_model(tmp_path / folder, dtype=torch.bfloat16)
        assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
        with torch.inference_mode():
            logits = to_bfloat16(loaded)(x)
        assert logits.dtype == torch.float32
        assert (logits - reference).abs().max() <= 0.05 * reference.abs().max()
    loaded = vidrec.load_model(tmp_path / "bf16", dtype=torch.bfloat16)
    with torch.no_grad():
        next(loaded.parameters()).add_(1.0)  # copy on write: the file keeps its weights
    again = vidrec.load_model(tmp_path / "bf16", dtype=torch.bfloat16)
    assert torch.equal(next(again.parameters()), next(model.parameters()))


def test_loaded_weights_lie_aligned_and_give_the_saved_models_outputs(tmp_path):
    """A tensor in model.safetensors may start anywhere (3 classes: a 12-byte head bias shifts
    whatever follows it); CPU kernels pick their path by alignment, so a loaded model keeps every
    tensor on a 64-byte boundary and gives the saved model's outputs bit for bit."""
    model = vidrec.create_model("videomae_g", num_classes=3, dim=56, depth=2, num_heads=4, mlp_dim=244)
    model.eval().save_pretrained(tmp_path / "m")
    loaded = vidrec.load_model(tmp_path / "m")
    assert [k for k, t in loaded.state_dict().items() if t.data_ptr() % 64] == []
    x = torch.randn(1, 3, 4, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
