import json
import os
import signal

import numpy as np
import pytest
import torch

import vidrec
from vidrec.distributed import Dist, ShardedBatchSampler
from vidrec.errors import ConfigError
from vidrec.metrics.classification import accuracy_metrics, confusion_matrix
from vidrec.train.checkpoint import CheckpointManager, changed_settings, resumable_settings
from vidrec.train.config import ScheduleSection, config_from_dict
from vidrec.train.loop import Stopped, train
from vidrec.train.optim import lr_at, param_groups


def tiny(root: str, out, **sections) -> "vidrec.train.config.RunConfig":
    tree = {
        "model": {"name": "tsn_small", "options": {"width": 8}},
        "data": {
            "train": root,
            "batch_size": 4,
            "workers": 0,
            "num_frames": 4,
            "sampling_rate": 2,
            "resize": 32,
            "crop_size": 32,
        },
        "optimizer": {"lr": 3e-3},
        "schedule": {"epochs": 2, "warmup_epochs": 0.5},
        "run": {"out": str(out), "device": "cpu", "tensorboard": False, "log_every": 2},
    }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return config_from_dict(tree)


def fine_tuned_from_five_classes(root: str, tmp_path, **sections) -> "vidrec.train.config.RunConfig":
    """A run in tmp_path/ft fine-tuning a 5-class tsn_small (saved in tmp_path/five) on `root`."""
    vidrec.create_model("tsn_small", num_classes=5, width=8).save_pretrained(tmp_path / "five")
    model = {"name": None, "init": str(tmp_path / "five"), "options": {}}
    return tiny(root, tmp_path / "ft", model=model, **sections)


def test_the_loop_learns(bright_dark, tmp_path):
    test_csv = os.path.join(bright_dark, "val.csv")  # the held-out videos again, as the test split
    cfg = tiny(bright_dark, tmp_path / "m", schedule={"epochs": 4}, data={"batch_size": 8, "test": test_csv})
    metrics = train(cfg, progress=False)
    assert metrics["val_top1"] >= 90.0, metrics
    held_out = vidrec.load_model(tmp_path / "m")
    assert held_out.labels == ["dark", "bright"]
    report = json.load(open(tmp_path / "m" / "test_report.json"))  # the final test, with its matrix
    matrix = report["confusion_matrix"]
    n = len(open(test_csv).read().split())
    assert sum(map(sum, matrix)) == report["num_videos"] == n
    assert 100 * (matrix[0][0] + matrix[1][1]) / n == report["top1"] == metrics["test_top1"]
    assert (tmp_path / "m" / "confusion.png").stat().st_size > 0


def test_schedule_and_param_groups():
    s = ScheduleSection(warmup_start_lr=0.0, min_lr=0.01)
    assert lr_at(0, total=100, warmup=10, peak=1.0, s=s) == pytest.approx(0.1)
    assert lr_at(9, total=100, warmup=10, peak=1.0, s=s) == pytest.approx(1.0)
    assert lr_at(55, total=100, warmup=10, peak=1.0, s=s) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_at(100, total=100, warmup=10, peak=1.0, s=s) == pytest.approx(0.01)
    model = vidrec.create_model("tsn_small", num_classes=3, width=8)
    groups = param_groups(model, weight_decay=0.05)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(p.ndim <= 1 for g in groups if g["weight_decay"] == 0 for p in g["params"])
    with pytest.raises(ConfigError, match="layer_decay"):
        param_groups(model, weight_decay=0.05, layer_decay=0.75)
    vit = vidrec.create_model("videomae_tiny", num_classes=3)  # depth 2: embedding 0, blocks 1-2, head 3
    scales = {
        id(p): g["lr_scale"]
        for g in param_groups(vit, weight_decay=0.05, layer_decay=0.5)
        for p in g["params"]
    }
    assert scales[id(vit.encoder.patch_embed.weight)] == 0.5**3
    assert scales[id(vit.encoder.blocks[1].mlp.fc1.weight)] == 0.5**1
    assert scales[id(vit.head.weight)] == 1.0


def test_metrics_and_confusion():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    labels = torch.tensor([0, 1, 1, 1])
    m = accuracy_metrics(scores, labels, 3)
    assert m["top1"] == 50.0 and m["top5"] == 100.0
    assert m["mean_class_acc"] == pytest.approx(100 * (1.0 + 1 / 3) / 2)
    assert confusion_matrix(scores, labels, 3).tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'optimiser'.*did you mean 'optimizer'"):
        config_from_dict({"model": {"name": "tsn_small"}, "optimiser": {}})
    with pytest.raises(ConfigError, match="'warmup_epoch'.*did you mean 'warmup_epochs'"):
        config_from_dict({"model": {"name": "tsn_small"}}, ["schedule.warmup_epoch=2"])
    with pytest.raises(ConfigError, match="optimizer.lr: expected float, got str 'fast'"):
        config_from_dict({"model": {"name": "tsn_small"}, "optimizer": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="schedule.epochs: expected int"):
        config_from_dict({"model": {"name": "tsn_small"}}, ["schedule.epochs=2.5"])
    cfg = config_from_dict(
        {"model": {"name": "tsn_small"}},
        ["optimizer.lr=1e-4", "model.options.width=8", "optimizer.betas=[0.9, 0.95]"],
    )
    assert (
        cfg.optimizer.lr == 1e-4 and cfg.model.options == {"width": 8} and cfg.optimizer.betas == (0.9, 0.95)
    )
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # what is saved reads back the same
    (tmp_path / "bad.yaml").write_text("model: {name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        vidrec.train.config.load_config(str(tmp_path / "bad.yaml"))


def test_sharded_sampler_splits_each_global_batch():
    one = ShardedBatchSampler(10, batch_size=4, d=Dist(), seed=3)
    two = [ShardedBatchSampler(10, batch_size=2, d=Dist(rank=r, world=2), seed=3) for r in range(2)]
    for s in (one, *two):
        s.set_epoch(1)
    batches = list(one)
    assert len(batches) == 2 and len(set(sum(batches, []))) == 8  # drop_last: 2 full batches of 4
    assert [a + b for a, b in zip(*two)] == batches
    one.set_epoch(1, start_batch=1)
    assert list(one) == batches[1:]


def _crash_at(n):
    def on_step(step):
        if step == n:
            raise KeyboardInterrupt  # dies like a killed process: nothing after this step is saved

    return on_step


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(bright_dark, tmp_path):
    extra = dict(
        run={"checkpoint_every": 3, "seed": 5},
        model={"name": "tsn_small", "options": {"width": 8, "dropout": 0.5}},
        augment={"mixup": 0.8, "cutmix": 1.0, "label_smoothing": 0.1},
        optimizer={"accumulate": 2, "lr": 3e-3},
    )
    train(tiny(bright_dark, tmp_path / "a", **extra), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(bright_dark, tmp_path / "b", **extra), progress=False, on_step=_crash_at(7))
    state, _ = CheckpointManager(str(tmp_path / "b" / "checkpoints")).latest()
    # 8 batches of 4 per epoch, 2 per step: step 6 is mid-way through epoch 2
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (6, 1, 4)
    assert state["seconds"] > 0  # wall time so far, carried across the resumption
    summary = train(tiny(bright_dark, tmp_path / "b", **extra), progress=False, resume="auto")
    assert summary["train_seconds"] > state["seconds"]
    a, b = vidrec.load_model(tmp_path / "a").state_dict(), vidrec.load_model(tmp_path / "b").state_dict()
    print(
        f"crash at step 7, resumed from step 6: max weight difference "
        f"{max((a[k].float() - b[k].float()).abs().max().item() for k in a):.1e}"
    )
    for key in a:
        assert (a[key].float() - b[key].float()).abs().max() <= 1e-6, key


def test_a_setting_added_since_the_checkpoint_does_not_strand_the_run():
    cfg = config_from_dict({"model": {"name": "tsn_small"}, "data": {"train": "x"}})
    saved = resumable_settings(cfg)
    del saved["model"]["inflation"]  # a checkpoint written before vidrec had this field
    assert changed_settings(saved, cfg) == []
    model = {"name": "tsn_small", "inflation": "centre"}
    other = config_from_dict({"model": model, "data": {"train": "x"}, "optimizer": {"lr": 0.5}})
    assert changed_settings(saved, other) == ["model.inflation", "optimizer.lr"]


def _loss_steps(out) -> list[int]:
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return [r["step"] for r in rows if "loss" in r]


def test_resume_auto_starts_a_run_killed_before_its_first_checkpoint(bright_dark, tmp_path):
    # One command both launches a run and continues it: nothing to resume yet means start it,
    # and the rows the killed attempt logged are not kept twice.
    cfg = tiny(bright_dark, tmp_path / "n", run={"log_every": 1, "checkpoint_every": 0})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_step=_crash_at(3))
    assert not CheckpointManager(str(tmp_path / "n" / "checkpoints")).exists()
    assert _loss_steps(tmp_path / "n") == [1, 2, 3]
    train(cfg, progress=False, resume="auto")
    steps = _loss_steps(tmp_path / "n")
    assert steps == sorted(set(steps)) and steps[0] == 1 and len(steps) > 3


def test_resumed_run_logs_each_step_once(bright_dark, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = {"log_every": 1, "checkpoint_every": 2, "tensorboard": True}
    cfg = tiny(bright_dark, tmp_path / "r", run=run)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_step=_crash_at(5))  # rows 1-5 logged, checkpoint at 4
    train(cfg, progress=False, resume="auto")
    steps = _loss_steps(tmp_path / "r")
    assert steps == sorted(set(steps)) and 5 in steps
    # TensorBoard as its UI reads the run: each step once, with the resumed run's value
    board = EventAccumulator(str(tmp_path / "r" / "tb"))
    board.Reload()
    events = board.Scalars("loss")
    assert [e.step for e in events] == steps
    rows = [json.loads(line) for line in open(tmp_path / "r" / "metrics.jsonl")]
    assert [e.value for e in events] == pytest.approx([r["loss"] for r in rows if "loss" in r])


def test_corrupt_checkpoint_falls_back(bright_dark, tmp_path, capsys):
    cfg = tiny(bright_dark, tmp_path / "c", run={"checkpoint_every": 2})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, on_step=_crash_at(5))
    ckpts = CheckpointManager(str(tmp_path / "c" / "checkpoints"))
    newest = ckpts.index["checkpoints"][-1]
    assert newest["step"] == 4
    path = tmp_path / "c" / "checkpoints" / newest["file"]
    path.write_bytes(path.read_bytes()[:1000])  # torn by a crash mid-write (or a bad disk)
    state, used = ckpts.latest()
    assert state["step"] == 2 and used.endswith("step-000000002.pt")
    assert "is corrupt" in capsys.readouterr().err
    train(cfg, progress=False, resume="auto")  # continues from step 2
    assert os.path.exists(tmp_path / "c" / "model.safetensors")


def test_sigterm_saves_a_checkpoint(bright_dark, tmp_path):
    with pytest.raises(Stopped, match="resume auto"):
        train(
            tiny(bright_dark, tmp_path / "t"),
            progress=False,
            on_step=lambda step: step == 3 and os.kill(os.getpid(), signal.SIGTERM),
        )
    assert CheckpointManager(str(tmp_path / "t" / "checkpoints")).latest()[0]["step"] == 3


def test_existing_run_is_not_overwritten_and_head_is_reinitialised(bright_dark, tmp_path, capsys):
    train(tiny(bright_dark, tmp_path / "r"), progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny(bright_dark, tmp_path / "r"), progress=False)
    train(fine_tuned_from_five_classes(bright_dark, tmp_path, schedule={"epochs": 1}), progress=False)
    assert "re-initialising the classifier" in capsys.readouterr().out
    assert vidrec.load_model(tmp_path / "ft").num_classes == 2


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_fine_tunes(bright_dark, tmp_path, capsys):
    from PIL import Image

    from vidrec.cli import main

    # raw-pixel targets: per-patch normalised noise (these clips are mostly noise) is unpredictable
    options = {"mask_ratio": 0.75, "norm_pix_loss": False}
    cfg = tiny(
        bright_dark,
        tmp_path / "pt",
        model={"name": "videomae_tiny_pretrain", "options": options},
        optimizer={"lr": 2e-3},
        schedule={"epochs": 6, "warmup_epochs": 1},
        data={"batch_size": 8},
        run={"log_every": 1},
    )
    train(cfg, pretrain=True, progress=False)
    losses = [
        json.loads(line)["loss"] for line in open(tmp_path / "pt" / "metrics.jsonl") if '"loss"' in line
    ]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses  # reconstruction improves
    ft = tiny(
        bright_dark,
        tmp_path / "ft",
        model={"name": None, "init": str(tmp_path / "pt"), "options": {}},
        schedule={"epochs": 1},
        run={"keep_best": False},  # the fine-tuned weights, even where the probe scored as well on val
    )
    train(ft, progress=False)
    out = capsys.readouterr().out
    assert (
        "initialised from" in out and "new (re-initialised): fc_norm.bias, fc_norm.weight, head.bias" in out
    )
    assert not torch.equal(
        vidrec.load_model(tmp_path / "pt").encoder.blocks[0].attn.qkv.weight,
        vidrec.load_model(tmp_path / "ft").encoder.blocks[0].attn.qkv.weight,
    )  # fine-tuned
    video = os.path.join(bright_dark, "v0.mp4")
    assert (
        main(
            ["reconstruct", str(tmp_path / "pt"), video, "--out", str(tmp_path / "r.png"), "--device", "cpu"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["hidden_tokens"] == 2 * int(0.75 * 16)  # 2 tubelet steps x 12 of 16 patches
    assert Image.open(tmp_path / "r.png").size == (4 * 32, 3 * 32)  # 4 frames wide, 3 rows
    assert main(["reconstruct", str(tmp_path / "ft"), video, "--out", str(tmp_path / "x.png")]) == 2


def test_ema_and_bf16(bright_dark, tmp_path):
    cfg = tiny(bright_dark, tmp_path / "e", run={"ema": 0.9, "precision": "bf16"}, schedule={"epochs": 1})
    train(cfg, progress=False)
    state, _ = CheckpointManager(str(tmp_path / "e" / "checkpoints")).latest()
    saved = vidrec.load_model(tmp_path / "e").state_dict()
    for key, value in saved.items():  # the saved model is the average, not the last weights
        assert torch.equal(value, state["ema"]["module." + key]), key
    moved = [
        k for k in saved if saved[k].is_floating_point() and not torch.equal(saved[k], state["model"][k])
    ]
    assert moved
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train(tiny(bright_dark, tmp_path / "f", run={"precision": "fp16"}), progress=False)


@pytest.mark.slow
def test_sigkill_and_resume_end_with_the_same_weights(bright_dark, tmp_path):
    import subprocess
    import sys
    import time

    def config(out):
        cfg = tiny(
            bright_dark,
            out,
            run={"checkpoint_every": 2, "log_every": 100},
            schedule={"epochs": 4},
            augment={"mixup": 0.5},
            model={"name": "tsn_small", "options": {"width": 8, "dropout": 0.3}},
        )
        path = str(out) + ".yaml"
        open(path, "w").write(cfg.to_yaml())
        return path

    base = [sys.executable, "-m", "vidrec", "train", "--quiet"]
    subprocess.run(base + [config(tmp_path / "whole")], check=True, capture_output=True)
    proc = subprocess.Popen(
        base + [config(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    index = tmp_path / "killed" / "checkpoints" / "index.json"
    while not index.exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)  # freeze at once, then kill: no handler runs, nothing is flushed
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    state, _ = CheckpointManager(str(tmp_path / "killed" / "checkpoints")).latest()
    assert 2 <= state["step"] < 32
    subprocess.run(base + [config(tmp_path / "killed"), "--resume", "auto"], check=True, capture_output=True)
    a, b = (vidrec.load_model(tmp_path / n).state_dict() for n in ("whole", "killed"))
    print(
        f"SIGKILL at step {state['step']}+, resumed: max weight difference "
        f"{max((a[k].float() - b[k].float()).abs().max().item() for k in a):.1e}"
    )
    for key in a:
        assert (a[key].float() - b[key].float()).abs().max() <= 1e-6, key


def test_task_and_model_must_agree(bright_dark, tmp_path):
    with pytest.raises(ConfigError, match="use vidrec pretrain"):
        train(
            tiny(bright_dark, tmp_path / "a", model={"name": "videomae_tiny_pretrain", "options": {}}),
            progress=False,
        )
    with pytest.raises(ConfigError, match="is not a pretraining model"):
        train(tiny(bright_dark, tmp_path / "b"), pretrain=True, progress=False)
    assert not os.path.exists(tmp_path / "a" / "checkpoints")


@pytest.mark.slow
def test_fine_tuning_defaults_freeze_modes_and_backbone_lr(bright_dark, tmp_path):
    """From pretrained weights: the backbone learns at 0.1x and batch norms keep their statistics
    (model.freeze norms); `--freeze-backbone` trains the head alone; from scratch, neither."""
    train(tiny(bright_dark, tmp_path / "pre"), progress=False)
    pre = vidrec.load_model(tmp_path / "pre")
    bn = [n for n, b in pre.state_dict().items() if "running_mean" in n]
    assert bn

    def fine_tune(out, **model):
        cfg = tiny(
            bright_dark, out, model={"name": None, "options": {}, "init": str(tmp_path / "pre"), **model}
        )
        train(cfg, progress=False)
        return cfg, vidrec.load_model(out).state_dict()

    cfg, tuned = fine_tune(tmp_path / "ft")
    assert cfg.freeze == "norms" and all(torch.equal(tuned[n], pre.state_dict()[n]) for n in bn)
    assert not torch.equal(tuned["backbone.0.weight"], pre.state_dict()["backbone.0.weight"])  # it learned
    cfg, probe = fine_tune(tmp_path / "probe", freeze="backbone")
    changed = [k for k, v in probe.items() if not torch.equal(v, pre.state_dict()[k])]
    assert changed == ["head.weight", "head.bias"], changed

    model = vidrec.create_model("tsn_small", num_classes=3, width=8)
    groups = param_groups(model, weight_decay=0.05, backbone_lr_scale=0.1)
    scales = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scales[id(model.head.weight)] == 1.0 and scales[id(model.backbone[0].weight)] == pytest.approx(0.1)
    scratch = train(tiny(bright_dark, tmp_path / "scratch", schedule={"epochs": 1}), progress=False)
    assert scratch["epoch"] == 1 and tiny(bright_dark, tmp_path / "x").freeze == "none"


def test_logistic_fit_is_the_l2_optimum():
    """fit_logistic minimises scikit-learn's objective, C * sum(CE) + ||W||^2 / 2: its gradient
    vanishes at the result, and the fit separates separable data."""
    from vidrec.train.probe import fit_logistic

    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.randn(60, 8, generator=g, dtype=torch.float64) + 3.0 * torch.nn.functional.one_hot(y, 8)
    w, b = fit_logistic(x, y, 3)
    w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
    loss = torch.nn.functional.cross_entropy(x @ w.T + b, y, reduction="sum") + 0.5 * (w * w).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-5 and b.grad.abs().max() < 1e-5
    assert ((x @ w.T + b).argmax(1) == y).all()


@pytest.mark.slow
def test_a_new_head_starts_as_the_probe_and_the_best_epoch_is_kept(bright_dark, tmp_path):
    """Fine-tuning on new labels: before any step the new classifier is the logistic regression on
    the frozen features (epoch 0 in metrics.jsonl, validated and checkpointed), and the saved model
    is the checkpoint with the best val top-1 (run.keep_best), the probe included."""
    from vidrec.data.datasets import load_csv
    from vidrec.train.probe import fit_logistic, frozen_features

    cfg = fine_tuned_from_five_classes(
        bright_dark,
        tmp_path,
        optimizer={"lr": 0.05},  # large: later epochs may be worse than the probe
        schedule={"epochs": 3},
        run={"keep_last": 5},  # the step-0 checkpoint stays
    )
    assert cfg.head_init == "probe" and cfg.keep_best
    train(cfg, progress=False)
    rows = [json.loads(line) for line in open(tmp_path / "ft" / "metrics.jsonl")]
    epochs = [r for r in rows if "val_top1" in r]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3] and "probe_train_top1" in epochs[0]

    # the probe's head is the fit on the features of the source's backbone (batch norms frozen)
    manager = CheckpointManager(str(tmp_path / "ft" / "checkpoints"))
    first = torch.load(tmp_path / "ft" / "checkpoints" / "step-000000000.pt", weights_only=True)["model"]
    records, _ = load_csv(os.path.join(bright_dark, "train.csv"), classes=["dark", "bright"])
    backbone = vidrec.load_model(tmp_path / "five")
    backbone.reset_classifier(2)
    backbone.preprocessing = vidrec.load_model(tmp_path / "ft").preprocessing
    x, y = frozen_features(backbone, records, batch_size=4, workers=0, device="cpu")
    w, b = fit_logistic(x, y, 2)
    assert torch.allclose(first["head.weight"].double().view_as(w), w, atol=1e-4)
    assert torch.allclose(first["head.bias"].double(), b, atol=1e-4)

    # the saved model is the best checkpoint's, and its val top-1 is the best of the epochs
    best_state, best = manager.best()
    assert best["metric"] == max(r["val_top1"] for r in epochs)
    saved = vidrec.load_model(tmp_path / "ft").state_dict()
    assert all(torch.equal(saved[k], best_state["model"][k]) for k in saved)

    off = tiny(bright_dark, tmp_path / "x", model={"init": str(tmp_path / "five"), "head_init": "random"})
    assert off.head_init == "random" and tiny(bright_dark, tmp_path / "y").head_init == "random"
    with pytest.raises(ConfigError, match="head_init"):
        tiny(bright_dark, tmp_path / "z", model={"head_init": "lstsq"})


def test_a_decoded_frame_cache_trains_the_same_weights(bright_dark, tmp_path):
    """data.cache only moves where the frames come from: the same run with and without it ends
    with the same weights, and the cache holds one entry per training video."""
    train(tiny(bright_dark, tmp_path / "plain", schedule={"epochs": 1}), progress=False)
    cached = tiny(
        bright_dark, tmp_path / "cached", schedule={"epochs": 1}, data={"cache": str(tmp_path / "c")}
    )
    train(cached, progress=False)
    a, b = (vidrec.load_model(tmp_path / n).state_dict() for n in ("plain", "cached"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len([n for n in os.listdir(tmp_path / "c") if n.endswith(".npy")]) == 32


@pytest.mark.slow
def test_distillation_teaches_what_the_teacher_knows(bright_dark, tmp_path):
    """With alpha 1 the labels play no part: a student given every training label wrong still
    learns bright from dark, from the teacher's predictions alone; alpha 0.5 blends the two
    losses as the formula says; a teacher of other classes or clips is refused."""
    teacher = tmp_path / "teacher"
    train(tiny(bright_dark, teacher, schedule={"epochs": 4}, data={"batch_size": 8}), progress=False)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "classes.txt").write_text("dark\nbright\n")
    swap = {"dark": "bright", "bright": "dark"}
    rows = [line.rsplit(",", 1) for line in open(os.path.join(bright_dark, "train.csv")).read().split()]
    (wrong / "train.csv").write_text("".join(f"{os.path.join(bright_dark, p)},{swap[y]}\n" for p, y in rows))
    val = os.path.join(bright_dark, "val.csv")
    taught = train(
        tiny(
            str(wrong),
            tmp_path / "taught",
            schedule={"epochs": 4},
            data={"batch_size": 8, "val": val},
            distill={"teacher": str(teacher), "alpha": 1.0, "temperature": 2.0},
        ),
        progress=False,
    )
    assert taught["val_top1"] >= 90.0, taught
    misled = train(
        tiny(str(wrong), tmp_path / "misled", schedule={"epochs": 4}, data={"batch_size": 8, "val": val}),
        progress=False,
    )
    assert misled["val_top1"] <= 10.0, misled  # the wrong labels alone teach the opposite

    from vidrec.train.distill import Teacher

    t = Teacher(str(teacher), alpha=0.5, temperature=2.0)
    x = torch.randn(3, 3, 4, 32, 32)
    student = torch.randn(3, 2)
    with torch.no_grad():
        p = torch.softmax(vidrec.load_model(teacher)(x) / 2.0, -1)
    q = torch.log_softmax(student / 2.0, -1)
    kl = (p * (p.log() - q)).sum(-1).mean() * 4.0
    assert t.loss(student, x, torch.tensor(0.7)).item() == pytest.approx(
        0.5 * 0.7 + 0.5 * kl.item(), rel=1e-5
    )
    with pytest.raises(ConfigError, match="num_frames 4 vs 8"):
        train(
            tiny(bright_dark, tmp_path / "x", data={"num_frames": 8}, distill={"teacher": str(teacher)}),
            progress=False,
        )
    five = tmp_path / "five"
    vidrec.create_model("tsn_small", num_classes=5, width=8).save_pretrained(five)
    with pytest.raises(ConfigError, match="5 outputs"):
        train(tiny(bright_dark, tmp_path / "y", distill={"teacher": str(five)}), progress=False)
