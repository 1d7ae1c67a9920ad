"""What one running service holds (its settings, models, job queue, metrics and work folder) and
how a request becomes a job: the input taken and checked, then the session's events queued."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from vidrec.errors import ConfigError, unknown_name_message
from vidrec.serve.inputs import InputError, Limits, check_path, check_source, check_video
from vidrec.serve.jobs import Job, JobManager, QueueFull
from vidrec.serve.metrics import Metrics
from vidrec.sessions import BACKENDS, KINDS, Inference, LiveOptions, Models, events
from vidrec.utils import resolve_device


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs (the `vidrec serve` flags)."""

    models: tuple[str, ...] = ("movinet_a0_stream",)  # offered models; the first is the default
    detector: str = "ssd_mobilenet_v1.coco_uint8"  # person detector for detect jobs
    weights: str | None = None  # --weights folders
    # or "onnxruntime": every model (and the detector's network) run there; or "litert": MoViNet
    # streams converted to TFLite, the detector's official .tflite file as shipped
    backend: str = "pytorch"
    device: str = "auto"  # cpu, cuda, cuda:1 ... (auto: CUDA when available, else CPU); PyTorch models
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
        if self.backend not in BACKENDS:
            raise ConfigError(unknown_name_message("backend", self.backend, list(BACKENDS)))
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


class Service:
    """One service: `config`, its `models` (loaded once, shared by every job), the job `manager`,
    `metrics`, and `work_dir` (a folder per job: its upload, then its outputs)."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.own_work_dir = not config.work_dir
        self.work_dir = config.work_dir or tempfile.mkdtemp(prefix="vidrec-serve-")
        os.makedirs(self.work_dir, exist_ok=True)
        self.models = Models(
            list(config.models),
            detector=config.detector,
            weights=config.weights,
            inference=Inference(backend=config.backend, device=str(resolve_device(config.device))),
        )
        self.frames_seen: dict[str, int] = {}
        self.manager = JobManager(
            workers=config.workers,
            queue_size=config.queue_size,
            keep=config.keep_jobs,
            on_event=self.on_event,
        )
        self.metrics = Metrics(self.manager.depth, lambda: self.manager.running)

    def on_event(self, job: Job, event: dict) -> None:
        """Count frames through a model (cumulative per job in topk/result, one per people look)
        and finished jobs."""
        if event.get("type") in ("topk", "result") and "frames" in event:
            self.metrics.count_frames(event["frames"] - self.frames_seen.get(job.id, 0))
            self.frames_seen[job.id] = event["frames"]
        elif event.get("type") == "people":
            self.metrics.count_frames(1)
        if event.get("type") == "end":
            self.metrics.jobs.labels(job.kind, event["status"]).inc()
            self.frames_seen.pop(job.id, None)

    def close(self) -> None:
        """Stop the workers; remove the work folder if the service made it."""
        self.manager.close()
        if self.own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def known(self, name: str | None) -> None:
        """A model name the service does not offer is refused before anything else."""
        if name and name not in self.models.names:
            raise InputError(400, unknown_name_message("model", name, self.models.names))

    def busy(self) -> HTTPException:
        """The 503 answer of a full queue (counted)."""
        self.metrics.rejected.inc()
        return HTTPException(
            503, "busy: try again later", headers={"Retry-After": str(self.config.retry_after)}
        )

    async def take_input(
        self, folder: str, file: UploadFile | None, source: str | None, path: str | None
    ) -> str:
        """The job's input as a path or URL, checked: exactly one of file, source, path."""
        limits = self.config.limits
        given = [x for x in (file, source, path) if x]
        if len(given) != 1:
            raise InputError(400, "give exactly one of: file (an upload), source (a stream URL), path")
        if source:
            return check_source(source, limits)
        if path:
            real = check_path(path, limits)
            await run_in_threadpool(check_video, real, limits)
            return real
        ext = os.path.splitext(file.filename or "")[1].lower()
        target = os.path.join(folder, "upload" + (ext if ext.isascii() and len(ext) <= 6 else ""))
        await run_in_threadpool(_copy, file.file, target)
        await run_in_threadpool(check_video, target, limits)
        return target

    async def submit(
        self, kind: str, options: LiveOptions, file, source, path, *, model: str | None = None
    ) -> Job:
        """A job running the `kind` session on the input, queued (503 when the queue is full).
        A highlights reel is cut into the job's folder, and a detect job's tracks written there
        as MOTChallenge rows; results name the client's input."""
        if kind not in KINDS:
            raise InputError(400, unknown_name_message("job kind", kind, list(KINDS)))
        self.known(model)
        manager = self.manager
        if manager.queue.full():  # refuse before taking the upload's copy and probe
            raise self.busy()
        job_id = manager.new_id()
        folder = os.path.join(self.work_dir, job_id)
        os.makedirs(folder)
        try:
            video = await self.take_input(folder, file, source, path)
            name = os.path.basename(file.filename or "upload") if file else (path or source)
            if kind == "highlights":
                options = dataclasses.replace(options, out=os.path.join(folder, "reel.mp4"))
            if kind == "detect":  # the tracks as MOTChallenge rows, for track-eval
                options = dataclasses.replace(options, mot=os.path.join(folder, "tracks.txt"))
            if kind == "spot":  # the events as SoccerNet's predictions (of the client's video), for spot-eval
                game = os.path.splitext(name)[0]
                options = dataclasses.replace(
                    options, out=os.path.join(folder, "results_spotting.json"), video=game
                )

            def run():
                for event in events(kind, self.models, video, options, model=model):
                    if "files" in event:  # served from the job's folder, by name
                        event = {
                            **event,
                            "files": {k: os.path.basename(v) for k, v in event["files"].items()},
                        }
                    yield {**event, "video": name} if "video" in event else event  # the client's name

            def cleanup():  # the upload goes as soon as the job ends (run or cancelled); outputs stay
                if video.startswith(folder + os.sep) and os.path.exists(video):
                    os.remove(video)

            return manager.submit(Job(id=job_id, kind=kind, run=run, folder=folder, cleanup=cleanup))
        except QueueFull:
            shutil.rmtree(folder, ignore_errors=True)
            raise self.busy() from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise


def _copy(source, target: str) -> None:
    source.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 2**20)


__all__ = ["ServeConfig", "Service"]
