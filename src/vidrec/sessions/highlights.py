"""The highlights session: a stream model scores the video (a live source is recorded first, for
`duration` seconds), its running top-k ("topk") and segments ("segment") as in the stream
session, then the best segments of `labels` cut into one reel with the audio, the segments (JSON
Lines) and the timeline (PNG) beside it ("result": frames, seconds, audio, spans, the reel's
segments, files)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from vidrec.errors import ConfigError, unknown_name_message
from vidrec.io import probe
from vidrec.io.events import read_events
from vidrec.io.live import as_file, is_live_source
from vidrec.metrics.spotting import video_key
from vidrec.models.base import StreamingModel
from vidrec.recognize.stream import stream_video
from vidrec.sessions.options import HighlightsOptions
from vidrec.timeline.highlights import event_reel, make_reel
from vidrec.timeline.segments import ScoreTimeline, SegmentConfig


def check_labels(model: StreamingModel, labels) -> None:
    """A label the model does not know is refused (before a minute of recording)."""
    if labels and model.labels and (unknown := [x for x in labels if x not in model.labels]):
        raise ConfigError(unknown_name_message("label", unknown[0], model.labels))


def event_highlights(source: str, o: HighlightsOptions) -> Iterator[dict]:
    """The reel around the events of `o.events` that belong to `source` (a file): "result"
    {frames, seconds, audio, spans, events, files}. The events file may hold several videos:
    those named like `source` (folders and extension aside) are taken, or all when it holds one."""
    if is_live_source(source):
        raise ConfigError("--events cuts a reel from a file; record the live source first (--record)")
    info = probe(source)
    events = read_events(o.events)
    videos = {e.video for e in events}
    if len(videos) > 1:
        events = [e for e in events if video_key(e.video) == video_key(source)]
    if not events:
        raise ConfigError(f"{o.events}: no events of {os.path.basename(source)}")
    reel = event_reel(
        source, events, o.out, labels=list(o.labels) or None, top=o.top, pad=o.pad, duration=info.duration
    )
    keep = ("frames", "seconds", "audio", "spans", "events")
    yield {"type": "result", **{k: reel[k] for k in keep}, "files": {"reel": o.out}}


def highlights_session(
    model: StreamingModel | None, source: str, o: HighlightsOptions = HighlightsOptions()
) -> Iterator[dict]:
    """The events of the highlights session on `source` (see the module's docstring); with
    `o.events`, the reel around those events instead (`event_highlights`: no model runs)."""
    if o.events:
        yield from event_highlights(source, o)
        return
    info = None if is_live_source(source) else probe(source)  # a bad file fails before any work
    check_labels(model, o.labels)
    config = SegmentConfig(on=o.on, off=min(o.off, o.on))
    with as_file(source, seconds=o.duration, timeout=o.timeout, keep=o.record) as path:
        duration = (info or probe(path)).duration
        timeline = ScoreTimeline(model.class_names, config)
        for report in stream_video(model, path, every=o.every, window=o.window or None, probs=True):
            if report.get("final"):
                break
            probs = report.pop("probs").numpy()
            yield {"type": "topk", **report}
            for s in timeline.update(report["time"], probs):
                yield {"type": "segment", **s}
        for s in timeline.finish(duration):
            yield {"type": "segment", **s}
        reel = make_reel(
            path, timeline, o.out, labels=list(o.labels) or None, top=o.top, pad=o.pad, duration=duration
        )
    files = {"reel": o.out, "timeline": reel["timeline_file"], "segments": reel["segments_file"]}
    keep = ("frames", "seconds", "audio", "spans", "segments")
    yield {"type": "result", **{k: reel[k] for k in keep}, "files": files}


__all__ = ["check_labels", "highlights_session"]
