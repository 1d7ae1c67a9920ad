"""The sessions on the command line: `vidrec stream` (the running top-k of a stream model),
`vidrec detect` (who does what, with boxes, track ids and per-person actions) and `vidrec
highlights` (a reel of the best segments of some labels). Each builds the session's options from
its flags and prints the session's events (`vidrec.sessions`), which the service queues."""

from __future__ import annotations

import json
import sys
import time

from vidrec.cli.loading import command_models


def _print(event: dict) -> None:
    print(json.dumps({k: v for k, v in event.items() if k != "type"}), flush=True)


def cmd_stream(args) -> int:
    """`vidrec stream VIDEO`: the running top-k of a stream model, as a live stream would see it;
    with --segments / --timeline, the segments of its (windowed) scores."""
    from vidrec.metrics.topk import format_predictions
    from vidrec.sessions import StreamOptions, stream_session
    from vidrec.sessions.models import share_cores

    options = StreamOptions(
        every=args.every, top_k=args.top_k, window=args.window, segments=args.segments,
        timeline=args.timeline, realtime=args.realtime, timeout=args.timeout,
    )  # fmt: skip
    model = command_models(args).get()
    share_cores(model)
    start = time.perf_counter()
    for event in stream_session(model, args.video, options):
        if event["type"] == "segment":
            continue
        if event["type"] == "topk":
            if args.json:
                _print(event)
            else:
                print(f"{event['time']:7.1f} s  {format_predictions(event['predictions'])}", flush=True)
            continue
        final = {k: v for k, v in event.items() if k not in ("type", "segments", "statistics")}
        if args.json:
            print(json.dumps({**final, "final": True}), flush=True)
        else:
            _print_final(args.video, final, model, time.perf_counter() - start)
        if args.segments or args.timeline:
            per_label = event["statistics"]["labels"]
            summary = ", ".join(f"{k} {v['count']}x {v['seconds']:g} s" for k, v in per_label.items())
            print(f"{len(event['segments'])} segments: {summary or 'none'}", file=sys.stderr)
    return 0


def _print_final(video: str, report: dict, model, took: float) -> None:
    from vidrec.metrics.topk import format_predictions

    fps = model.preprocessing.target_fps
    print(
        f"{video}: {format_predictions(report['predictions'])}\n  ({report['frames']} frames = "
        f"{report['time']:.1f} s of video at {f'{fps:g} fps' if fps else 'its own frame rate'}, "
        f"processed in {took:.1f} s)",
        flush=True,
    )
    if "overall" in report:  # with a window the line above is the last seconds
        print(f"  whole video: {format_predictions(report['overall'])}", flush=True)
    if "live" in report:
        live = report["live"]
        print(
            f"  live: {live['decoded']} frames in at {live['input_fps']:g} fps, "
            f"{live['processed']} processed, {live['skipped_for_rate']} above the model's rate, "
            f"{live['dropped']} dropped while it was busy; latency median "
            f"{live['latency_median_s']:g} s, worst {live['latency_max_s']:g} s",
            flush=True,
        )


def cmd_detect(args) -> int:
    """`vidrec detect VIDEO [--out annotated.mp4] [--json]`: people found, tracked and recognised."""
    from vidrec.sessions import DetectOptions
    from vidrec.sessions.detect import detect_session

    options = DetectOptions(
        fps=args.fps, min_score=args.min_score, tile=args.tile, context=args.context, window=args.window,
        top_k=args.top_k, settle=args.settle, min_action=args.min_action, boxes=args.boxes,
        video_id=args.video_id, out=args.out, segments=args.segments, timeline=args.timeline, mot=args.mot,
        realtime=args.realtime, timeout=args.timeout,
    )  # fmt: skip
    models = command_models(args, detector=args.detector)
    for event in detect_session(models, args.video, options):
        if event["type"] == "people" and args.json:
            _print(event)
        elif event["type"] == "result":
            result = event
    if args.segments or args.timeline:
        for key, value in result["statistics"].get("tracks", {}).items():
            print(f"person {key}: {value['count']} segments, {value['seconds']:g} s", file=sys.stderr)
    if not args.json:
        for p in sorted(result["people"], key=lambda p: p["id"]):
            action = p["action"]
            named = f"last {action['label']} {action['score']:.2f}" if action else "no action"
            when = f"{p['first']:.1f}-{p['last']:.1f} s ({p['seen']:.1f} s, {p['looks']} looks)"
            print(f"person {p['id']}: {when}, {named}")
        where = f"; annotated video: {args.out}" if args.out else ""
        tracked = f"{len(result['people'])} people tracked in {args.video}"
        print(f"{tracked} ({result['found']}){where}", file=sys.stderr)
    return 0


def cmd_highlights(args) -> int:
    """`vidrec highlights VIDEO --labels A,B --out reel.mp4`: the best segments of those labels,
    padded and cut into one MP4 with the audio; beside it the segments (JSON Lines) and the
    timeline (PNG); --json prints the reel's segments. A live source is recorded first (after the
    model has loaded: a bad name fails before a minute of recording)."""
    from vidrec.sessions import HighlightsOptions
    from vidrec.sessions.highlights import highlights_session

    labels = tuple(x.strip() for x in args.labels.split(",") if x.strip()) if args.labels else ()
    options = HighlightsOptions(
        out=args.out, labels=labels, top=args.top, pad=args.pad, window=args.window, every=args.every,
        on=args.on, off=args.off, duration=args.duration, timeout=args.timeout, record=args.record,
        events=args.events,
    )  # fmt: skip
    model = None if args.events else command_models(args).get()  # events given: no model runs
    for event in highlights_session(model, args.video, options):
        if event["type"] == "result":
            reel = event
    if args.events:
        for e in reel["events"] if args.json else []:
            print(json.dumps(e), flush=True)
        cuts = ", ".join(f"{a:g}-{b:g} s" for a, b in reel["spans"])
        print(
            f"{args.out}: {len(reel['events'])} events in {len(reel['spans'])} cuts ({cuts})", file=sys.stderr
        )
        return 0
    if args.json:
        for s in reel["segments"]:
            print(json.dumps(s), flush=True)
    sound = " with audio" if reel["audio"] else ""
    files = reel["files"]
    print(
        f"{files['reel']}: {len(reel['spans'])} cuts, {reel['seconds']:.1f} s{sound} "
        f"({', '.join(f'{a:g}-{b:g} s' for a, b in reel['spans'])}); segments: {files['segments']}, "
        f"timeline: {files['timeline']}",
        file=sys.stderr,
    )
    return 0


def cmd_spot(args) -> int:
    """`vidrec spot VIDEO --model RUN`: the events a spotter finds, each printed as it becomes final
    (at once for a file; on a live source with a causal spotter, as the video plays); --out writes
    them as results_spotting.json (SoccerNet's), a CSV or a folder."""
    from vidrec.sessions import SpotOptions
    from vidrec.sessions.spot import spot_session

    options = SpotOptions(
        nms=args.nms, threshold=args.threshold, out=args.out, realtime=args.realtime, timeout=args.timeout
    )
    spotter, extractor = command_models(args).spotter()
    for event in spot_session(spotter, extractor, args.video, options):
        if event["type"] == "event":
            if args.json:
                _print(event)
            else:
                print(f"{event['time']:9.2f} s  {event['label']}  {event['confidence']:.3f}", flush=True)
            continue
        late = event["delay_s"]
        delay = f"; reported {late:.2f} s after each event" if late is not None else ""
        where = f": {event['files']['events']}" if event["files"] else ""
        print(f"{args.video}: {event['events']} events{delay}{where}", file=sys.stderr)
    return 0


__all__ = ["cmd_detect", "cmd_highlights", "cmd_spot", "cmd_stream"]
