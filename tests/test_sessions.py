"""One session layer under both faces: `vidrec stream`, `detect` and `highlights` on the command
line and the same jobs over HTTP give the same reports, tracks, segments and reels for the same
settings, and the same defaults when none are given (the service tiles wide shots as the CLI does)."""

import json
import os

import numpy as np
import pytest
import torch

import vidrec
from helpers import events_of, tiny_stream_model, upload
from vidrec.cli import main
from vidrec.errors import ConfigError
from vidrec.sessions import DetectOptions, HighlightsOptions, StreamOptions, options_for
from vidrec.utils import write_video

from conftest import MOVINET_DIR, SHARED_VIDEOS, SSD_DIR

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from vidrec.serve import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A tiny stream model ("m"), one that always says "a" ("a"), a tiny person detector that
    finds boxes everywhere, and a 3 s clip whose content moves."""
    root = tmp_path_factory.mktemp("faces")
    model = tiny_stream_model()
    model.save_pretrained(root / "m")
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))
    model.save_pretrained(root / "a")
    torch.manual_seed(0)
    detector = vidrec.create_model("ssd_mobilenet_v1", num_classes=1, depth_multiplier=0.25).eval()
    with torch.no_grad():
        for head in detector.class_heads:  # every anchor a person (class 1 of background + 1)
            head.weight.mul_(0.1)
            head.bias.copy_(torch.tensor([-4.0, 4.0]).repeat(head.bias.numel() // 2))
    detector.save_pretrained(root / "ssd")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (30, 96, 128, 3), dtype=np.uint8)
    for i, f in enumerate(frames):  # a bright square crossing the frame
        f[20:60, 4 * i : 4 * i + 24] = 250
    write_video(root / "clip.mp4", frames, fps=10)
    return root


def cli_json(argv: list[str], capsys) -> list[dict]:
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def service_job(root, tmp_path, kind: str, data: dict, *, model: str = "m") -> list[tuple]:
    """The events of one `kind` job on the clip, the service offering `root / model`."""
    video = root / "clip.mp4"
    config = ServeConfig(
        models=(str(root / model),), detector=str(root / "ssd"), work_dir=str(tmp_path / "work")
    )
    with TestClient(create_app(config)) as c:
        r = c.post("/v1/jobs", files=upload(video), data={"kind": kind, **data})
        assert r.status_code == 202, r.text
        events = events_of(c, r.json()["id"])
        for name in (events[-2][1].get("files") or {}).values():  # the job's files, as a client gets them
            got = c.get(f"/v1/jobs/{r.json()['id']}/files/{name}")
            assert got.status_code == 200, got.text
            (tmp_path / "served").mkdir(exist_ok=True)
            (tmp_path / "served" / name).write_bytes(got.content)
    assert events[-1] == ("end", {"type": "end", "status": "done"}), events[-3:]
    return [(k, {x: v for x, v in e.items() if x != "type"}) for k, e in events[:-1]]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def test_stream_is_the_same_on_both_faces(faces, tmp_path, capsys):
    """Defaults (every 1 s, no window) and a setting (a 1 s window every 0.5 s)."""
    for flags, data in (([], {}), (["--every", "0.5", "--window", "1"], {"every": "0.5", "window": "1"})):
        argv = ["stream", str(faces / "clip.mp4"), "--model", str(faces / "m"), "--json"]
        cli = cli_json([*argv, *flags, "--segments", str(tmp_path / "s.jsonl")], capsys)
        http = service_job(faces, tmp_path, "stream", data)
        assert [e for k, e in http if k == "topk"] == cli[:-1]
        result = http[-1][1]
        assert {k: v for k, v in result.items() if k not in ("segments", "statistics")} == {
            k: v for k, v in cli[-1].items() if k != "final"
        }
        assert result["segments"] == read_jsonl(tmp_path / "s.jsonl")
        assert [e for k, e in http if k == "segment"] == result["segments"]
    assert len(cli) == 6 and "overall" in cli[-1]  # reports at 0.5 ... 2.5 s, then the final


@pytest.mark.slow
def test_detect_is_the_same_on_both_faces_tiles_included(faces, tmp_path, capsys):
    """The same tracks, actions, per-person segments and MOTChallenge rows; tiles set on both
    (the frame is 128x96, so "auto" gives square tiles of its short side on both)."""
    for flags, data in (([], {}), (["--tile", "64", "--fps", "2"], {"tile": "64", "fps": "2"})):
        argv = [
            "detect",
            str(faces / "clip.mp4"),
            "--model",
            str(faces / "m"),
            "--detector",
            str(faces / "ssd"),
        ]
        mot = tmp_path / "tracks.txt"
        cli = cli_json(
            [*argv, "--json", *flags, "--segments", str(tmp_path / "s.jsonl"), "--mot", str(mot)], capsys
        )
        http = service_job(faces, tmp_path, "detect", data)
        looks = [e for k, e in http if k == "people"]
        assert looks == cli and sum(len(x["tracks"]) for x in looks) > 0
        assert all(len(t["actions"]) == 3 for x in looks for t in x["tracks"])  # top-k 3 on both
        assert http[-1][1]["segments"] == read_jsonl(tmp_path / "s.jsonl")
        assert http[-1][1]["found"] == ("tiles: 64" if flags else "tiles: 96, then sized to the people")
        assert http[-1][1]["files"] == {"mot": "tracks.txt"}
        people = http[-1][1]["people"]  # everyone seen more than once, with how long and the named action
        assert people and all(
            p["looks"] > 1 and p["seen"] == pytest.approx(p["last"] - p["first"]) for p in people
        )
        assert all("action" in p for p in people) and all("action" in t for x in looks for t in x["tracks"])
        rows = mot.read_text()
        assert (tmp_path / "served" / "tracks.txt").read_text() == rows and rows.count("\n") == sum(
            len(x["tracks"]) for x in looks
        )
        first = next(x for x in looks if x["tracks"])
        frame, track_id, x, y, w, h, score, *rest = rows.splitlines()[0].split(",")
        t = first["tracks"][0]
        assert (int(frame), int(track_id), rest) == (first["frame"] + 1, t["id"], ["-1", "-1", "-1"])
        assert [float(x), float(y), float(x) + float(w), float(y) + float(h)] == pytest.approx(
            t["box"], abs=0.01
        )


@pytest.mark.slow
def test_highlights_are_the_same_on_both_faces(faces, tmp_path, capsys):
    argv = ["highlights", str(faces / "clip.mp4"), "--model", str(faces / "a"), "--labels", "a"]
    cli = cli_json([*argv, "--out", str(tmp_path / "reel.mp4"), "--json"], capsys)
    http = service_job(faces, tmp_path, "highlights", {"labels": "a"}, model="a")
    result = http[-1][1]
    assert result["segments"] == cli and [s["label"] for s in cli] == ["a"]
    assert result["files"] == {
        "reel": "reel.mp4",
        "timeline": "reel.timeline.png",
        "segments": "reel.segments.jsonl",
    }
    assert read_jsonl(tmp_path / "reel.segments.jsonl") == [e for k, e in http if k == "segment"]
    assert vidrec.io.probe(str(tmp_path / "reel.mp4")).num_frames == result["frames"] > 0


def test_options_keep_one_set_of_defaults_and_refuse_bad_values():
    assert options_for("stream") == StreamOptions() and StreamOptions().every == 1.0
    assert options_for("detect", top_k=None, fps=2.0) == DetectOptions(fps=2.0)
    assert options_for("highlights", fps=3.0) == HighlightsOptions()  # not a highlights setting: ignored
    assert DetectOptions().tile_for(3072, 1728) == 400 and DetectOptions().tile_for(640, 480) == 480
    assert DetectOptions().tile_for(480, 480) is None and DetectOptions().tile_for(0, 0) is None
    assert DetectOptions().fit_for(640, 480) == (240, 480) and DetectOptions().fit_for(3072, 1728) is None
    assert DetectOptions(tile="320").fit_for(640, 480) is None and DetectOptions().fit_for(0, 0) is None
    for kind, bad, message in (
        ("stream", {"every": 0}, "every must be > 0"),
        ("detect", {"min_score": 1.5}, r"min_score must be in \(0, 1\)"),
        ("detect", {"tile": "big"}, "tile must be a number of pixels"),
        ("highlights", {"pad": -1}, "pad and window must be >= 0"),
        ("dance", {}, "unknown session kind 'dance'"),
    ):
        with pytest.raises(ConfigError, match=message):
            options_for(kind, **bad)


@pytest.mark.slow
@pytest.mark.parametrize("clip, fps", [("arm_wrestling.mp4", "5"), ("soccer_match_wide.mp4", "2")])
def test_real_footage_is_the_same_on_both_faces(clip, fps, tmp_path, capsys, monkeypatch):
    """MoViNet-A0 and the SSD person detector on real clips: the service finds and tracks the
    same people as `vidrec detect`, the wide 3K soccer shot on 400 px tiles on both."""
    for folder in (SSD_DIR, MOVINET_DIR):
        if not os.path.isdir(folder):
            pytest.skip(f"{folder} is not here")
    monkeypatch.setenv("VIDREC_WEIGHTS", os.pathsep.join([SSD_DIR, MOVINET_DIR]))
    video = os.path.join(SHARED_VIDEOS, clip)
    cli = cli_json(["detect", video, "--json", "--fps", fps], capsys)
    config = ServeConfig(work_dir=str(tmp_path / "work"))
    with TestClient(create_app(config)) as c:
        r = c.post("/v1/jobs", data={"kind": "detect", "path": video, "fps": fps})
        assert r.status_code == 403  # a server path must be allowed first
    from vidrec.serve import Limits

    config = ServeConfig(work_dir=str(tmp_path / "work"), limits=Limits(allow_paths=(SHARED_VIDEOS,)))
    with TestClient(create_app(config)) as c:
        job = c.post("/v1/jobs", data={"kind": "detect", "path": video, "fps": fps}).json()
        events = events_of(c, job["id"])
    assert events[-1][1]["status"] == "done", events[-1]
    looks = [{k: v for k, v in e.items() if k != "type"} for kind, e in events if kind == "people"]
    assert looks == cli
    result = events[-2][1]
    wide = clip.startswith("soccer")
    assert result["found"] == ("tiles: 400" if wide else "tiles: 256, then sized to the people")
    if wide:  # players a few dozen pixels tall: found on tiles (test_people measured 5-6 a frame)
        assert max(len(x["tracks"]) for x in looks) >= 4
