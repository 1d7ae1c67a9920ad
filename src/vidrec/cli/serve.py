"""`vidrec serve`: the HTTP service and its page (`vidrec.serve`), run by uvicorn."""

from __future__ import annotations

import os
import sys

from vidrec.errors import ConfigError


def cmd_serve(args) -> int:
    """`vidrec serve [--model M ...] [--host 127.0.0.1] [--port 8000]`."""
    try:
        import uvicorn

        from vidrec.serve import Limits, ServeConfig, create_app
    except ImportError as e:
        raise ConfigError(
            f"vidrec serve needs its extra ({e.name} is missing): pip install 'vidrec[serve]'"
        ) from None
    for folder in args.allow_paths or []:
        if not os.path.isdir(folder):
            raise ConfigError(f"--allow-paths {folder}: not a folder")
    limits = Limits(
        max_bytes=int(args.max_upload_mb * 2**20),
        max_seconds=args.max_seconds,
        max_pixels=args.max_pixels,
        schemes=tuple(s.strip().lower() for s in args.allow_schemes.split(",") if s.strip()),
        allow_paths=tuple(args.allow_paths or ()),
    )
    config = ServeConfig(
        models=tuple(args.model or ["movinet_a0_stream"]),
        detector=args.detector,
        weights=args.weights,
        backend=args.backend,
        device=args.device,
        host=args.host,
        token=args.token or os.environ.get("VIDREC_SERVE_TOKEN") or None,
        cors_origins=tuple(args.cors_origin or ()),
        workers=args.workers,
        queue_size=args.queue,
        limits=limits,
        work_dir=args.work_dir,
    )
    app = create_app(config)
    for name in config.models[:1]:  # the default model loads before the first request waits for it
        app.state.models.load(name)
    print(f"vidrec serve: http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


__all__ = ["cmd_serve"]
