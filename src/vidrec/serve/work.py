"""The service's kinds of work, each a generator of events (what `vidrec predict`, `stream`,
`detect` and `highlights` print, as dicts with a "type"), ending with one "result":

    predict     {"type": "result", <predict --json>}
    stream      "topk" {time, frames, predictions} ... "segment" {label, start, end, peak} ... "result"
    detect      "people" {time, frame, tracks: [{id, box, score, actions}]} ... "segment" (track) ... "result"
    highlights  "topk" ... "segment" ... "result" {spans, seconds, audio, segments, files}

Models are loaded once (`Models`) and shared by every job: inference is stateless apart from the
per-job stream states these generators hold.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from vidrec.engine.highlights import make_reel
from vidrec.engine.predict import predict
from vidrec.engine.segments import ScoreTimeline, SegmentConfig, Segmenter, TrackSegments, statistics
from vidrec.engine.stream import stream_video
from vidrec.engine.tracking import TrackerConfig
from vidrec.engine.who import PeopleConfig, people_actions, person_detector, person_recognizer
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.io import probe
from vidrec.io.live import as_file
from vidrec.loader import load_model, on_onnxruntime
from vidrec.models.base import DetectionModel, StreamingModel

KINDS = ("predict", "stream", "detect", "highlights")


class Models:
    """The models this service offers, by name (the first is the default), each loaded on first
    use, once, and shared; the person detector likewise."""

    def __init__(
        self, names: list[str], *, detector: str, weights: str | None = None, backend: str = "pytorch"
    ):
        if not names:
            raise ConfigError("serve needs at least one --model")
        if backend not in ("pytorch", "onnxruntime"):
            raise ConfigError(f"unknown backend {backend!r} (valid: pytorch, onnxruntime)")
        self.names, self.detector_name, self.weights = list(names), detector, weights
        self.backend = backend
        self.loaded: dict[str, object] = {}
        self.lock = threading.Lock()

    def get(self, name: str | None = None):
        """The model `name` (default: the first), loaded now if it was not yet."""
        name = name or self.names[0]
        if name not in self.names and name != self.detector_name:
            raise ConfigError(unknown_name_message("model", name, self.names))
        with self.lock:  # two first requests load it once
            if name not in self.loaded:
                model = load_model(name, weights_dir=self.weights)
                if self.backend == "onnxruntime":  # exported once per set of weights, then cached
                    model = on_onnxruntime(model)
                self.loaded[name] = model
            return self.loaded[name]

    def describe(self) -> list[dict]:
        """Per offered model: name, default, loaded and (once loaded) arch, classes, kind."""
        out = []
        for i, name in enumerate(self.names):
            entry = {"name": name, "default": i == 0, "loaded": name in self.loaded}
            model = self.loaded.get(name)
            if model is not None:
                kind = (
                    "detector"
                    if isinstance(model, DetectionModel)
                    else "stream"
                    if isinstance(model, StreamingModel)
                    else "clip"
                )
                entry.update(arch=model.arch, classes=model.num_classes, kind=kind)
            out.append(entry)
        return out


@dataclass(frozen=True)
class Options:
    """A job's settings (form fields of POST /v1/jobs), each as on the command line."""

    model: str | None = None
    top_k: int = 5
    every: float = 0.5  # stream/highlights: seconds between scores
    window: float = 2.0  # seconds pooled per score (0: since the start)
    fps: float = 5.0  # detect: frames looked at per second
    min_score: float = 0.5  # detect: least person score
    labels: tuple[str, ...] = ()  # highlights: labels kept (empty: any)
    top: int = 5  # highlights: segments in the reel
    pad: float = 1.0  # highlights: seconds around each segment
    duration: float = 10.0  # live sources, for predict and highlights: seconds recorded first
    timeout: float = 10.0  # live sources: seconds without a frame = stalled
    realtime: bool = True  # live sources: the newest frame when busy (False: every frame, may lag)

    def __post_init__(self):
        if self.top_k < 1 or self.top < 1 or self.every <= 0 or self.fps <= 0 or self.duration <= 0:
            raise ConfigError("top_k, top, every, fps and duration must be positive")
        if not 0 < self.min_score < 1 or self.window < 0 or self.pad < 0 or self.timeout <= 0:
            raise ConfigError("min_score must be in (0, 1); window, pad >= 0; timeout > 0")


def _labels(model) -> list[str]:
    return model.labels or [str(i) for i in range(model.num_classes)]


def predict_events(models: Models, source: str, o: Options) -> Iterator[dict]:
    """One "result": `predict` on the file (a live source recorded for `duration` s first)."""
    model = models.get(o.model)
    with as_file(source, seconds=o.duration, timeout=o.timeout) as path:
        result = predict(model, path, top_k=o.top_k)
    yield {"type": "result", **result}


def stream_events(models: Models, source: str, o: Options) -> Iterator[dict]:
    """The running top-k every `every` s ("topk"), segments as they close, then the "result"
    (final and whole-video predictions, every segment, statistics)."""
    model = models.get(o.model)
    segmenter, segments = Segmenter(_labels(model)), []
    for report in stream_video(
        model,
        source,
        every=o.every,
        top_k=o.top_k,
        window=o.window or None,
        probs=True,
        realtime=o.realtime,
        timeout=o.timeout,
    ):
        probs = report.pop("probs").numpy()
        final = report.pop("final", False)
        new = segmenter.finish() if final else segmenter.update(report["time"], probs)
        if not final:
            yield {"type": "topk", **report}
        for s in new:
            yield {"type": "segment", **s}
        segments += new
        if final:
            yield {"type": "result", **report, "segments": segments, "statistics": statistics(segments)}


def detect_events(models: Models, source: str, o: Options) -> Iterator[dict]:
    """Per look, the tracked people and their actions ("people"), per-person segments as they
    close, then the "result" (everyone seen, every segment, statistics)."""
    recognizer = person_recognizer(models.get(o.model), window=o.window, fps=o.fps)
    detector = person_detector(models.get(models.detector_name), min_score=o.min_score)
    per_person = TrackSegments(_labels(recognizer.model))
    people: dict[int, dict] = {}
    for report in people_actions(
        source,
        detector=detector,
        recognizer=recognizer,
        config=PeopleConfig(fps=o.fps, top_k=o.top_k),
        tracking=TrackerConfig(high=o.min_score, low=min(o.min_score, 0.3)),
        probs=True,
        realtime=o.realtime,
        timeout=o.timeout,
    ):
        closed = per_person.update(report["time"], report["tracks"], alive=recognizer.alive)
        for t in report["tracks"]:
            del t["probs"]
            seen = people.setdefault(t["id"], {"id": t["id"], "first": report["time"], "looks": 0})
            seen.update(last=report["time"], looks=seen["looks"] + 1, actions=t["actions"])
        yield {"type": "people", **report}
        for s in closed:
            yield {"type": "segment", **s}
    before = len(per_person.segments)
    segments = per_person.finish()
    for s in per_person.segments[before:]:  # still open at the end
        yield {"type": "segment", **s}
    yield {
        "type": "result",
        "people": list(people.values()),
        "segments": segments,
        "statistics": statistics(segments),
    }


def highlights_events(models: Models, source: str, o: Options, folder: str) -> Iterator[dict]:
    """As `stream_events` while scoring, then the reel of the best segments of `labels` cut into
    `folder` ("result": spans, seconds, audio, its segments and files)."""
    model = models.get(o.model)
    if o.labels and model.labels and (unknown := [x for x in o.labels if x not in model.labels]):
        raise ConfigError(unknown_name_message("label", unknown[0], model.labels))
    with as_file(source, seconds=o.duration, timeout=o.timeout) as path:
        duration = probe(path).duration
        timeline = ScoreTimeline(_labels(model), SegmentConfig())
        for report in stream_video(
            model, path, every=o.every, top_k=o.top_k, window=o.window or None, probs=True
        ):
            if report.get("final"):
                break
            probs = report.pop("probs").numpy()
            yield {"type": "topk", **report}
            for s in timeline.update(report["time"], probs):
                yield {"type": "segment", **s}
        for s in timeline.finish(duration):
            yield {"type": "segment", **s}
        reel = make_reel(
            path,
            timeline,
            os.path.join(folder, "reel.mp4"),
            labels=list(o.labels) or None,
            top=o.top,
            pad=o.pad,
            duration=duration,
        )
    files = {"reel": "reel.mp4", "timeline": "reel.timeline.png", "segments": "reel.segments.jsonl"}
    keep = ("frames", "seconds", "audio", "spans", "segments")
    yield {"type": "result", **{k: reel[k] for k in keep}, "files": files}


def events(kind: str, models: Models, source: str, options: Options, folder: str) -> Iterator[dict]:
    """The events of a job of `kind` on `source` (a file or a live source URL)."""
    if kind == "predict":
        return predict_events(models, source, options)
    if kind == "stream":
        return stream_events(models, source, options)
    if kind == "detect":
        return detect_events(models, source, options)
    if kind == "highlights":
        return highlights_events(models, source, options, folder)
    raise ConfigError(unknown_name_message("job kind", kind, list(KINDS)))


__all__ = ["KINDS", "Models", "Options", "events"]
