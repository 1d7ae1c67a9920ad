"""Weights trained by vidrec on SynthMotion ship inside the package and load offline."""

import os

import pytest

from vidrec.data.datasets import load_csv
from vidrec.data.synthetic import CLASSES, SYNTHMOTION_PREP, SynthConfig, generate_dataset
from vidrec.errors import VidrecError
from vidrec.models.download import PACKAGED_DIR, fetch_weights, sha256_of
from vidrec.models.loader import load_model
from vidrec.models.registry import create_model
from vidrec.models.weights import WEIGHTS, WeightEntry
from vidrec.recognize.evaluate import evaluate

SHIPPED = [w for w in WEIGHTS.values() if w.url.startswith("package://")]


def test_shipped_files_are_in_the_package_and_small():
    assert [w.name for w in SHIPPED] == [
        "i3d_small.synthmotion",
        "fast_small.synthmotion",
        "videomae_small_synth.synthmotion",
    ]
    total = 0
    for w in SHIPPED:
        path = fetch_weights(w)
        assert os.path.dirname(path) == PACKAGED_DIR and sha256_of(path) == w.sha256
        total += os.path.getsize(path)
    assert total < 8 << 20  # a few MB in all


@pytest.mark.parametrize("entry", SHIPPED, ids=lambda w: w.name)
def test_shipped_model_recognises_fresh_synthmotion(entry, tmp_path, monkeypatch):
    """Loaded by tag, with nothing downloaded, it names the motion in videos drawn with a seed it
    never saw (2 per class): the weights are what the table says, not a stand-in."""
    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "empty-cache"))
    model = load_model(entry.name)
    assert model.labels == list(CLASSES) and model.preprocessing == SYNTHMOTION_PREP
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    generate_dataset(str(tmp_path / "d"), counts={"test": 24}, cfg=SynthConfig(), seed=4242, progress=False)
    records, _ = load_csv(str(tmp_path / "d" / "test.csv"), classes=model.labels)
    result = evaluate(model, records, progress=False)
    # 24 videos: within 25 points (2.7 standard errors) of the entry's figure on 240 such videos
    assert result["top1"] >= entry.metrics["synthmotion_seed7_top1"] - 25, result
    fresh = create_model(entry.arch, **entry.model_options).eval()  # untrained: near chance
    assert evaluate(fresh, records, progress=False)["top1"] < result["top1"] - 30


def test_packaged_weights_errors(tmp_path, monkeypatch):
    entry = WeightEntry(
        name="i3d_small.missing", url="package://missing.safetensors", sha256="", filename="x", num_classes=12
    )
    with pytest.raises(VidrecError, match="should ship with vidrec"):
        fetch_weights(entry)
    real = SHIPPED[0]
    wrong = WeightEntry(name=real.name, url=real.url, sha256="0" * 64, filename=real.filename, num_classes=12)
    with pytest.raises(VidrecError, match="sha256 differs"):
        fetch_weights(wrong)
