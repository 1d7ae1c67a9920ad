"""`vidrec serve`: recognition over HTTP (FastAPI) and a web page, on the models vidrec has.

    GET  /                       the page (plain HTML/JS, package data)
    POST /v1/predict             multipart `file` (or `path`) -> the `predict --json` object
    POST /v1/jobs                `kind` (stream | detect | highlights | predict) on a `file`, a
                                 live `source` URL or a server `path` -> 202 {id, ...}
    GET  /v1/jobs/{id}           status (and the result once done)
    GET  /v1/jobs/{id}/events    Server-Sent Events: topk, people, segment, result, end
    GET  /v1/jobs/{id}/files/X   a job's output (a highlight reel, its timeline PNG, tracks)
    DELETE /v1/jobs/{id}         cancel
    GET  /v1/models, /healthz, /metrics (Prometheus text), /docs (OpenAPI)

A job runs one of the sessions (`vidrec.sessions`) that the command line runs, with the same
defaults. Inference runs in worker threads fed by a bounded queue (`jobs.JobManager`); when it is
full the answer is 503 with Retry-After, so a burst is refused quickly instead of slowing everyone
down. The routes are in `vidrec.serve.routes`; what one service holds in `vidrec.serve.service`.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from vidrec.errors import VidrecError
from vidrec.serve.inputs import InputError
from vidrec.serve.routes import api, pages
from vidrec.serve.service import ServeConfig, Service


def create_app(config: ServeConfig = ServeConfig()) -> FastAPI:
    """The service as an ASGI app (run it with uvicorn; `vidrec serve` does)."""
    service = Service(config)

    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(
        title="vidrec",
        summary="Video action recognition: predictions, running top-k, per-person actions, highlights",
        lifespan=lifespan,
        max_body_size=config.limits.max_bytes + 2**20,  # the file plus the form's other fields
    )
    app.state.service = service
    app.state.manager, app.state.models, app.state.config = service.manager, service.models, config
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
        name = getattr(request.scope.get("route"), "path", "other")
        service.metrics.requests.labels(name, request.method, str(response.status_code)).inc()
        service.metrics.latency.labels(name).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(InputError)
    async def refused(request: Request, e: InputError):
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(VidrecError)
    async def bad_request(request: Request, e: VidrecError):
        return JSONResponse({"detail": str(e)}, status_code=400)

    app.include_router(pages)
    app.include_router(api)
    app.mount("/static", StaticFiles(packages=[("vidrec.serve", "static")]), name="static")
    return app


__all__ = ["ServeConfig", "create_app"]
