"""`vidrec serve`: the API on a tiny stream model (FastAPI's test client, no sockets), its refusals,
its queue, its safety settings."""

import os
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import vidrec  # noqa: E402
from helpers import events_of, tiny_stream_model, upload  # noqa: E402
from vidrec.serve import Limits, ServeConfig, create_app  # noqa: E402
from vidrec.utils import write_video  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A saved tiny stream model and a 3 s clip of noise."""
    root = tmp_path_factory.mktemp("served")
    model = tiny_stream_model()
    model.save_pretrained(root / "m")
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))  # "a" whatever it sees
    model.save_pretrained(root / "a")
    frames = np.random.default_rng(0).integers(0, 255, (30, 48, 64, 3), dtype=np.uint8)
    write_video(root / "clip.mp4", frames, fps=10)
    return root


def client(served, tmp_path, **settings) -> TestClient:
    config = ServeConfig(models=(str(served / "m"),), work_dir=str(tmp_path / "work"), **settings)
    return TestClient(create_app(config))


def leftovers(tmp_path) -> list[str]:
    """Files the service left in its work folder."""
    return [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "work") for f in files]


def test_predict_an_upload_and_leave_nothing_behind(served, tmp_path):
    with client(served, tmp_path) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        r = c.post("/v1/predict", files=upload(served / "clip.mp4"), data={"top_k": "2"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["video"] == "clip.mp4" and body["mode"] == "stream" and body["frames"] == 15
        assert [p["label"] for p in body["predictions"]][0] in "abc" and len(body["predictions"]) == 2
        expected = vidrec.recognize.predict.predict(
            vidrec.load_model(served / "m"), served / "clip.mp4", top_k=2
        )
        assert body["predictions"] == expected["predictions"]  # the same as `vidrec predict`
        models = c.get("/v1/models").json()["models"]
        assert models[0]["default"] and models[0]["loaded"] and models[0]["kind"] == "stream"
        assert "/v1/predict" in c.get("/openapi.json").json()["paths"] and c.get("/docs").status_code == 200
        assert leftovers(tmp_path) == []
        metrics = c.get("/metrics").text
        assert 'vidrec_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in metrics
        assert "vidrec_queue_depth 0.0" in metrics and "vidrec_frames_total 15.0" in metrics


def audio_only(path):
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)


def test_bad_uploads_get_a_4xx_with_one_line_and_leave_nothing(served, tmp_path):
    (tmp_path / "notes.txt").write_text("not a video at all\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    data = (served / "clip.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    audio_only(tmp_path / "sound.m4a")
    cases = {
        "notes.txt": (415, "not a readable video"),
        "empty.mp4": (400, "empty upload"),
        "truncated.mp4": (415, "not a readable video"),
        "sound.m4a": (415, "no video stream"),
    }
    with client(served, tmp_path) as c:
        for name, (status, words) in cases.items():
            r = c.post("/v1/predict", files=upload(tmp_path / name, name))
            detail = r.json()["detail"]
            print(f"{name}: {r.status_code} {detail}")
            assert r.status_code == status and words in detail and "\n" not in detail
            assert str(tmp_path) not in detail  # no server paths in answers
        assert c.post("/v1/predict").status_code == 400  # nothing given
        assert leftovers(tmp_path) == []
    small = dict(limits=Limits(max_bytes=20_000, max_pixels=32 * 32))
    with client(served, tmp_path, **small) as c:
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(2**20 + 40_000))
        r = c.post("/v1/predict", files=upload(big))
        assert r.status_code == 413 and r.text == "Content Too Large"  # the framework's body limit
        r = c.post("/v1/predict", files=upload(served / "clip.mp4"))
        assert (
            r.status_code == 422 and r.json()["detail"] == "64x48 frames are over the limit of 1,024 pixels"
        )
        assert leftovers(tmp_path) == []
    with client(served, tmp_path, limits=Limits(max_seconds=2.0)) as c:
        r = c.post("/v1/predict", files=upload(served / "clip.mp4"))
        assert r.status_code == 422 and r.json()["detail"] == "3.0 s is longer than the limit of 2 s"
        assert leftovers(tmp_path) == []


def test_a_stream_job_reports_as_it_goes_then_its_result(served, tmp_path):
    with client(served, tmp_path) as c:
        r = c.post("/v1/jobs", files=upload(served / "clip.mp4"), data={"kind": "stream", "every": "0.5"})
        assert r.status_code == 202, r.text
        job = r.json()
        events = events_of(c, job["id"])
        kinds = [k for k, _ in events]
        assert kinds.count("topk") == 5 and kinds[-2:] == ["result", "end"]  # reports at 0.5 ... 2.5 s
        assert [e["time"] for k, e in events if k == "topk"] == [0.5, 1.0, 1.5, 2.0, 2.5]
        status = c.get(job["status_url"]).json()
        assert status["status"] == "done" and status["result"]["frames"] == 15
        assert "segments" in status["result"] and leftovers(tmp_path) == []  # the upload went when it ended
        assert c.get("/v1/jobs/nope").status_code == 404
        r = c.post("/v1/jobs", files=upload(served / "clip.mp4"), data={"kind": "dance"})
        assert r.status_code == 400 and "unknown job kind 'dance'" in r.json()["detail"]
        r = c.post("/v1/jobs", files=upload(served / "clip.mp4"), data={"model": "i3d_r50"})
        assert r.status_code == 400 and "unknown model 'i3d_r50'" in r.json()["detail"]


def test_a_highlights_job_serves_its_reel(served, tmp_path):
    config = ServeConfig(models=(str(served / "m"), str(served / "a")), work_dir=str(tmp_path / "work"))
    with TestClient(create_app(config)) as c:
        data = {"kind": "highlights", "labels": "a", "model": str(served / "a"), "pad": "0"}
        job = c.post("/v1/jobs", files=upload(served / "clip.mp4"), data=data).json()
        events = events_of(c, job["id"])
        assert events[-1][1]["status"] == "done", events[-1]
        segments = [e for k, e in events if k == "segment"]
        assert [s["label"] for s in segments] == ["a"] and segments[0]["end"] == pytest.approx(3.0)
        result = c.get(f"/v1/jobs/{job['id']}").json()["result"]
        assert result["spans"] == [[segments[0]["start"], 3.0]] and not result["audio"]
        reel = c.get(f"/v1/jobs/{job['id']}/files/{result['files']['reel']}")
        assert reel.status_code == 200 and reel.content[4:8] == b"ftyp"
        png = c.get(f"/v1/jobs/{job['id']}/files/{result['files']['timeline']}")
        assert png.content[:4] == b"\x89PNG"
        assert c.get(f"/v1/jobs/{job['id']}/files/..%2Fupload.mp4").status_code == 404
        r = c.post("/v1/jobs", files=upload(served / "clip.mp4"), data={**data, "labels": "zumba"})
        assert r.status_code == 400 and "unknown label 'zumba'" in r.json()["detail"]
        outputs = [str(tmp_path / "work" / job["id"] / f) for f in result["files"].values()]
        assert sorted(leftovers(tmp_path)) == sorted(outputs)  # the upload went, the outputs stay


class Gate:
    """Stand-in work that holds its worker until opened: the queue's behaviour, exactly."""

    def __init__(self):
        self.open = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self, kind, models, source, options, *, model=None):
        self.started.release()
        for i in range(100):
            if self.open.wait(0.05):
                break
            yield {"type": "topk", "time": i * 0.05, "frames": i, "predictions": []}
        yield {"type": "result", "frames": 1}


def test_a_full_queue_answers_503_and_a_cancel_stops_a_job(served, tmp_path, monkeypatch):
    gate = Gate()
    monkeypatch.setattr("vidrec.serve.service.events", gate)
    with client(served, tmp_path, workers=1, queue_size=1, retry_after=7) as c:
        send = lambda: c.post("/v1/jobs", files=upload(served / "clip.mp4"))  # noqa: E731
        running = send().json()
        assert gate.started.acquire(timeout=10)  # the worker has it
        queued = send().json()
        r = send()
        assert r.status_code == 503 and r.headers["retry-after"] == "7"
        assert c.get("/healthz").json() == {"status": "ok", "workers": 1, "queue": 1, "running": 1}
        assert c.delete(f"/v1/jobs/{queued['id']}").json()["status"] == "cancelled"  # never starts
        assert not (tmp_path / "work" / queued["id"] / "upload.mp4").exists()  # and its upload is gone
        assert c.delete(f"/v1/jobs/{running['id']}").status_code == 200
        assert events_of(c, running["id"])[-1] == ("end", {"type": "end", "status": "cancelled"})
        assert "vidrec_rejected_total 1.0" in c.get("/metrics").text
        gate.open.set()
        assert send().status_code == 202  # room again


def test_token_cors_paths_and_schemes(served, tmp_path):
    with pytest.raises(vidrec.errors.ConfigError, match="set --token"):
        ServeConfig(host="0.0.0.0")
    with client(served, tmp_path, token="s3cret") as c:
        assert c.get("/v1/models").status_code == 401 and c.get("/metrics").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
    with client(served, tmp_path) as c:
        origin = {"Origin": "https://elsewhere.example"}
        assert "access-control-allow-origin" not in c.get("/v1/models", headers=origin).headers
        r = c.post("/v1/jobs", data={"path": str(served / "clip.mp4")})
        assert r.status_code == 403 and "--allow-paths" in r.json()["detail"]
        r = c.post("/v1/jobs", data={"source": "file:///etc/passwd"})
        assert r.status_code == 400 and "not a stream URL" in r.json()["detail"]
        r = c.post("/v1/jobs", data={"source": "udp://127.0.0.1:9"})
        assert r.status_code == 403 and "scheme 'udp' is not allowed" in r.json()["detail"]
        r = c.post("/v1/jobs", data={"source": "rtsp://x/1", "path": "/etc/passwd"})
        assert r.status_code == 400 and "exactly one of" in r.json()["detail"]
    allowed = Limits(allow_paths=(str(served),))
    with client(served, tmp_path, limits=allowed, cors_origins=("https://elsewhere.example",)) as c:
        assert c.get("/v1/models", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]
        r = c.post("/v1/jobs", data={"path": str(served / ".." / "served0" / ".." / "x.mp4")})
        assert r.status_code in (403, 404)
        r = c.post("/v1/jobs", data={"path": "/etc/passwd"})
        assert r.status_code == 403 and "outside the folders" in r.json()["detail"]
        r = c.post("/v1/jobs", data={"path": str(served / "clip.mp4"), "kind": "predict"})
        assert r.status_code == 202
        assert events_of(c, r.json()["id"])[-1][1]["status"] == "done"
        assert (served / "clip.mp4").exists()  # a server file is read, never removed


def test_a_job_on_a_stream_url(served, tmp_path):
    """A source URL (here MPEG-TS over HTTP from a local server) is read as a live source."""
    import functools
    import http.server

    with (
        av.open(str(served / "clip.mp4")) as src,
        av.open(str(tmp_path / "clip.ts"), "w", format="mpegts") as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.ts"
    try:
        with client(served, tmp_path, limits=Limits(schemes=("http",))) as c:
            form = {"source": url, "kind": "stream", "every": "1", "realtime": "false"}  # every frame
            job = c.post("/v1/jobs", data=form).json()
            events = events_of(c, job["id"])
            assert events[-1][1]["status"] == "done", events[-1]
            result = c.get(job["status_url"]).json()["result"]
            assert (
                result["frames"] >= 10 and result["live"]["decoded"] == 30
            )  # every frame of the 3 s clip came
            job = c.post("/v1/jobs", data={"source": url, "kind": "predict"}).json()
            assert events_of(c, job["id"])[-1][1]["status"] == "done"  # recorded first, then predicted
            assert c.get(job["status_url"]).json()["result"]["video"] == url
    finally:
        server.shutdown()


def test_a_follower_ends_with_the_jobs_end_event_whatever_the_timing():
    """The worker adds the "end" event and then sets the job's future; a follower can read the
    event in between (its wake-up came before it cleared its flag). It must stop there rather
    than wait for a wake-up that never comes; and one that subscribes to a finished job ends."""
    import asyncio

    from vidrec.serve.jobs import Job

    async def follow(job):
        return [event["type"] async for _, event in job.subscribe()]

    job = Job(id="1", kind="stream", run=lambda: iter(()))
    job.add({"type": "topk"})
    job.add({"type": "end", "status": "done"})  # the future is not set yet: the window
    assert asyncio.run(asyncio.wait_for(follow(job), timeout=5)) == ["topk", "end"]
    job.future.set_result("done")
    assert asyncio.run(asyncio.wait_for(follow(job), timeout=5)) == ["topk", "end"]

    late = Job(id="2", kind="stream", run=lambda: iter(()))

    async def finish_later():  # the future set from another thread while the follower waits
        task = asyncio.ensure_future(follow(late))
        await asyncio.sleep(0.05)
        threading.Thread(target=lambda: late.future.set_result("cancelled")).start()
        return await asyncio.wait_for(task, timeout=5)

    assert asyncio.run(finish_later()) == []


def test_serve_limits_on_the_command_line(capsys):
    from vidrec.cli.parser import build_parser

    parse = build_parser().parse_args
    assert parse(["serve", "--max-pixels", "1920x1080"]).max_pixels == 1920 * 1080  # as the README writes it
    assert parse(["serve", "--max-pixels", "4096"]).max_pixels == 4096
    with pytest.raises(SystemExit) as e:
        parse(["serve", "--max-pixels", "big"])
    assert e.value.code == 2 and "expected WIDTHxHEIGHT" in capsys.readouterr().err


def assert_backend_answers_as_pytorch(model, clip, tmp_path, backend: str) -> None:
    """The service on `backend` predicts `clip` with `model` as it does on PyTorch: the same top-3
    labels, scores within 1e-5."""
    answers = {}
    for name in ("pytorch", backend):
        config = ServeConfig(models=(str(model),), work_dir=str(tmp_path / "work"), backend=name)
        with TestClient(create_app(config)) as c:
            r = c.post("/v1/predict", files=upload(clip), data={"top_k": "3"})
            assert r.status_code == 200, r.text
            answers[name] = r.json()["predictions"]
    ours, theirs = answers["pytorch"], answers[backend]
    assert [p["label"] for p in ours] == [p["label"] for p in theirs]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs)) <= 1e-5


@pytest.mark.slow
def test_the_service_runs_its_models_in_onnxruntime(served, tmp_path, monkeypatch):
    """`vidrec serve --backend onnxruntime`: the same answer as PyTorch's, the export cached."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    assert_backend_answers_as_pytorch(served / "m", served / "clip.mp4", tmp_path, "onnxruntime")
    assert os.listdir(tmp_path / "cache" / "onnx")
    with pytest.raises(vidrec.errors.ConfigError, match="unknown backend"):
        client(served, tmp_path, backend="tensorrt")


@pytest.mark.slow
def test_the_service_runs_a_movinet_stream_in_litert(tmp_path, monkeypatch):
    """`vidrec serve --backend litert` (listed by the command, once refused by the service): a
    MoViNet's stream job gives PyTorch's running top-k, its step converted once into the cache."""
    pytest.importorskip("ai_edge_litert")
    from test_litert import tiny

    monkeypatch.setenv("VIDREC_CACHE", str(tmp_path / "cache"))
    tiny(44).save_pretrained(tmp_path / "movinet")
    frames = np.random.default_rng(0).integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.mp4", frames, fps=10)
    assert_backend_answers_as_pytorch(tmp_path / "movinet", tmp_path / "clip.mp4", tmp_path, "litert")
    assert os.listdir(tmp_path / "cache" / "tflite")
