"""Fine-tuning real pretrained weights on a few custom clips, as a new user does it: chunks of
real footage in a folder, one `vidrec train` command, the defaults (bench/finetune.py measures the
same on more chunk lengths and seeds)."""

import json
import os

import pytest

from vidrec.cli import main

from conftest import bench_module

CHUNK_SECONDS = 2.5


@pytest.fixture(scope="module")
def sports(tmp_path_factory, shared_videos):
    """One real clip per class cut into 2.5 s chunks; the first ~70% of each clip's chunks train."""
    root = tmp_path_factory.mktemp("sports")
    counts = bench_module("finetune").make_chunks(str(root), shared_videos, CHUNK_SECONDS)
    return root, counts


def _train(data, out, tflite, *extra) -> list[dict]:
    args = f"train --data {data} --model {tflite} --out {out} --epochs 4 --batch-size 4 --lr 0.001"
    assert main([*args.split(), "--workers", "0", "--device", "cpu", "--quiet", *extra]) == 0
    return [r for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if "val_top1" in r]


def _saved_val(out, data) -> dict:
    """Val figures of the model the run saved."""
    from vidrec.data.datasets import load_csv
    from vidrec.models.loader import load_model
    from vidrec.recognize.evaluate import evaluate

    model = load_model(str(out))
    records, _ = load_csv(os.path.join(data, "val.csv"), classes=model.labels)
    return evaluate(model, records, progress=False)


@pytest.mark.slow
def test_fine_tuning_pretrained_movinet_on_a_few_real_clips(sports, movinet_tflite, tmp_path):
    """The defaults (the head first fitted as a logistic regression on the frozen features, then
    everything fine-tuned with the backbone at 0.1x and batch norms frozen, clips as long as the
    videos, the best checkpoint on val kept) end at or above the probe, far above chance."""
    data, counts = sports
    rows = _train(data, tmp_path / "tuned", movinet_tflite)
    probe, saved = rows[0], _saved_val(tmp_path / "tuned", data)
    config = json.load(open(tmp_path / "tuned" / "config.json"))
    print(
        f"\n{counts['train']} train / {counts['val']} val chunks of {CHUNK_SECONDS} s, 4 classes (chance 25%)"
        f"\nprobe (epoch 0) val top-1 {probe['val_top1']:.1f}%, train {probe['probe_train_top1']:.1f}%"
        f"\nval top-1 per epoch {[round(r['val_top1'], 1) for r in rows]}; saved model {saved['top1']:.1f}%"
    )
    assert config["preprocessing"]["num_frames"] == int(CHUNK_SECONDS * 5)  # from the data, not 50
    assert probe["epoch"] == 0 and probe["val_top1"] >= 75.0
    assert (
        saved["top1"] == pytest.approx(max(r["val_top1"] for r in rows))
        and saved["top1"] >= probe["val_top1"]
    )
    assert saved["mean_class_acc"] >= 75.0

    # the plain recipe, for comparison: a trained linear probe from a random head, the last epoch
    plain = _train(
        data, tmp_path / "probe", movinet_tflite, "--freeze-backbone",
        "--set", "model.head_init=random", "--set", "run.keep_best=false",
    )  # fmt: skip
    assert [r["epoch"] for r in plain] == [1, 2, 3, 4] and plain[-1]["val_top1"] >= 50.0
