"""The stream session: a stream model watching a video or a live source, its running top-k every
`every` seconds ("topk"), the segments of its scores as they close ("segment"), then one "result":
the final report (the whole clip, or its last `window` seconds beside the whole), every segment
and their statistics."""

from __future__ import annotations

import json
from collections.abc import Iterator

from vidrec.models.base import StreamingModel
from vidrec.recognize.stream import stream_video
from vidrec.sessions.options import StreamOptions
from vidrec.timeline.segments import ScoreTimeline
from vidrec.timeline.statistics import statistics
from vidrec.utils import atomic_write_text


def stream_session(model: StreamingModel, source: str, o: StreamOptions = StreamOptions()) -> Iterator[dict]:
    """The events of `model` streaming `source` (see the module's docstring). With `o.segments`
    and `o.timeline` the segments (JSON Lines) and the timeline (PNG) are written at the end."""
    timeline = ScoreTimeline(model.class_names, history=bool(o.timeline))
    reports = stream_video(
        model,
        source,
        every=o.every,
        top_k=o.top_k,
        window=o.window or None,
        probs=True,
        realtime=o.realtime,
        timeout=o.timeout,
    )
    for report in reports:
        probs = report.pop("probs").numpy()
        if report.pop("final", False):
            for s in timeline.finish():
                yield {"type": "segment", **s}
            write_segments(timeline, o.segments, o.timeline)
            segments = timeline.segments
            yield {"type": "result", **report, "segments": segments, "statistics": statistics(segments)}
            return
        yield {"type": "topk", **report}
        for s in timeline.update(report["time"], probs):
            yield {"type": "segment", **s}


def write_segments(timeline: ScoreTimeline, segments: str | None, picture: str | None) -> None:
    """The timeline's segments as JSON Lines at `segments`, its PNG at `picture` (each if given)."""
    if segments:
        atomic_write_text(segments, "".join(json.dumps(s) + "\n" for s in timeline.segments))
    if picture:
        timeline.plot(picture)


__all__ = ["stream_session", "write_segments"]
