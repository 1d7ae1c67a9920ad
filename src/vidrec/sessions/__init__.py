"""Sessions: what `vidrec stream`, `detect`, `highlights` and `predict` do, as generators of events
(dicts with a "type"), each kind with one options object and its defaults. The command line prints
the events and the service queues them, so both give the same results for the same settings.

    predict     "result" {predict --json}
    stream      "topk" {time, frames, predictions} ... "segment" {label, start, end, peak} ... "result"
    detect      "people" {time, frame, tracks: [{id, box, score, actions}]} ... "segment" (track) ... "result"
    highlights  "topk" ... "segment" ... "result" {frames, seconds, audio, spans, segments, files}
    spot        "event" {video, time, label, confidence, reported_at} ... "result" {events, delay_s, files}
"""

from __future__ import annotations

from collections.abc import Iterator

from vidrec.errors import ConfigError, unknown_name_message
from vidrec.sessions.detect import detect_session
from vidrec.sessions.highlights import highlights_session
from vidrec.sessions.models import BACKENDS, Inference, Models
from vidrec.sessions.options import (
    KINDS,
    DetectOptions,
    HighlightsOptions,
    LiveOptions,
    PredictOptions,
    SpotOptions,
    StreamOptions,
    options_for,
)
from vidrec.sessions.predict import predict_session
from vidrec.sessions.spot import spot_session
from vidrec.sessions.stream import stream_session


def events(
    kind: str, models: Models, source: str, options: LiveOptions, *, model: str | None = None
) -> Iterator[dict]:
    """The events of a `kind` session on `source` (a file or a live source URL), run by `models`'
    video model `model` (default: the first)."""
    if kind == "predict":
        return predict_session(models.get(model), source, options)
    if kind == "stream":
        return stream_session(models.get(model), source, options)
    if kind == "detect":
        return detect_session(models, source, options, model=model)
    if kind == "highlights":
        return highlights_session(models.get(model), source, options)
    if kind == "spot":
        return spot_session(*models.spotter(model), source, options)
    raise ConfigError(unknown_name_message("session kind", kind, list(KINDS)))


__all__ = [
    "BACKENDS",
    "KINDS",
    "DetectOptions",
    "HighlightsOptions",
    "Inference",
    "LiveOptions",
    "Models",
    "PredictOptions",
    "SpotOptions",
    "StreamOptions",
    "events",
    "options_for",
]
