import math

import numpy as np
import pytest
import torch

import vidrec
from vidrec.data.datasets import VideoRecord
from vidrec.engine.evaluate import accuracy_metrics, evaluate
from vidrec.engine.train import TrainSettings, cosine_with_warmup, param_groups, train
from vidrec.errors import ConfigError
from vidrec.utils import write_video


@pytest.fixture(scope="module")
def bright_dark(tmp_path_factory):
    """Two classes a frame model can tell apart: a bright or a dark square on noise."""
    root = tmp_path_factory.mktemp("bd")
    rng = np.random.default_rng(0)
    records = []
    for i in range(48):
        label = i % 2
        frames = rng.integers(60, 196, (8, 32, 32, 3)).astype(np.uint8)
        y, x = rng.integers(0, 16, 2)
        frames[:, y:y + 16, x:x + 16] = 250 if label else 5
        path = str(root / f"v{i}.mp4")
        write_video(path, frames, fps=8)
        records.append(VideoRecord(path, label))
    return records


def test_the_loop_learns(bright_dark, tmp_path):
    torch.manual_seed(0)
    model = vidrec.create_model("tsn_small", num_classes=2, width=8)
    model.preprocessing = model.preprocessing.__class__(num_frames=4, sampling_rate=2, resize=32, crop_size=32)
    settings = TrainSettings(epochs=4, batch_size=8, lr=3e-3, warmup_epochs=0.5, workers=0)
    metrics = train(model, bright_dark[:32], classes=["dark", "bright"], out=str(tmp_path / "m"), settings=settings,
                    val_records=bright_dark[32:], progress=False)
    assert metrics["val_top1"] >= 90.0, metrics
    held_out = evaluate(vidrec.load_model(tmp_path / "m"), bright_dark[32:], num_clips=2, progress=False)
    assert held_out["top1"] >= 90.0 and held_out["num_videos"] == 16


def test_schedule_and_param_groups():
    f = cosine_with_warmup(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0, abs=1e-9)
    assert f(30) == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 90)))
    model = vidrec.create_model("tsn_small", num_classes=3, width=8)
    decay, no_decay = param_groups(model, 0.05)
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_metrics():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    labels = torch.tensor([0, 1, 1, 1])
    m = accuracy_metrics(scores, labels, 3)
    assert m["top1"] == 50.0 and m["top5"] == 100.0
    assert m["mean_class_acc"] == pytest.approx(100 * (1.0 + 1 / 3) / 2)


def test_class_count_must_match(bright_dark, tmp_path):
    with pytest.raises(ConfigError, match="3 outputs"):
        train(vidrec.create_model("tsn_small", num_classes=3), bright_dark, classes=["a", "b"], out=str(tmp_path))
