"""The spot session: an event spotter (a `vidrec train` run of task spotting) on a video or a live
source, its extractor's features computed as the video plays. Each event comes as it becomes final
("event": video, time, label, confidence, reported_at: the video time it was reported at), then
"result" (events, the delay from event to report, files: the events in SoccerNet's layout or CSV)."""

from __future__ import annotations

from collections.abc import Iterator

from vidrec.io import probe
from vidrec.io.events import write_events
from vidrec.io.live import is_live_source
from vidrec.models.base import SpottingModel
from vidrec.recognize.spot import spot_events
from vidrec.sessions.options import SpotOptions


def spot_session(
    spotter: SpottingModel, extractor, source: str, o: SpotOptions = SpotOptions()
) -> Iterator[dict]:
    """The events of the spot session on `source` (see the module's docstring)."""
    live = is_live_source(source)
    if not live:
        probe(source)  # a bad file fails before any work
    found = []
    how = {
        "nms": o.nms,
        "threshold": o.threshold,
        "realtime": o.realtime,
        "timeout": o.timeout,
        "video": o.video,
    }
    for event, at in spot_events(spotter, extractor, source, **how):
        found.append(event)
        yield {"type": "event", **event_dict(event), "reported_at": round(at, 3)}
    files = {}
    if o.out:
        write_events(found, o.out, video=found[0].video if found else None)
        files["events"] = o.out
    # a causal spotter reports an event nms/2 s of video after it (a step's features hold the
    # frames up to its time), plus the time the computing takes
    delay = o.nms / 2 if spotter.config.causal else None
    yield {"type": "result", "events": len(found), "delay_s": delay, "live": live, "files": files}


def event_dict(event) -> dict:
    """An event as the session reports it."""
    out = {
        "video": event.video,
        "time": event.time,
        "label": event.label,
        "confidence": round(event.confidence, 4),
    }
    return out if event.track is None else {**out, "track": event.track}


__all__ = ["event_dict", "spot_session"]
