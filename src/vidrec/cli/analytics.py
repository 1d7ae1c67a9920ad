"""Live-sports analytics on the command line: `vidrec detect` (who does what, with boxes, track
ids and per-person actions) and `vidrec highlights` (a reel of the best segments of some labels)."""

from __future__ import annotations

import json
import os
import sys

from vidrec.errors import ConfigError


def cmd_detect(args) -> int:
    """`vidrec detect VIDEO [--out annotated.mp4] [--json]`: people found, tracked and recognised."""
    from vidrec.engine.segments import TrackSegments, plot_track_timeline, statistics
    from vidrec.engine.tracking import TrackerConfig
    from vidrec.engine.who import PeopleConfig, draw_tracks, people_actions
    from vidrec.io import probe
    from vidrec.io.live import is_live_source
    from vidrec.utils import VideoWriter, atomic_write_text

    live = is_live_source(args.video)
    if live and args.out:
        raise ConfigError("--out writes a file's annotated copy; for a live source use --json")
    info = None if live else probe(args.video)  # a bad file or setting fails here, before any model loads
    tile = _tile(args.tile, *((info.width, info.height) if info else (0, 0)))
    if args.fps <= 0 or not 0 < args.min_score < 1 or args.context <= 0:
        raise ConfigError("--fps and --context must be > 0 and --min-score in (0, 1)")
    detector, recognizer = _people_models(args, tile)
    labels = recognizer.model.labels or [str(i) for i in range(recognizer.model.num_classes)]
    per_person = TrackSegments(labels)
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
            probs=bool(args.segments or args.timeline),
            realtime=args.realtime,
            timeout=args.timeout,
        ):
            if writer is not None:
                writer.write(draw_tracks(report.pop("image"), report["tracks"]))
                if not report.pop("keyframe"):
                    continue
            for t in report["tracks"]:
                s = seen.setdefault(t["id"], {"first": report["time"], "looks": 0})
                s["last"], s["looks"], s["best"] = report["time"], s["looks"] + 1, t["actions"][0]
            if args.segments or args.timeline:
                per_person.update(report["time"], report["tracks"], alive=recognizer.alive)
                for t in report["tracks"]:
                    del t["probs"]
            if args.json:
                print(json.dumps(report), flush=True)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    if args.segments or args.timeline:
        segments = per_person.finish()
        if args.segments:
            atomic_write_text(args.segments, "".join(json.dumps(x) + "\n" for x in segments))
        if args.timeline:
            plot_track_timeline(
                args.timeline, segments, {i: (s["first"], s["last"]) for i, s in seen.items()}
            )
        for key, value in statistics(segments).get("tracks", {}).items():
            print(f"person {key}: {value['count']} segments, {value['seconds']:g} s", file=sys.stderr)
    if not args.json:
        for i, s in sorted(seen.items()):
            print(
                f"person {i}: {s['first']:.1f}-{s['last']:.1f} s ({s['looks']} looks), "
                f"last {s['best']['label']} {s['best']['score']:.2f}"
            )
        where = f"; annotated video: {args.out}" if args.out else ""
        found = f"boxes: {args.boxes}" if args.boxes else f"tiles: {tile or 'off'}"
        print(f"{len(seen)} people tracked in {args.video} ({found}){where}", file=sys.stderr)
    return 0


def _people_models(args, tile: int | None):
    """The person detector (or a CSV's boxes) and the per-person action recogniser `vidrec detect`
    was asked for."""
    from vidrec.cli.loading import for_inference
    from vidrec.engine.people import CSVPersons
    from vidrec.engine.who import person_detector, person_recognizer
    from vidrec.io.live import is_live_source
    from vidrec.loader import load_model, on_onnxruntime

    model = for_inference(load_model(args.model, weights_dir=args.weights), args)
    recognizer = person_recognizer(model, window=args.window, fps=args.fps)
    if args.boxes:
        if is_live_source(args.video) and not args.video_id:
            raise ConfigError("--boxes on a live source needs --video-id")
        video_id = args.video_id or os.path.splitext(os.path.basename(args.video))[0]
        return CSVPersons(args.boxes, video_id=video_id, min_score=args.min_score), recognizer
    detector = load_model(args.detector, weights_dir=args.weights)
    if args.backend == "onnxruntime":  # its network too: one runtime, no contention between two
        detector = on_onnxruntime(detector)
    return person_detector(detector, min_score=args.min_score, tile=tile), recognizer


def _tile(value: str, width: int, height: int) -> int | None:
    """--tile: a side in pixels, "off", or "auto" (400 px tiles on frames whose short side is
    1000 px or more, where people are a few dozen pixels tall; off for a live source, whose size
    is not known before it starts)."""
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


def cmd_highlights(args) -> int:
    """`vidrec highlights VIDEO --labels A,B --out reel.mp4`: the best segments of those labels,
    padded and cut into one MP4 with the audio; beside it the segments (JSON Lines) and the
    timeline (PNG); --json prints the reel's segments. A live source is recorded first (after the
    model has loaded: a bad name fails before a minute of recording)."""
    from vidrec.io import probe
    from vidrec.io.live import as_file, is_live_source
    from vidrec.loader import load_model

    # A file's probe (it demuxes the whole file) is made once: a bad file fails here, before any
    # model loads; a live source is probed once recorded.
    info = None if is_live_source(args.video) else probe(args.video)
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    model = load_model(args.model, weights_dir=args.weights)
    if labels and model.labels and (unknown := [x for x in labels if x not in model.labels]):
        from vidrec.errors import unknown_name_message

        raise ConfigError(unknown_name_message("label", unknown[0], model.labels))
    with as_file(args.video, seconds=args.duration, timeout=args.timeout, keep=args.record) as video:
        return _highlights(args, video, model, labels, info or probe(video))


def _highlights(args, video: str, model, labels: list[str] | None, info) -> int:
    from vidrec.engine.highlights import make_reel
    from vidrec.engine.segments import ScoreTimeline, SegmentConfig
    from vidrec.engine.stream import stream_video

    config = SegmentConfig(on=args.on, off=min(args.off, args.on))
    timeline = ScoreTimeline(model.labels or [str(i) for i in range(model.num_classes)], config)
    for report in stream_video(model, video, every=args.every, window=args.window, probs=True):
        if not report.get("final"):
            timeline.update(report["time"], report["probs"].numpy())
    timeline.finish(info.duration)
    reel = make_reel(
        video, timeline, args.out, labels=labels, top=args.top, pad=args.pad, duration=info.duration
    )
    if args.json:
        for s in reel["segments"]:
            print(json.dumps(s), flush=True)
    sound = " with audio" if reel["audio"] else ""
    print(
        f"{args.out}: {len(reel['spans'])} cuts, {reel['seconds']:.1f} s{sound} "
        f"({', '.join(f'{a:g}-{b:g} s' for a, b in reel['spans'])}); segments: {reel['segments_file']}, "
        f"timeline: {reel['timeline_file']}",
        file=sys.stderr,
    )
    return 0


__all__ = ["cmd_detect", "cmd_highlights"]
