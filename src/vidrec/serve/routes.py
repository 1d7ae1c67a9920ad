"""The service's routes (one `APIRouter`): each reads the running `Service` from the app's state,
turns its form into a session's options (`vidrec.sessions.options_for`: a field left out keeps the
session's default, the same as on the command line) and queues the session as a job."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from importlib import resources

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from vidrec.errors import unknown_name_message
from vidrec.serve.inputs import InputError
from vidrec.serve.jobs import FINISHED, Job
from vidrec.serve.service import Service
from vidrec.sessions import KINDS, options_for
from vidrec.sessions.highlights import check_labels


def service(request: Request) -> Service:
    """The running service (in the app's state)."""
    return request.app.state.service


def authorized(request: Request) -> None:
    """The bearer token, when the service has one."""
    token = service(request).config.token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


pages = APIRouter()
api = APIRouter(dependencies=[Depends(authorized)])


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
def page():
    """The web page."""
    return (resources.files("vidrec.serve") / "static" / "index.html").read_text()


@pages.get("/healthz")
def healthz(s: Service = Depends(service)):
    """Alive, with the workers, the queue's depth and the jobs running."""
    manager = s.manager
    return {"status": "ok", "workers": s.config.workers, "queue": manager.depth(), "running": manager.running}


@api.get("/metrics", response_class=Response)
def prometheus(s: Service = Depends(service)):
    """The metrics in Prometheus' text format."""
    return Response(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@api.get("/v1/models")
def list_models(s: Service = Depends(service)):
    """The models offered (and, once loaded, what they are), the detector and the job kinds."""
    return {"models": s.models.describe(), "detector": s.config.detector, "kinds": list(KINDS)}


@api.post("/v1/predict")
async def predict_upload(
    file: UploadFile | None = File(None),
    path: str | None = Form(None),
    model: str | None = Form(None),
    top_k: int | None = Form(None),
    s: Service = Depends(service),
):
    """Upload a video (multipart `file`), get its top-k (`vidrec predict --json`)."""
    options = options_for("predict", top_k=top_k)
    job = await s.submit("predict", options, file, None, path, model=model)
    try:
        await asyncio.wrap_future(job.future)
    except asyncio.CancelledError:  # the client left: the job goes too
        s.manager.cancel(job)
        raise
    if job.status != "done":
        raise HTTPException(422, job.error or job.status)
    return job.result


@api.post("/v1/jobs", status_code=202)
async def create_job(
    kind: str = Form("stream"),
    file: UploadFile | None = File(None),
    source: str | None = Form(None),
    path: str | None = Form(None),
    model: str | None = Form(None),
    top_k: int | None = Form(None),
    every: float | None = Form(None),
    window: float | None = Form(None),
    fps: float | None = Form(None),
    min_score: float | None = Form(None),
    tile: str | None = Form(None),
    context: float | None = Form(None),
    settle: float | None = Form(None),
    min_action: float | None = Form(None),
    labels: str | None = Form(None),
    top: int | None = Form(None),
    pad: float | None = Form(None),
    on: float | None = Form(None),
    off: float | None = Form(None),
    duration: float | None = Form(None),
    timeout: float | None = Form(None),
    realtime: bool | None = Form(None),
    nms: float | None = Form(None),
    threshold: float | None = Form(None),
    s: Service = Depends(service),
):
    """A long job on an upload, a live `source` URL or an allowed server `path`; follow it at
    `events` (SSE), get its status and result at `status`. Settings left out take the session's
    defaults (`vidrec.sessions.options`), as the command line's flags do."""
    if kind not in KINDS:
        raise InputError(400, unknown_name_message("job kind", kind, list(KINDS)))
    chosen = tuple(x.strip() for x in labels.split(",") if x.strip()) if labels else None
    options = options_for(
        kind, top_k=top_k, every=every, window=window, fps=fps, min_score=min_score, tile=tile,
        context=context, settle=settle, min_action=min_action, labels=chosen, top=top, pad=pad, on=on,
        off=off, duration=duration, timeout=timeout, realtime=realtime, nms=nms, threshold=threshold,
    )  # fmt: skip
    s.known(model)
    if kind == "highlights" and chosen:  # refused now, not after the upload has been worked on
        check_labels(await run_in_threadpool(s.models.get, model), chosen)
    job = await s.submit(kind, options, file, source, path, model=model)
    return {**job.summary(), "status_url": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events"}


def job_or_404(job_id: str, s: Service = Depends(service)) -> Job:
    """The job `job_id`, or 404."""
    job = s.manager.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@api.get("/v1/jobs")
def list_jobs(s: Service = Depends(service)):
    """Every job kept, newest last."""
    return {"jobs": [j.summary() for j in s.manager.jobs.values()]}


@api.get("/v1/jobs/{job_id}")
def job_status(job: Job = Depends(job_or_404)):
    """A job's status (and its result once done)."""
    return job.summary()


@api.delete("/v1/jobs/{job_id}")
def cancel_job(job: Job = Depends(job_or_404), s: Service = Depends(service)):
    """Cancel a job: a queued one never starts, a running one stops at its next event."""
    s.manager.cancel(job)
    return job.summary()


@api.get("/v1/jobs/{job_id}/events")
async def job_events(request: Request, job: Job = Depends(job_or_404)):
    """Server-Sent Events: one `event: TYPE` / `data: JSON` per event, `id` its number (a client
    reconnecting with Last-Event-ID continues after it)."""
    start = int(request.headers.get("last-event-id", -1)) + 1

    async def stream():
        async for number, event in job.subscribe(start):
            yield f"id: {number}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@api.get("/v1/jobs/{job_id}/files/{name}")
def job_file(name: str, job: Job = Depends(job_or_404)):
    """A finished job's output file (a reel, its timeline PNG, its segments; a detect job's tracks)."""
    files = (job.result or {}).get("files", {})
    if job.status not in FINISHED or name not in files.values():
        raise HTTPException(404, f"job {job.id} has no file {name}")
    return FileResponse(os.path.join(job.folder, name))


__all__ = ["api", "pages"]
