import json
import os
import subprocess
import sys

import pytest

from vidrec.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, model = str(root / "data"), str(root / "model")
    assert main(["synth", data, "--train", "24", "--val", "12", "--test", "12", "--frames", "8", "--size", "32",
                 "--workers", "1"]) == 0
    assert main(["train", "--data", data, "--model", "tsn_small", "--out", model, "--epochs", "2", "--batch-size", "8",
                 "--workers", "0", "--num-frames", "4", "--sampling-rate", "2", "--crop-size", "32", "--set", "width=8",
                 "--device", "cpu", "--quiet"]) == 0
    return root, data, model


def test_train_outputs(trained):
    _, data, model = trained
    assert {"config.json", "model.safetensors", "checkpoints", "metrics.jsonl", "config.yaml", "curves.png",
            "tb"} <= set(os.listdir(model))
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
    args = ["train", "--data", data, "--model", "tsn_small", "--out", model, "--batch-size", "8", "--workers", "0",
            "--num-frames", "4", "--sampling-rate", "2", "--crop-size", "32", "--set", "width=8", "--device", "cpu",
            "--quiet"]
    assert main(args + ["--epochs", "3"]) == 2  # never silently overwrites or continues a run
    assert "--resume auto" in capsys.readouterr().err
    assert main(args + ["--epochs", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in open(os.path.join(model, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows if "train_loss" in r] == [1, 2, 3]
    assert main(args + ["--epochs", "3", "--lr", "0.5", "--resume", "auto"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_eval_json(trained, capsys):
    _, data, model = trained
    assert main(["eval", model, "--data", os.path.join(data, "test.csv"), "--num-clips", "2", "--num-crops", "3",
                 "--json", "--workers", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_videos"] == 12 and result["num_views"] == 6
    assert 0 <= result["top1"] <= result["top5"] <= 100


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
    assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
    assert all(0 <= p["score"] <= 1 for p in preds)
    assert err.strip().startswith(f"error: {bad}: cannot open as a video") and err.count("\n") == 1
    import vidrec

    py = vidrec.predict(vidrec.load_model(model), video, top_k=3)
    assert py["predictions"] == preds


def test_user_errors_are_one_line(tmp_path):
    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "vidrec", *args], capture_output=True, text=True)
        assert "Traceback" not in proc.stderr
        return proc.returncode, proc.stderr.strip()

    code, err = run("predict", "x.mp4", "--model", "tsn_smol")
    assert code == 2 and err.startswith("error: unknown model or weights 'tsn_smol'; did you mean 'tsn_small'?")
    code, err = run("train", "--data", str(tmp_path), "--model", "tsn_small", "--out", str(tmp_path / "o"))
    assert code == 2 and err == f"error: {tmp_path}: no class folders"
    code, err = run("info", str(tmp_path / "none.mp4"))
    assert code == 1 and err == f"error: {tmp_path / 'none.mp4'}: no such file"


def test_models_and_info(capsys, trained):
    _, data, _ = trained
    assert main(["models"]) == 0
    assert "tsn_small" in capsys.readouterr().out
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
    assert main(["train", "--data", str(tmp_path / "train.csv"), "--model", "tsn_small", "--out", str(tmp_path / "m"),
                 "--epochs", "1", "--batch-size", "4", "--workers", "2", "--num-frames", "4", "--crop-size", "32",
                 "--set", "width=8", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    row = [json.loads(line) for line in open(tmp_path / "m" / "metrics.jsonl") if "train_loss" in line][0]
    assert row["skipped_videos"] == 2
    assert out.err.count("skipped broken video") + out.out.count("skipped broken video") == 2
    assert "gone.mp4: no such file" in out.err + out.out


@pytest.mark.slow
def test_demo_main_job(tmp_path):
    """The README's main job, end to end, as a user runs it (fewer epochs)."""
    proc = subprocess.run([sys.executable, "-m", "vidrec", "demo", "--out", str(tmp_path / "demo"), "--epochs", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test top-1" in proc.stdout and "[4/4] predicting" in proc.stdout
    assert os.path.exists(tmp_path / "demo" / "tsn_small" / "model.safetensors")
