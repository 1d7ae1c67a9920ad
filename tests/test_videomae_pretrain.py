import pytest
import torch

import vidrec
from vidrec.models.videomae_pretrain import random_mask, running_cell_mask, tube_mask


@pytest.mark.parametrize("ratio", [0.75, 0.9, 0.95])
def test_tube_mask_ratio_and_tubes(ratio):
    grid = (8, 14, 14)
    mask = tube_mask(grid, ratio, batch=3, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 8 * 14 * 14) and mask.dtype == torch.bool
    per_frame = mask.view(3, 8, 196)
    assert (per_frame.sum(-1) == int(ratio * 196)).all()  # exact ratio in every frame
    assert (per_frame == per_frame[:, :1]).all()  # the same spatial mask at every time step
    assert not torch.equal(per_frame[0, 0], per_frame[1, 0])  # but random per sample


def test_random_mask_is_not_a_tube():
    mask = random_mask((8, 14, 14), 0.9, batch=2, generator=torch.Generator().manual_seed(0)).view(2, 8, 196)
    assert (mask.sum((1, 2)) == int(0.9 * 8 * 196)).all()
    assert not (mask == mask[:, :1]).all()


def test_running_cell_decoder_mask():
    skip = running_cell_mask((4, 4, 4), 0.5, batch=2).view(2, 4, 4, 4)
    kept = ~skip
    assert (kept.sum((2, 3)) == 8).all()  # half of every frame
    cell = kept[0, :, :2, :2].reshape(4, 4)  # one 2x2 cell over time
    assert (cell.sum(1) == 2).all() and not torch.equal(cell[0], cell[1])  # it runs over time
    assert torch.equal(kept[0, 0, :2, :2], kept[0, 0, 2:, 2:])  # same pattern in every cell


def test_encoder_sees_only_visible_tokens():
    model = vidrec.create_model("videomae_tiny_pretrain", mask_ratio=0.75)
    seen = {}

    def record(module, inputs, output):
        seen["n"] = output.shape[1]

    model.encoder.blocks[0].register_forward_hook(record)
    model(torch.randn(2, 3, 4, 32, 32))
    assert seen["n"] == 2 * 4 * 4 - 2 * int(0.75 * 16)  # 32 tokens, 24 hidden


def test_dual_masking_reconstructs_the_decoder_cells():
    model = vidrec.create_model("videomae_tiny_pretrain", decoder_mask_ratio=0.5)
    x = torch.randn(2, 3, 4, 32, 32)
    mask, decoder_mask = model.draw_masks(x)
    pred, predict = model.reconstruct(x, mask, decoder_mask)
    assert pred.shape == (2, 16, 3 * 2 * 8 * 8)  # half of the 32 tokens
    assert torch.equal(predict, ~decoder_mask)


def test_pretraining_learns_and_encoder_moves_to_the_classifier():
    torch.manual_seed(0)
    model = vidrec.create_model("videomae_tiny_pretrain")
    # Smooth ramps: every hidden patch is predictable from the visible ones (noise would not be).
    ramp = torch.linspace(-1, 1, 32)
    x = torch.stack(
        [ramp.view(1, 32) * a + ramp.view(32, 1) * b for a, b in [(1, 0), (0, 1), (1, 1), (1, -1)]]
    )
    x = x[:, None, None].expand(4, 3, 4, 32, 32).contiguous()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(x, generator=torch.Generator().manual_seed(0))  # fixed masks: a fittable task
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.6 * first, (first, loss.item())
    classifier, report = model.to_classifier(7)
    assert classifier.arch == "videomae_tiny" and classifier.num_classes == 7
    assert {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"} == set(report["new"])
    assert "mask_token" in report["dropped"] and any(
        k.startswith("decoder_blocks.") for k in report["dropped"]
    )
    assert "norm.weight" in report["dropped"]  # the pretraining encoder's final norm; fc_norm replaces it
    for key in report["loaded"]:
        assert torch.equal(classifier.state_dict()[key], model.state_dict()[key])
    assert classifier(torch.randn(1, 3, 4, 32, 32)).shape == (1, 7)


def test_save_load_pretraining_model(tmp_path):
    model = vidrec.create_model("videomae_tiny_pretrain", mask_ratio=0.8)
    model.save_pretrained(tmp_path / "pt")
    again = vidrec.load_model(tmp_path / "pt")
    assert again.config == model.config
    x = torch.randn(1, 3, 4, 32, 32)
    mask = tube_mask((2, 4, 4), 0.8, batch=1)
    torch.testing.assert_close(again.loss(x, mask), model.eval().loss(x, mask))


@pytest.mark.parametrize("name", [n for n in vidrec.list_models() if n.endswith("_pretrain")])
def test_every_pretraining_model_trains_every_parameter(name):
    small = {
        "depth": 1,
        "dim": 32,
        "num_heads": 2,
        "mlp_dim": 64,
        "decoder_depth": 1,
        "decoder_dim": 16,
        "decoder_heads": 2,
        "decoder_mlp_dim": 32,
        "patch_size": 8,
    }
    model = vidrec.create_model(name, **small)
    model(torch.randn(2, 3, 4, 32, 32)).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent


def test_the_tubelet_mlp_embeds_each_tubelet_alone():
    # Masked pretraining is only exact if a hidden tubelet leaks into no visible token: change one
    # tubelet's pixels and only its own token may move.
    model = vidrec.create_model("videomae_tiny_pretrain", patch_embed="mlp").eval()
    assert [n for n, _ in model.encoder.patch_embed.named_children()] == ["embed", "act", "fc"]
    x = torch.randn(1, 3, 4, 32, 32)
    y = x.clone()
    y[:, :, 2:4, 8:16, 16:24] += 1.0  # tubelet (t 1, h 1, w 2): token 1*16 + 1*4 + 2 = 22
    with torch.no_grad():
        a = model.encoder.patch_embed(x).flatten(2)  # (1, D, N)
        b = model.encoder.patch_embed(y).flatten(2)
    moved = ((a - b).abs().amax(dim=1) > 1e-6).nonzero()[:, 1].tolist()
    assert moved == [22]
    classifier, report = model.to_classifier(5)
    assert classifier.config.patch_embed == "mlp" and "encoder.patch_embed.fc.weight" in report["loaded"]
    from vidrec.models.convert.videomae import is_original_videomae

    assert not is_original_videomae(classifier.state_dict())  # vidrec's own keys, not the original's


def test_an_unknown_patch_embedding_is_refused():
    with pytest.raises(vidrec.errors.ConfigError, match="patch_embed"):
        vidrec.create_model("videomae_tiny", patch_embed="conv")


def test_the_reconstruction_picture_keeps_the_clip_colour_under_clip_centering(tmp_path):
    """A clip-centred model sees every clip in the dataset's average colour; the picture must show
    the video's own colour in all three rows, not that average."""
    import dataclasses

    import numpy as np
    from PIL import Image

    from vidrec.recognize.reconstruct import reconstruct_video
    from vidrec.utils import write_video

    frames = np.zeros((8, 32, 32, 3), np.uint8)
    frames[...] = (200, 40, 40)  # red, far from the dataset mean (about 115 per channel)
    for t in range(8):
        frames[t, 8:16, 2 + 2 * t : 10 + 2 * t] = (240, 240, 240)  # a moving white square
    write_video(str(tmp_path / "red.mp4"), frames, fps=8)
    model = vidrec.create_model("videomae_tiny_pretrain")
    model.preprocessing = dataclasses.replace(model.preprocessing, centering="clip")
    model.save_pretrained(str(tmp_path / "pt"))
    shown = reconstruct_video(str(tmp_path / "pt"), str(tmp_path / "red.mp4"), str(tmp_path / "r.png"))
    assert shown["rows"] == ["original", "masked", "reconstruction", "decoder output"]  # norm_pix_loss
    image = np.asarray(Image.open(tmp_path / "r.png")).astype(float)  # 4 rows of 32 px
    assert image.shape[0] == 4 * 32
    original, reconstruction = image[:32].mean((0, 1)), image[64:96].mean((0, 1))
    masked, raw = image[32:64], image[96:]
    grey = (np.abs(masked - 128) < 1).all(-1)  # the hidden tubelets: the decoder's output there
    assert (np.abs(raw[~grey] - 128) < 1).all()  # nothing drawn where the encoder saw the clip
    assert (raw[grey].max(-1) == raw[grey].min(-1)).all()  # one grey level a pixel: no colour leaks
    assert original[0] > 180 and original[1] < 80, original
    # untrained, the decoder guesses about the mean: the hidden patches keep the clip's colour
    assert reconstruction[0] - reconstruction[1] > 80, reconstruction
