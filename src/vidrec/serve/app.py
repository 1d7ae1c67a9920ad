"""`vidrec serve`: recognition over HTTP (FastAPI) and a web page, on the models vidrec has.

    GET  /                       the page (plain HTML/JS, package data)
    POST /v1/predict             multipart `file` (or `path`) -> the `predict --json` object
    POST /v1/jobs                `kind` (stream | detect | highlights | predict) on a `file`, a
                                 live `source` URL or a server `path` -> 202 {id, ...}
    GET  /v1/jobs/{id}           status (and the result once done)
    GET  /v1/jobs/{id}/events    Server-Sent Events: topk, people, segment, result, end
    GET  /v1/jobs/{id}/files/X   a job's output (a highlight reel, its timeline PNG)
    DELETE /v1/jobs/{id}         cancel
    GET  /v1/models, /healthz, /metrics (Prometheus text), /docs (OpenAPI)

Inference runs in worker threads fed by a bounded queue (`jobs.JobManager`); when it is full the
answer is 503 with Retry-After, so a burst is refused quickly instead of slowing everyone down.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool

from vidrec.errors import ConfigError, VidrecError, unknown_name_message
from vidrec.serve.inputs import InputError, Limits, check_path, check_source, check_video
from vidrec.serve.jobs import FINISHED, Job, JobManager, QueueFull
from vidrec.serve.work import KINDS, Models, Options, events


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs (the `vidrec serve` flags)."""

    models: tuple[str, ...] = ("movinet_a0_stream",)  # offered models; the first is the default
    detector: str = "ssd_mobilenet_v1.coco_uint8"  # person detector for detect jobs
    weights: str | None = None  # --weights folders
    backend: str = "pytorch"  # or "onnxruntime": every model (and the detector's network) run there
    host: str = "127.0.0.1"
    token: str | None = None  # bearer token for /v1 and /metrics (required off loopback)
    cors_origins: tuple[str, ...] = ()  # closed by default
    workers: int = 1  # inference threads (each uses torch's threads: 1 suits a 2-core machine)
    queue_size: int = 4  # jobs waiting beyond the running ones before 503
    keep_jobs: int = 20  # finished jobs kept (with their files) for GET
    retry_after: int = 5  # seconds, in 503 answers
    limits: Limits = field(default_factory=Limits)
    work_dir: str | None = None  # uploads and outputs (default: a new temporary folder)

    def __post_init__(self):
        if self.workers < 1 or self.queue_size < 1:
            raise ConfigError("--workers and --queue must be at least 1")
        if not _loopback(self.host) and not self.token:
            raise ConfigError(
                f"listening on {self.host} lets other machines in: set --token (or $VIDREC_SERVE_TOKEN)"
            )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Metrics:
    """Prometheus metrics of one app (its own registry, so tests can build several apps)."""

    def __init__(self, manager_depth, running):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("vidrec_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "vidrec_request_seconds", "time to the response's start", ["route"], registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.jobs = Counter("vidrec_jobs", "jobs finished", ["kind", "status"], registry=r)
        self.rejected = Counter("vidrec_rejected", "requests refused with 503 (queue full)", registry=r)
        self.frames = Counter("vidrec_frames", "video frames through a model", registry=r)
        Gauge("vidrec_queue_depth", "jobs waiting for a worker", registry=r).set_function(manager_depth)
        Gauge("vidrec_jobs_running", "jobs being worked on", registry=r).set_function(running)
        self.fps = Gauge("vidrec_frames_per_second", "frames through a model, last 10 s", registry=r)
        self.recent: list[tuple[float, int]] = []

    def count_frames(self, n: int) -> None:
        """`n` more frames through a model (the counter, and the rate over the last 10 s)."""
        if n <= 0:
            return
        self.frames.inc(n)
        now = time.monotonic()
        self.recent = [(t, k) for t, k in self.recent if t > now - 10] + [(now, n)]
        self.fps.set(sum(k for _, k in self.recent) / 10)


def create_app(config: ServeConfig = ServeConfig()) -> FastAPI:
    """The service as an ASGI app (run it with uvicorn; `vidrec serve` does)."""
    work_dir = config.work_dir or tempfile.mkdtemp(prefix="vidrec-serve-")
    os.makedirs(work_dir, exist_ok=True)
    models = Models(
        list(config.models), detector=config.detector, weights=config.weights, backend=config.backend
    )
    frames_seen: dict[str, int] = {}

    def on_event(job: Job, event: dict) -> None:
        if event.get("type") in ("topk", "result") and "frames" in event:  # cumulative per job
            metrics.count_frames(event["frames"] - frames_seen.get(job.id, 0))
            frames_seen[job.id] = event["frames"]
        elif event.get("type") == "people":
            metrics.count_frames(1)
        if event.get("type") == "end":
            metrics.jobs.labels(job.kind, event["status"]).inc()
            frames_seen.pop(job.id, None)

    manager = JobManager(
        workers=config.workers, queue_size=config.queue_size, keep=config.keep_jobs, on_event=on_event
    )
    metrics = Metrics(manager.depth, lambda: manager.running)

    async def lifespan(app):
        yield
        manager.close()
        if not config.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    app = FastAPI(
        title="vidrec",
        summary="Video action recognition: predictions, running top-k, per-person actions, highlights",
        lifespan=lifespan,
        max_body_size=config.limits.max_bytes + 2**20,  # the file plus the form's other fields
    )
    app.state.manager, app.state.models, app.state.config = manager, models, config
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "other")
        metrics.requests.labels(name, request.method, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(InputError)
    async def refused(request: Request, e: InputError):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(VidrecError)
    async def bad_request(request: Request, e: VidrecError):
        return JSONResponse({"detail": str(e)}, status_code=400)

    def authorized(request: Request) -> None:
        if config.token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guard = [Depends(authorized)]

    async def take_input(folder: str, file: UploadFile | None, source: str | None, path: str | None) -> str:
        """The job's input as a path or URL, checked: exactly one of file, source, path."""
        given = [x for x in (file, source, path) if x]
        if len(given) != 1:
            raise InputError(400, "give exactly one of: file (an upload), source (a stream URL), path")
        if source:
            return check_source(source, config.limits)
        if path:
            real = check_path(path, config.limits)
            await run_in_threadpool(check_video, real, config.limits)
            return real
        ext = os.path.splitext(file.filename or "")[1].lower()
        target = os.path.join(folder, "upload" + (ext if ext.isascii() and len(ext) <= 6 else ""))
        await run_in_threadpool(_copy, file.file, target)
        await run_in_threadpool(check_video, target, config.limits)
        return target

    def busy() -> HTTPException:
        metrics.rejected.inc()
        return HTTPException(503, "busy: try again later", headers={"Retry-After": str(config.retry_after)})

    async def submit(kind: str, options: Options, file, source, path) -> Job:
        if kind not in KINDS:
            raise InputError(400, unknown_name_message("job kind", kind, list(KINDS)))
        if manager.queue.full():  # refuse before taking the upload's copy and probe
            raise busy()
        job_id = manager.new_id()
        folder = os.path.join(work_dir, job_id)
        os.makedirs(folder)
        try:
            video = await take_input(folder, file, source, path)
            name = os.path.basename(file.filename or "upload") if file else (path or source)

            def run():
                for event in events(kind, models, video, options, folder):
                    yield {**event, "video": name} if "video" in event else event  # the client's name

            def cleanup():  # the upload goes as soon as the job ends (run or cancelled); outputs stay
                if video.startswith(folder + os.sep) and os.path.exists(video):
                    os.remove(video)

            return manager.submit(Job(id=job_id, kind=kind, run=run, folder=folder, cleanup=cleanup))
        except QueueFull:
            shutil.rmtree(folder, ignore_errors=True)
            raise busy() from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def job_or_404(job_id: str) -> Job:
        job = manager.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return (resources.files("vidrec.serve") / "static" / "index.html").read_text()

    app.mount("/static", StaticFiles(packages=[("vidrec.serve", "static")]), name="static")

    @app.get("/healthz")
    def healthz():
        return {
            "status": "ok",
            "workers": config.workers,
            "queue": manager.depth(),
            "running": manager.running,
        }

    @app.get("/metrics", dependencies=guard, response_class=Response)
    def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=guard)
    def list_models():
        return {"models": models.describe(), "detector": config.detector, "kinds": list(KINDS)}

    @app.post("/v1/predict", dependencies=guard)
    async def predict_upload(
        file: UploadFile | None = File(None),
        path: str | None = Form(None),
        model: str | None = Form(None),
        top_k: int = Form(5),
    ):
        """Upload a video (multipart `file`), get its top-k (`vidrec predict --json`)."""
        if model:
            _known(models, model)
        job = await submit("predict", Options(model=model, top_k=top_k), file, None, path)
        try:
            await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:  # the client left: the job goes too
            manager.cancel(job)
            raise
        if job.status != "done":
            raise HTTPException(422, job.error or job.status)
        return job.result

    @app.post("/v1/jobs", status_code=202, dependencies=guard)
    async def create_job(
        kind: str = Form("stream"),
        file: UploadFile | None = File(None),
        source: str | None = Form(None),
        path: str | None = Form(None),
        model: str | None = Form(None),
        top_k: int = Form(5),
        every: float = Form(0.5),
        window: float = Form(2.0),
        fps: float = Form(5.0),
        min_score: float = Form(0.5),
        labels: str = Form(""),
        top: int = Form(5),
        pad: float = Form(1.0),
        duration: float = Form(10.0),
        timeout: float = Form(10.0),
        realtime: bool = Form(True),
    ):
        """A long job on an upload, a live `source` URL or an allowed server `path`; follow it at
        `events` (SSE), get its status and result at `status`."""
        options = Options(
            model=model, top_k=top_k, every=every, window=window, fps=fps, min_score=min_score,
            labels=tuple(x.strip() for x in labels.split(",") if x.strip()), top=top, pad=pad,
            duration=duration, timeout=timeout, realtime=realtime,
        )  # fmt: skip
        if model:
            _known(models, model)
        if options.labels:  # refused now, not after the upload has been worked on
            chosen = await run_in_threadpool(models.get, model)
            unknown = [x for x in options.labels if chosen.labels and x not in chosen.labels]
            if unknown:
                raise InputError(400, unknown_name_message("label", unknown[0], chosen.labels))
        job = await submit(kind, options, file, source, path)
        return {**job.summary(), "status_url": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events"}

    @app.get("/v1/jobs", dependencies=guard)
    def list_jobs():
        return {"jobs": [j.summary() for j in manager.jobs.values()]}

    @app.get("/v1/jobs/{job_id}", dependencies=guard)
    def job_status(job_id: str):
        return job_or_404(job_id).summary()

    @app.delete("/v1/jobs/{job_id}", dependencies=guard)
    def cancel_job(job_id: str):
        job = job_or_404(job_id)
        manager.cancel(job)
        return job.summary()

    @app.get("/v1/jobs/{job_id}/events", dependencies=guard)
    async def job_events(job_id: str, request: Request):
        """Server-Sent Events: one `event: TYPE` / `data: JSON` per event, `id` its number (a
        client reconnecting with Last-Event-ID continues after it)."""
        job = job_or_404(job_id)
        start = int(request.headers.get("last-event-id", -1)) + 1

        async def stream():
            async for number, event in job.subscribe(start):
                yield f"id: {number}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/v1/jobs/{job_id}/files/{name}", dependencies=guard)
    def job_file(job_id: str, name: str):
        job = job_or_404(job_id)
        files = (job.result or {}).get("files", {})
        if job.status not in FINISHED or name not in files.values():
            raise HTTPException(404, f"job {job_id} has no file {name}")
        return FileResponse(os.path.join(job.folder, name))

    return app


def _known(models: Models, name: str) -> None:
    if name not in models.names:
        raise InputError(400, unknown_name_message("model", name, models.names))


def _copy(source, target: str) -> None:
    source.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 2**20)


__all__ = ["ServeConfig", "create_app"]
