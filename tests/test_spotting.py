"""Event spotting: features on a timeline, the spotter (causal and two-sided), peak picking (live
equals offline), `vidrec train --task spotting`, and `vidrec spot` giving the run's own test events."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import vidrec
from helpers import tiny_stream_model
from vidrec.cli import main
from vidrec.errors import ConfigError
from vidrec.io.events import read_events
from vidrec.metrics.spotting import spotting_map
from vidrec.recognize.features import video_timeline
from vidrec.recognize.spot import LivePicker, pick_events, spot_events
from vidrec.recognize.stream import model_frames


@pytest.fixture(scope="module")
def spot_data(tmp_path_factory):
    """A tiny SynthMotion-Spot set and a tiny stream extractor saved as a model directory."""
    root = tmp_path_factory.mktemp("spot")
    args = ["synth-spot", str(root / "data"), "--train", "3", "--val", "1", "--test", "2", "--size", "32"]
    assert main([*args, "--min-seconds", "6", "--max-seconds", "8", "--workers", "1"]) == 0
    extractor = tiny_stream_model()
    extractor.save_pretrained(root / "extractor")
    return root


def test_stream_features_are_the_mean_of_each_steps_frames(spot_data):
    model = tiny_stream_model()
    video = str(spot_data / "data" / "videos" / "test" / "test_00000.mp4")
    times, feats = video_timeline(model, video, rate=2.0)
    frames = [f for _, f in model_frames(video, model.preprocessing, fps=5.0)]
    with torch.inference_mode():
        x = torch.cat(frames, dim=1)[None]
        per_frame = model.step_features(x, model.init_state(1, height=32, width=32))[0][0].numpy()
    frame_times = np.arange(len(frames)) / 5.0
    assert np.allclose(times, np.arange(len(times)) / 2.0) and times[-1] <= frame_times[-1] + 0.5
    for t, f in zip(times, feats):  # the frames in (t - 1/2, t]
        inside = (frame_times > t - 0.5 + 1e-9) & (frame_times <= t + 1e-9)
        assert np.allclose(f, per_frame[inside].mean(0), atol=1e-5)


def test_clip_features_centred_or_ending_at_each_step(spot_data):
    torch.manual_seed(0)
    model = vidrec.create_model("tsn_small", num_classes=12).eval()
    video = str(spot_data / "data" / "videos" / "test" / "test_00000.mp4")
    times, centred = video_timeline(model, video, rate=1.0)
    _, causal = video_timeline(model, video, rate=1.0, causal=True)
    duration = vidrec.io.probe(video).duration
    assert len(times) == int(duration) + 1 and centred.shape == causal.shape == (
        len(times),
        model.num_features,
    )
    assert not np.allclose(centred, causal)  # different clips
    # a clip ending at t = 0 is the first frame repeated: the same whatever follows
    first = model_frames(video, model.preprocessing, fps=None, normalized=False)
    _, frame = next(first)
    from vidrec.data.transforms import normalize

    prep = model.preprocessing
    clip = normalize(frame.repeat(1, prep.num_frames, 1, 1), prep.mean, prep.std, centering=prep.centering)
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(clip[None]), pre_logits=True)[0].numpy()
    assert np.allclose(causal[0], expected, atol=1e-5)


@pytest.mark.parametrize("arch", ["spotter_conv", "spotter_conv_causal"])
def test_spotter_size_and_causality(arch, tmp_path):
    torch.manual_seed(0)
    model = vidrec.create_model(arch, num_classes=17, in_features=2048).eval()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    x = torch.randn(1, 80, 2048)
    changed = x.clone()
    changed[:, 50:] += 1.0  # the future of step 49 changes
    with torch.inference_mode():
        a, b = model(x), model(changed)
    same_past = torch.allclose(a[:, :50], b[:, :50])
    assert same_past == model.config.causal
    if model.config.causal:  # its last output over its receptive field is its output on everything
        rf = model.receptive_field
        with torch.inference_mode():
            assert torch.allclose(model(x[:, 75 - rf : 75])[:, -1], a[:, 74], atol=1e-5)
    model.save_pretrained(tmp_path / "m")
    back = vidrec.load_model(str(tmp_path / "m"))
    with torch.inference_mode():
        assert torch.equal(back(x), a) and back.config == model.config


def test_peaks_live_equal_offline_and_are_local_maxima():
    rng = np.random.default_rng(0)
    times = np.arange(300) / 5.0
    probs = np.abs(np.cumsum(rng.normal(0, 0.05, (300, 4)), axis=0)) % 1.0
    classes = ["a", "b", "c"]
    offline = pick_events(probs, times, classes, nms=2.0, threshold=0.3)
    picker, live = LivePicker(classes, nms=2.0, threshold=0.3), []
    for t, p in zip(times, probs):
        for e in picker.update(t, p):
            assert t - e.time == pytest.approx(picker.delay, abs=0.2 + 1e-9)  # final nms/2 after
            live.append(e)
    assert live + picker.finish() == offline and len(offline) > 5
    for e in offline:
        c = 1 + classes.index(e.label)
        near = np.abs(times - e.time) <= 1.0 + 1e-9
        assert e.confidence >= 0.3 and e.confidence == probs[near, c].max()
    one = np.zeros((20, 2))
    one[7, 1] = 0.9
    assert [(e.time, e.label) for e in pick_events(one, np.arange(20) / 5, ["x"])] == [(1.4, "x")]


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) for a in ("spotter_conv", "spotter_conv_causal")]
)  # the default run keeps the causal one: it covers training and the step-by-step path
def test_train_then_spot_gives_the_runs_test_events(spot_data, arch, capsys):
    data, out, feats = spot_data / "data", spot_data / f"run_{arch}", spot_data / "features"
    args = ["train", "--task", "spotting", "--data", str(data), "--features", str(feats), "--model", arch]
    args += ["--extractor", str(spot_data / "extractor"), "--epochs", "2", "--out", str(out), "--quiet"]
    args += ["--set", "data.workers=0", "--set", "run.tensorboard=false", "--set", "spotting.threshold=0.05"]
    # a stream extractor's features are causal whichever the clips would be: both spotters share them
    args += ["--set", "spotting.causal_features=false"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads((out / "test_report.json").read_text())
    assert summary["test_tight_a_mAP"] == pytest.approx(100 * report["tight"]["a_mAP"])
    found = read_events(str(out / "test_events.csv"))
    gt = read_events(str(data / "test.csv"))
    gt = [e.__class__(**{**e.__dict__, "video": str(data / e.video)}) for e in gt]
    classes = (data / "classes.txt").read_text().split("\n")[:-1]
    assert spotting_map(gt, found, classes).a_mAP == pytest.approx(report["tight"]["a_mAP"])
    # vidrec spot on a test video: the run's own events for it (one inference path)
    video = str(data / "videos" / "test" / "test_00001.mp4")
    assert main(["spot", video, "--model", str(out), "--json", "--threshold", "0.05"]) == 0
    spotted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    theirs = [e for e in found if e.video == video]
    assert [(e["time"], e["label"]) for e in spotted] == [(e.time, e.label) for e in theirs]
    assert [e["confidence"] for e in spotted] == pytest.approx([e.confidence for e in theirs], abs=1e-4)
    # a second run reads the cached features: no extractor needed
    again = [a if a != str(spot_data / "extractor") else "/nonexistent" for a in args]
    again[again.index(str(out))] = str(spot_data / f"again_{arch}")
    assert main(again) == 0


def test_spot_refuses_what_it_cannot_do(spot_data, tmp_path, capsys):
    torch.manual_seed(0)
    offline = vidrec.create_model("spotter_conv", num_classes=5, in_features=8, extractor="x")
    with pytest.raises(ConfigError, match="live source needs a causal"):
        list(spot_events(offline, tiny_stream_model(), "rtsp://127.0.0.1:9/none"))
    offline.save_pretrained(tmp_path / "spotter")
    assert main(["predict", str(spot_data / "data" / "videos" / "test" / "test_00000.mp4"),
                 "--model", str(tmp_path / "spotter")]) == 2  # fmt: skip
    assert "use vidrec spot" in capsys.readouterr().err
    data = str(spot_data / "data")
    assert main(["train", "--task", "spotting", "--data", data, "--out", str(tmp_path / "r")]) == 2
    assert "spotting.features" in capsys.readouterr().err
    assert main(["train", "--task", "spotting", "--data", data, "--out", str(tmp_path / "r"),
                 "--features", str(tmp_path / "empty")]) == 2  # fmt: skip
    assert "set spotting.extractor" in capsys.readouterr().err
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "_meta.json").write_text(json.dumps({"rate": 5.0, "causal": False}))
    assert main(["train", "--task", "spotting", "--data", data, "--out", str(tmp_path / "r"),
                 "--features", str(tmp_path / "made"), "--set", "spotting.rate=3"]) == 2  # fmt: skip
    assert "holds features at 5.0 steps/s" in capsys.readouterr().err


def test_extract_rate_writes_resumable_timelines(spot_data, tmp_path, capsys):
    import pyarrow.parquet as pq

    videos = str(spot_data / "data" / "videos" / "val")
    args = ["extract", "--list", videos, "--model", str(spot_data / "extractor"), "--rate", "2"]
    assert main([*args, "--out", str(tmp_path / "f"), "--workers", "0"]) == 0
    rows = pq.read_table(str(tmp_path / "f" / "part-00000.parquet")).to_pylist()
    assert len(rows) == 1 and rows[0]["error"] is None
    times = np.array(rows[0]["times"])
    assert np.allclose(times, np.arange(len(times)) / 2) and np.array(rows[0]["features"]).shape[0] == len(
        times
    )
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "f"), "--workers", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["processed"] == 0
    assert os.path.exists(tmp_path / "f" / "_meta.json")


def test_a_spot_job_gives_what_vidrec_spot_prints(spot_data, tmp_path, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from helpers import events_of, upload
    from vidrec.serve import ServeConfig, create_app

    torch.manual_seed(0)
    width = tiny_stream_model().num_features
    spotter = vidrec.create_model(
        "spotter_conv_causal",
        num_classes=5,
        in_features=width,
        rate=2.0,
        extractor=str(spot_data / "extractor"),
    )
    spotter.set_labels(["bounce", "collide", "reverse", "appear", "vanish"])
    spotter.save_pretrained(tmp_path / "spotter")
    video = spot_data / "data" / "videos" / "test" / "test_00000.mp4"
    assert (
        main(["spot", str(video), "--model", str(tmp_path / "spotter"), "--json", "--threshold", "0.2"]) == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed and all(e["reported_at"] >= e["time"] for e in printed)
    config = ServeConfig(models=(str(tmp_path / "spotter"),), work_dir=str(tmp_path / "work"))
    with TestClient(create_app(config)) as c:
        job = c.post("/v1/jobs", files=upload(video), data={"kind": "spot", "threshold": "0.2"}).json()
        events = events_of(c, job["id"])
        assert events[-1][1]["status"] == "done", events[-1]
        served = [e for kind, e in events if kind == "event"]
        strip = lambda es: [(e["time"], e["label"], e["confidence"], e["reported_at"]) for e in es]  # noqa: E731
        assert strip(served) == strip(printed) and served[0]["video"] == "clip.mp4"  # the upload's name
        result = c.get(f"/v1/jobs/{job['id']}").json()["result"]
        assert result["events"] == len(printed) and result["delay_s"] == 0.5
        saved = c.get(f"/v1/jobs/{job['id']}/files/{result['files']['events']}").json()
        assert len(saved["predictions"]) == len(printed) and saved["UrlLocal"] == "clip"  # the upload's name
        assert c.get("/v1/models").json()["models"][0]["kind"] == "spotter"


def test_highlights_cut_around_the_events(spot_data, tmp_path, capsys):
    from vidrec.io.events import Event, write_events

    video = spot_data / "data" / "videos" / "test" / "test_00000.mp4"
    events = [Event("test_00000", 1.0, "bounce", 0.9), Event("test_00000", 4.0, "collide", 0.2),
              Event("test_00000", 5.0, "bounce", 0.8), Event("test_00001", 2.0, "bounce", 1.0)]  # fmt: skip
    write_events(events, str(tmp_path / "events.csv"))
    args = [
        "highlights",
        str(video),
        "--events",
        str(tmp_path / "events.csv"),
        "--out",
        str(tmp_path / "r.mp4"),
    ]
    assert main([*args, "--top", "2", "--pad", "0.5", "--json"]) == 0  # no model loads
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["time"], e["label"]) for e in shown] == [(1.0, "bounce"), (5.0, "bounce")]
    assert vidrec.io.probe(str(tmp_path / "r.mp4")).num_frames == 20  # two cuts of 1 s at 10 fps
    assert main([*args, "--labels", "goal"]) == 2
    assert "no segments of goal" in capsys.readouterr().err
