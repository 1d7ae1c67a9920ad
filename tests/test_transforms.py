import numpy as np
import pytest
import torch

from vidrec.data.transforms import (
    EvalTransform,
    Preprocessing,
    TrainTransform,
    center_crop,
    frames_to_clip,
    normalize,
    random_resized_crop,
    resize_short_side,
    three_crop,
)
from vidrec.errors import ConfigError


def _clip(t=4, h=48, w=80):
    frames = np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    return frames, frames_to_clip(frames)


def test_layout_and_short_side_resize():
    frames, clip = _clip()
    assert clip.shape == (3, 4, 48, 80) and clip.dtype == torch.uint8
    assert torch.equal(clip[:, 2], torch.from_numpy(frames[2]).permute(2, 0, 1))
    out = resize_short_side(clip, 24)
    assert out.shape == (3, 4, 24, 40) and out.dtype == torch.uint8
    batch = torch.stack([clip, clip])  # (B, C, T, H, W)
    assert resize_short_side(batch, 24).shape == (2, 3, 4, 24, 40)


def test_crops():
    _, clip = _clip()
    c = center_crop(clip, 32)
    assert torch.equal(c, clip[..., 8:40, 24:56])
    views = three_crop(clip, 48)
    assert views.shape == (3, 3, 4, 48, 48)
    assert torch.equal(views[0], clip[..., :48]) and torch.equal(views[2], clip[..., -48:])
    rrc = random_resized_crop(clip, 32, rng=np.random.default_rng(0), scale=(0.3, 0.6))
    assert rrc.shape == (3, 4, 32, 32)


def test_normalize():
    clip = torch.full((3, 2, 4, 4), 255, dtype=torch.uint8)
    out = normalize(clip, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert out.dtype == torch.float32
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def test_clip_centering_removes_the_clip_colour():
    """'clip' centering subtracts the clip's own mean per channel: a colour offset over the whole
    clip changes nothing, and a clip of one colour becomes zeros (the dataset mean is unused)."""
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(40, 200, (3, 4, 8, 8), generator=gen, dtype=torch.uint8)
    shifted = clip + torch.tensor([30, -20, 10], dtype=torch.int16).view(3, 1, 1, 1)
    std = (0.5, 0.25, 1.0)
    a = normalize(clip, (0.9, 0.9, 0.9), std, centering="clip")
    b = normalize(shifted.to(torch.uint8), (0.1, 0.1, 0.1), std, centering="clip")
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert a.mean(dim=(1, 2, 3)).abs().max() < 1e-6
    assert not torch.allclose(a, normalize(clip, (0.9, 0.9, 0.9), std))  # not the dataset path
    # per clip, not per batch: each clip of a batch is centred on its own colour
    batch = torch.stack([clip, torch.full_like(clip, 255)])
    out = normalize(batch, (0.5,) * 3, std, centering="clip")
    torch.testing.assert_close(out[0], a) and torch.testing.assert_close(out[1], torch.zeros_like(a))
    prep = Preprocessing(num_frames=4, sampling_rate=1, resize=8, crop_size=8, centering="clip")
    views = EvalTransform(prep)(clip)
    torch.testing.assert_close(views[0], normalize(clip, prep.mean, prep.std, centering="clip"))
    with pytest.raises(ConfigError, match="did you mean 'clip'"):
        Preprocessing(centering="clp")


def test_frame_centering_is_per_frame():
    """'frame' centering subtracts each frame's own mean per channel: a different colour offset on
    every frame changes nothing, and a frame is normalised the same alone or inside its clip (so
    a stream model can use it)."""
    gen = torch.Generator().manual_seed(1)
    clip = torch.randint(40, 200, (3, 4, 8, 8), generator=gen, dtype=torch.uint8)
    offsets = torch.randint(-30, 30, (3, 4, 1, 1), generator=gen, dtype=torch.int16)
    a = normalize(clip, (0.5,) * 3, (0.25,) * 3, centering="frame")
    b = normalize((clip + offsets).to(torch.uint8), (0.1,) * 3, (0.25,) * 3, centering="frame")
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert a.mean(dim=(-2, -1)).abs().max() < 1e-6
    frames = [normalize(clip[:, t : t + 1], (0.5,) * 3, (0.25,) * 3, centering="frame") for t in range(4)]
    alone = torch.cat(frames, dim=1)
    torch.testing.assert_close(a, alone)
    assert not torch.allclose(a, normalize(clip, (0.5,) * 3, (0.25,) * 3, centering="clip"))


def test_train_transform_is_the_same_for_every_frame():
    # Every frame identical: after any crop and flip, frames must stay identical.
    frame = np.random.default_rng(1).integers(0, 256, (1, 60, 90, 3), dtype=np.uint8)
    clip = frames_to_clip(np.repeat(frame, 6, axis=0))
    for crop in ("jitter", "resized"):
        prep = Preprocessing(num_frames=6, resize=64, crop_size=56, train_crop=crop)
        out = TrainTransform(prep)(clip, np.random.default_rng(3))
        assert out.shape == (3, 6, 56, 56)
        assert torch.equal(out[:, 0], out[:, 5])


def test_flip_off_for_direction_labels():
    x = np.zeros((2, 64, 64, 3), np.uint8)
    x[:, :, :20] = 255  # bright stripe on the left (survives the jitter crop)
    clip = frames_to_clip(x)
    prep = Preprocessing(num_frames=2, resize=64, crop_size=64, flip=False)
    for seed in range(10):
        out = TrainTransform(prep)(clip, np.random.default_rng(seed))
        assert out[0, 0, :, :4].mean() > out[0, 0, :, -4:].mean()
    flips = [
        TrainTransform(Preprocessing(num_frames=2, resize=64, crop_size=64))(clip, np.random.default_rng(s))[
            0, 0, 0, 0
        ]
        < 0
        for s in range(20)
    ]
    assert 0 < sum(flips) < 20


def test_eval_views():
    _, clip = _clip(h=60, w=100)
    prep = Preprocessing(num_frames=4, resize=40, crop_size=32)
    assert EvalTransform(prep, num_crops=1)(clip).shape == (1, 3, 4, 32, 32)
    assert EvalTransform(prep, num_crops=3)(clip).shape == (3, 3, 4, 32, 32)
    with pytest.raises(ConfigError):
        EvalTransform(prep, num_crops=2)


def test_preprocessing_round_trip_and_typos():
    prep = Preprocessing(num_frames=16, mean=(0.1, 0.2, 0.3))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(ConfigError, match="did you mean 'crop_size'"):
        Preprocessing.from_dict({"crop_sise": 3})
    with pytest.raises(ConfigError):
        Preprocessing(resize=100, crop_size=200)
