import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidrec.cli import main
from vidrec.utils import write_video

from conftest import run_vidrec

# The tiny training every test here shares: 4 frames of 32 px through an 8-wide TSN, on the CPU.
TINY_TRAIN = "--batch-size 8 --workers 0 --num-frames 4 --sampling-rate 2 --crop-size 32 --set width=8"
TINY_TRAIN += " --device cpu --quiet"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, model = str(root / "data"), str(root / "model")
    synth = f"synth {data} --train 24 --val 12 --test 12 --frames 8 --size 32 --workers 1"
    assert main(synth.split()) == 0
    train = f"train --data {data} --model tsn_small --out {model} --epochs 2 {TINY_TRAIN}"
    assert main(train.split()) == 0
    return root, data, model


def test_train_outputs(trained):
    _, data, model = trained
    assert {
        "config.json",
        "model.safetensors",
        "checkpoints",
        "metrics.jsonl",
        "config.yaml",
        "curves.png",
        "tb",
    } <= set(os.listdir(model))
    rows = [json.loads(line) for line in open(os.path.join(model, "metrics.jsonl"))]
    epochs = [r for r in rows if "train_loss" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"train_loss", "val_top1", "val_top5", "skipped_videos"} <= set(epochs[0])
    assert "test_top1" in rows[-1]
    cfg = json.load(open(os.path.join(model, "config.json")))
    assert cfg["preprocessing"]["num_frames"] == 4 and cfg["config"]["width"] == 8
    assert len(cfg["labels"]) == 12


def test_resume_continues_and_finished_run_is_kept(trained, capsys):
    root, data, model = trained
    # Same settings, more epochs: resumes from epoch 2 and trains only epoch 3.
    args = f"train --data {data} --model tsn_small --out {model} {TINY_TRAIN}".split()
    assert main(args + ["--epochs", "3"]) == 2  # never silently overwrites or continues a run
    assert "--resume auto" in capsys.readouterr().err
    assert main(args + ["--epochs", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in open(os.path.join(model, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows if "train_loss" in r] == [1, 2, 3]
    assert main(args + ["--epochs", "3", "--lr", "0.5", "--resume", "auto"]) == 2
    assert "other settings (optimizer.lr differ)" in capsys.readouterr().err


def test_eval_json(trained, capsys):
    _, data, model = trained
    assert (
        main(
            [
                "eval",
                model,
                "--data",
                os.path.join(data, "test.csv"),
                "--num-clips",
                "2",
                "--num-crops",
                "3",
                "--json",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["num_videos"] == 12 and result["num_views"] == 6
    assert result["failed"] == [] and set(result) >= {"top1", "top5", "mean_class_acc"}


def test_eval_from_the_run_config_writes_a_report(trained, capsys):
    from PIL import Image

    _, data, model = trained
    config = os.path.join(model, "config.yaml")  # the resolved config the run saved
    assert main(["eval", config, "--set", "eval.num_clips=2", "--workers", "0"]) == 0
    report = json.load(open(os.path.join(model, "eval_report.json")))
    assert report["num_videos"] == 12 and report["num_views"] == 2  # data.test found beside train.csv
    per_class = report["per_class_acc"]
    assert set(per_class) <= set(report["labels"]) and len(report["labels"]) == 12
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 12
    assert sum(matrix[i][i] for i in range(12)) == round(report["top1"] * 12 / 100)
    assert Image.open(os.path.join(model, "confusion.png")).size[0] > 300
    assert "wrote" in capsys.readouterr().out


def test_predict_json_and_bad_file(trained, capsys, tmp_path):
    _, data, model = trained
    video = os.path.join(data, "videos", "test", "test_00000.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_text("hello")
    code = main(["predict", video, str(bad), video, "--model", model, "--top-k", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    preds = lines[0]["predictions"]
    assert lines[0]["video"] == video and lines[0]["num_clips"] == 4 and len(preds) == 3
    assert lines[0]["mode"] == "clips" and lines[0]["num_crops"] == 1 and lines[0]["frames"] == 16
    assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
    assert err.strip().startswith(f"error: {bad}: cannot open as a video") and err.count("\n") == 1
    import vidrec

    py = vidrec.predict(vidrec.load_model(model), video, top_k=3)
    assert py["predictions"] == preds


def test_user_errors_are_one_line(tmp_path):
    """Through the real entry point: one `error:` line, exit 2, no traceback."""

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "vidrec", *args], capture_output=True, text=True)
        assert "Traceback" not in proc.stderr
        return proc.returncode, proc.stderr.strip()

    code, err = run("train", "CONFIG.yaml", "--resume", str(tmp_path / "missing.pt"))
    assert code == 2 and err == "error: CONFIG.yaml: cannot read config (No such file or directory)"


def _bad_inputs(root, data, model, tmp_path):
    """(argv, exit code, text in the one error line) for every subcommand."""
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(
        '{"architecture": "tsn_small", "config": {"width": 8, "num_classes": 12}}'
    )
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model: {name: tsn_small}\noptimiser: {lr: 0.1}\n")
    video = os.path.join(data, "videos", "test", "test_00000.mp4")
    missing = str(tmp_path / "missing.mp4")
    near = os.path.join(os.path.dirname(model), "modle")
    quick = ["--data", data, "--out", str(tmp_path / "run"), "--epochs", "1"]
    return [
        (["nope"], 2, "invalid choice"),
        (["predict", video, "--model", model, "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["synth", str(text)], 2, "is not a directory"),
        (["synth", str(tmp_path / "s"), "--train", "-3"], 2, "--train"),
        (["train", str(typo)], 2, "did you mean 'optimizer'"),
        (["train", str(tmp_path / "none.yaml")], 2, "cannot read config"),
        (["train", "--data", data, "--model", "tsn_small"], 2, "--out"),
        (["train", *quick, "--model", "tsn_smal"], 2, "did you mean 'tsn_small'"),
        (
            ["predict", video, "--model", "tsn_smol"],
            2,
            "unknown model or weights 'tsn_smol'; did you mean 'tsn_small'?",
        ),
        (["train", *quick, "--model", near], 2, f"did you mean {model}"),
        (
            ["train", *quick, "--model", "fast_r50", "--resize", "64", "--crop-size", "72"],
            2,
            "data.crop_size 72",
        ),
        (
            ["train", *quick, "--model", "tsn_small", "--resume", str(tmp_path / "missing.pt")],
            2,
            "no such checkpoint",
        ),
        (
            ["train", *quick, "--data", str(tmp_path / "nodata"), "--model", "tsn_small"],
            2,
            "no such file or directory",
        ),
        (["pretrain", *quick, "--model", "tsn_small"], 2, "not a pretraining model"),
        (
            ["reconstruct", model, video, "--out", str(tmp_path / "r.png")],
            2,
            "not a VideoMAE pretraining model",
        ),
        (["eval", str(tmp_path / "nomodel"), "--data", data], 2, "no such"),
        (["eval", model], 2, "--data is required"),
        (["eval", str(broken), "--data", os.path.join(data, "test.csv")], 2, "unreadable safetensors"),
        (["eval", model, "--data", str(text)], 2, "notes.txt"),
        (["eval", model, "--data", os.path.join(data, "test.csv"), "--num-clips", "0"], 2, "must be >= 1"),
        (["predict", missing, "--model", model], 1, "no such file"),
        (["predict", str(text), "--model", model], 1, "cannot open as a video"),
        (["predict", str(empty), "--model", model], 1, "empty file"),
        (["predict", video, "--model", model, "--flow-dir", str(tmp_path)], 2, "two-stream"),
        (["predict", video, "--model", model, "--int8"], 2, "no int8 form"),
        (["predict", video, "--model", model, "--top-k", "0"], 2, "must be >= 1"),
        (["stream", video, "--model", model], 2, "not a stream model"),
        (["convert", str(text), str(tmp_path / "c")], 2, "not a model directory or a checkpoint"),
        (
            ["convert", model, str(tmp_path / "c"), "--format", "transformers"],
            2,
            "no transformers counterpart",
        ),
        (
            ["two-stream", "--rgb", model, "--flow", str(tmp_path / "none"), "--out", str(tmp_path / "ts")],
            2,
            "no such",
        ),
        (["flow", str(tmp_path / "none.csv"), "--out", str(tmp_path / "f")], 2, "no such"),
        (["info", missing], 1, "no such file"),
        (["info", str(text)], 1, "cannot open as a video"),
        (["demo", "--epochs", "0", "--out", str(tmp_path / "d")], 2, "must be >= 1"),
    ]


def test_every_subcommand_refuses_bad_input_in_one_line(trained, tmp_path, capsys):
    root, data, model = trained
    cases = _bad_inputs(root, data, model, tmp_path)
    assert {c[0][0] for c in cases} >= {
        "synth",
        "train",
        "pretrain",
        "reconstruct",
        "eval",
        "predict",
        "stream",
        "convert",
        "two-stream",
        "flow",
        "info",
        "demo",
    }
    for argv, code, needle in cases:
        try:
            got = main(argv)
        except SystemExit as e:  # argparse
            got = e.code
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert got == code and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (
            argv,
            got,
            err,
        )


def test_every_flag_has_help():
    from vidrec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, p in sub.choices.items()
        for action in p._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not missing, missing


def test_models_and_info(capsys, trained):
    _, data, _ = trained
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "tsn_small" in listing
    assert "slowfast_r50_ava                   33,828,888" in listing  # a detector at its 80 classes
    assert main(["info", os.path.join(data, "videos", "val", "val_00000.mp4")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_frames"] == 8 and info["num_frames_source"] == "packets"


def test_training_survives_broken_videos(trained, tmp_path, capsys):
    _, data, _ = trained
    rows = open(os.path.join(data, "train.csv")).read().splitlines()
    (tmp_path / "broken.mp4").write_text("broken")
    lines = ["path,label"] + [f"{os.path.join(data, r.split(',')[0])},{r.split(',')[1]}" for r in rows[1:13]]
    lines += [f"{tmp_path / 'broken.mp4'},move left", f"{tmp_path / 'gone.mp4'},recede"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text(open(os.path.join(data, "classes.txt")).read())
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "train.csv"),
                "--model",
                "tsn_small",
                "--out",
                str(tmp_path / "m"),
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "2",
                "--num-frames",
                "4",
                "--crop-size",
                "32",
                "--set",
                "width=8",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    row = [json.loads(line) for line in open(tmp_path / "m" / "metrics.jsonl") if "train_loss" in line][0]
    assert row["skipped_videos"] == 2
    assert out.err.count("skipped broken video") + out.out.count("skipped broken video") == 2
    assert "gone.mp4: no such file" in out.err + out.out


@pytest.mark.slow
def test_demo_main_job(tmp_path):
    """The README's main job, end to end, as a user runs it."""
    proc = run_vidrec("demo", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    top1 = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(
            r"(\w+_small) +top-1 +([\d.]+)%.*within time-reversal pairs +([\d.]+)%", proc.stdout
        )
    }
    assert set(top1) == {"i3d_small", "tsn_small"}, proc.stdout[-2000:]
    # The 3D model learns motion; the order-less control cannot tell a clip from its reversal.
    # (measured: 77% / 15% top-1, 94% / 46% within pairs)
    assert top1["i3d_small"][0] >= 60 and top1["i3d_small"][0] > top1["tsn_small"][0] + 30
    assert top1["i3d_small"][1] > 85 and top1["tsn_small"][1] < 65
    assert "[4/4] i3d_small predicts" in proc.stdout
    for name in ("i3d_small", "tsn_small"):
        for f in ("model.safetensors", "confusion.png", "curves.png"):
            assert os.path.exists(tmp_path / "demo" / name / f)


def test_synth_easy_form(tmp_path):
    """`--objects 1 --flat`: the actor alone on a flat colour (the demo's easy form)."""
    out = tmp_path / "easy"
    args = f"synth {out} --train 2 --val 0 --test 0 --frames 4 --size 16 --objects 1 --flat"
    assert main(args.split()) == 0
    meta = json.loads((out / "synth.json").read_text())
    assert meta["config"]["max_objects"] == 1 and meta["config"]["texture"] is False
    from vidrec.io import read_video

    frame = read_video(next((out / "videos" / "train").glob("*.mp4")))[0].astype(int)
    corners = frame[[0, 0, -1, -1], [0, -1, 0, -1]]  # flat: the four corners share one colour
    assert (corners.max(0) - corners.min(0)).max() <= 6


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["train", "--nope"], ["detect"], ["stream", "--help"]]
)
def test_help_version_and_argument_errors_import_no_torch(argv):
    """`vidrec --help`, `--version` and a mistyped command answer before torch, torchvision or
    PyAV are imported (the package root loads its entry points on first use)."""
    code = (
        "import sys\nfrom vidrec.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'av') if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr[-2000:]


RUNS_A_MODEL = ("train", "pretrain", "reconstruct", "eval", "predict", "extract", "stream", "detect")
RUNS_A_MODEL += ("highlights", "serve", "demo")


def test_every_command_that_runs_a_model_takes_device_and_bad_devices_are_one_line(tmp_path, capsys):
    """--device on every command that runs a model for inference or training (export traces on
    the CPU; convert, models, info, flow and the evaluators run none); a device this machine has
    not, or a name that is none, is a one-line error before any model loads."""
    from vidrec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    have = {
        name for name, p in sub.choices.items() if any("--device" in a.option_strings for a in p._actions)
    }
    assert set(RUNS_A_MODEL) - set(sub.choices) == set()  # the names are commands
    assert set(RUNS_A_MODEL) <= have, set(RUNS_A_MODEL) - have
    video = tmp_path / "v.mp4"
    write_video(video, np.zeros((6, 32, 32, 3), np.uint8), fps=5)
    bad = ["gpu", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    for command in ("stream", "detect", "predict"):
        for device in bad:
            assert main([command, str(video), "--device", device]) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1 and device in err, err
