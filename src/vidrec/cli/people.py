"""`vidrec detect`: who does what in a video, with boxes, track ids and per-person actions."""

from __future__ import annotations

import json
import sys

from vidrec.errors import ConfigError


def cmd_detect(args) -> int:
    """`vidrec detect VIDEO [--out annotated.mp4] [--json]`: people found, tracked and recognised."""
    from vidrec.engine.people import SSDPersons
    from vidrec.engine.tracking import TrackerConfig
    from vidrec.engine.who import PeopleConfig, TrackRecognizer, draw_tracks, people_actions
    from vidrec.io import probe
    from vidrec.loader import load_model
    from vidrec.models.ssd import SSDMobileNetV1
    from vidrec.utils import VideoWriter

    info = probe(args.video)  # a bad file or setting fails here, before any model loads
    tile = _tile(args.tile, info.width, info.height)
    if args.fps <= 0 or not 0 < args.min_score < 1 or args.context <= 0:
        raise ConfigError("--fps and --context must be > 0 and --min-score in (0, 1)")
    detector_model = load_model(args.detector, weights_dir=args.weights)
    if not isinstance(detector_model, SSDMobileNetV1):
        raise ConfigError(f"--detector {args.detector} is a {detector_model.arch}, not a person detector")
    detector = SSDPersons(detector_model, min_score=args.min_score, tile=tile)
    recognizer = TrackRecognizer(load_model(args.model, weights_dir=args.weights))
    config = PeopleConfig(fps=args.fps, context=args.context, top_k=args.top_k)
    tracking = TrackerConfig(high=args.min_score, low=min(args.min_score, 0.3))
    writer = VideoWriter(args.out, fps=info.fps) if args.out else None
    seen: dict[int, dict] = {}
    try:
        for report in people_actions(
            args.video,
            detector=detector,
            recognizer=recognizer,
            config=config,
            tracking=tracking,
            every_frame=writer is not None,
        ):
            if writer is not None:
                writer.write(draw_tracks(report.pop("image"), report["tracks"]))
                if not report.pop("keyframe"):
                    continue
            for t in report["tracks"]:
                s = seen.setdefault(t["id"], {"first": report["time"], "looks": 0})
                s["last"], s["looks"], s["best"] = report["time"], s["looks"] + 1, t["actions"][0]
            if args.json:
                print(json.dumps(report), flush=True)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    if not args.json:
        for i, s in sorted(seen.items()):
            print(
                f"person {i}: {s['first']:.1f}-{s['last']:.1f} s ({s['looks']} looks), "
                f"last {s['best']['label']} {s['best']['score']:.2f}"
            )
        where = f"; annotated video: {args.out}" if args.out else ""
        print(f"{len(seen)} people tracked in {args.video} (tiles: {tile or 'off'}){where}", file=sys.stderr)
    return 0


def _tile(value: str, width: int, height: int) -> int | None:
    """--tile: a side in pixels, "off", or "auto" (400 px tiles on frames whose short side is
    1000 px or more, where people are a few dozen pixels tall)."""
    if value == "off":
        return None
    if value == "auto":
        return 400 if min(width, height) >= 1000 else None
    try:
        side = int(value)
    except ValueError:
        raise ConfigError(f"--tile must be a number of pixels, 'auto' or 'off', got {value!r}") from None
    if side < 64:
        raise ConfigError(f"--tile {side}: tiles smaller than 64 px leave nobody to find")
    return side


__all__ = ["cmd_detect"]
