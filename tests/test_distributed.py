"""Two CPU processes under torchrun (gloo) against one process with the same global batch."""

import json
import os
import sys

import pytest
import torch
import yaml

import vidrec
from helpers import run_checked, torchrun


def _config(root: str, out, batch_size: int) -> dict:
    # videomae_tiny: LayerNorm only, so per-process batches give the same gradients as one batch
    return {
        "model": {"name": "videomae_tiny", "options": {"dim": 32, "mlp_dim": 64}},
        "data": {
            "train": root,
            "batch_size": batch_size,
            "workers": 0,
            "num_frames": 4,
            "sampling_rate": 2,
            "resize": 32,
            "crop_size": 32,
        },
        "optimizer": {"lr": 1e-3},
        "schedule": {"epochs": 2},
        "run": {"out": str(out), "device": "cpu", "tensorboard": False, "log_every": 1, "seed": 1},
    }


@pytest.mark.slow
def test_two_processes_match_one(bright_dark, tmp_path):  # noqa: F811
    for name, batch in (("one", 4), ("two", 2)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(_config(bright_dark, tmp_path / name, batch)))
    run_checked([sys.executable, "-m", "vidrec", "train", str(tmp_path / "one.yaml"), "--quiet"])
    run_checked(
        [
            *torchrun(2, 29531),
            "-m",
            "vidrec",
            "train",
            str(tmp_path / "two.yaml"),
            "--quiet",
        ]
    )
    rows = {n: [json.loads(line) for line in open(tmp_path / n / "metrics.jsonl")] for n in ("one", "two")}
    steps = {n: [r["loss"] for r in rows[n] if "loss" in r] for n in rows}
    assert len(steps["two"]) == len(steps["one"]) == 16  # 8 global batches of 4, 2 epochs
    # losses are reduced over both ranks: they equal the single process's
    loss_diff = max(abs(a - b) for a, b in zip(steps["one"], steps["two"]))
    assert loss_diff < 1e-4
    epochs = {n: [r for r in rows[n] if "val_top1" in r] for n in rows}
    assert [r["val_top1"] for r in epochs["one"]] == [r["val_top1"] for r in epochs["two"]]
    a, b = (vidrec.load_model(tmp_path / n).state_dict() for n in ("one", "two"))
    weight_diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"2 processes vs 1: max loss difference {loss_diff:.1e}, max weight difference {weight_diff:.1e}")
    assert weight_diff < 1e-4
    assert not os.path.exists(tmp_path / "two" / "rank1")  # rank 0 alone writes


@pytest.mark.slow
def test_distributed_eval_counts_every_video_once(bright_dark, tmp_path):  # noqa: F811
    model = vidrec.create_model("tsn_small", num_classes=2, width=8)
    model.preprocessing = model.preprocessing.__class__(
        num_frames=4, sampling_rate=2, resize=32, crop_size=32
    )
    model.set_labels(["dark", "bright"])
    model.save_pretrained(tmp_path / "m")
    val = os.path.join(bright_dark, "val.csv")  # 16 videos: uneven shards would drop or repeat some
    evaluate = f"-m vidrec eval {tmp_path / 'm'} --data {val} --json --workers 0 --batch-size 3".split()
    single = run_checked([sys.executable, *evaluate])
    multi = run_checked([*torchrun(3, 29532), *evaluate, "--report", str(tmp_path / "report.json")])
    one, three = json.loads(single.stdout), json.loads(multi.stdout)
    assert one["num_videos"] == three["num_videos"] == 16 and one["top1"] == three["top1"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(p["path"] for p in report["predictions"]) == sorted(
        os.path.join(bright_dark, f"v{i}.mp4") for i in range(32, 48)
    )
    assert torch.tensor(report["confusion_matrix"]).sum() == 16


def _vit_g_shaped(root: str, out, batch_size: int, **run) -> dict:
    """ViT-g's shape (patch 14, MLP 6144/1408 of the width, V2's layout) at width 64 and depth 2."""
    config = _config(root, out, batch_size)
    config["model"] = {
        "name": "videomae_g",
        "options": {"dim": 64, "num_heads": 4, "mlp_dim": 279, "depth": 2, "drop_path": 0.0},
        "gradient_checkpointing": True,
    }
    config["data"].update(resize=28, crop_size=28)
    config["optimizer"]["grad_clip"] = 1.0
    config["run"].update(run)
    return config


@pytest.mark.slow
def test_fsdp_two_processes_match_one_and_resume(bright_dark, tmp_path):  # noqa: F811
    """Fully sharded over two processes (half the parameters and optimizer state each): the losses
    and weights of one unsharded process; resumed from its epoch-1 checkpoint, the same end."""
    runs = {
        "one": (_vit_g_shaped(bright_dark, tmp_path / "one", 4), 1, []),
        "fsdp": (_vit_g_shaped(bright_dark, tmp_path / "fsdp", 2, strategy="fsdp"), 2, []),
    }
    first = str(tmp_path / "fsdp" / "checkpoints" / "step-000000008.pt")
    runs["resumed"] = (
        _vit_g_shaped(bright_dark, tmp_path / "resumed", 2, strategy="fsdp"),
        2,
        ["--resume", first],
    )
    for name, (config, processes, resume) in runs.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        start = [sys.executable] if processes == 1 else torchrun(processes, 29533)
        run_checked([*start, "-m", "vidrec", "train", str(tmp_path / f"{name}.yaml"), "--quiet", *resume])
    rows = {n: [json.loads(line) for line in open(tmp_path / n / "metrics.jsonl")] for n in runs}
    losses = {n: [r["loss"] for r in rows[n] if "loss" in r] for n in rows}
    assert len(losses["one"]) == len(losses["fsdp"]) == 16  # 8 global batches of 4, 2 epochs
    assert max(abs(a - b) for a, b in zip(losses["one"], losses["fsdp"])) < 1e-4
    assert len(losses["resumed"]) == 8  # the second epoch's steps
    assert max(abs(a - b) for a, b in zip(losses["one"][8:], losses["resumed"])) < 1e-4
    accuracy = {n: [r["val_top1"] for r in rows[n] if "val_top1" in r] for n in rows}
    assert accuracy["one"] == accuracy["fsdp"] and accuracy["one"][1:] == accuracy["resumed"]
    weights = {n: vidrec.load_model(tmp_path / n).state_dict() for n in runs}
    for name in ("fsdp", "resumed"):
        assert weights[name].keys() == weights["one"].keys()
        diff = max((weights["one"][k] - weights[name][k]).abs().max().item() for k in weights["one"])
        print(f"{name} vs one process: max weight difference {diff:.1e}")
        assert diff < 1e-5
