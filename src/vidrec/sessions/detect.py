"""The detect session, who does what: people found (or read from a boxes CSV), tracked, and each
one's actions recognised. Per look, the tracked people and their actions ("people"), per-person
segments as they close ("segment"), then one "result": everyone seen in more than one look (with
how long, and the action last named), every segment, statistics.
With `out` the video is written with the boxes, ids and actions drawn; with `mot` the tracks as
MOTChallenge rows (1-based frames of the video), which `vidrec track-eval` scores."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from vidrec.errors import ConfigError
from vidrec.io import probe
from vidrec.io.live import is_live_source
from vidrec.io.mot import mot_row
from vidrec.people.detectors import CSVPersons, PersonDetector, SSDPersons
from vidrec.people.drawing import draw_tracks
from vidrec.people.pipeline import PeopleConfig, people_actions
from vidrec.people.recognizers import person_recognizer
from vidrec.people.tracker import TrackerConfig
from vidrec.sessions.models import Models
from vidrec.sessions.options import DetectOptions
from vidrec.timeline.segments import TrackSegments
from vidrec.timeline.statistics import plot_track_timeline, statistics
from vidrec.utils import VideoWriter, atomic_write_text


def check_detect(source: str, o: DetectOptions):
    """What can be refused before any model loads: an annotated copy of a live source, boxes for
    a live source without its id, a bad file (probed here: its size and rate, or None if live)."""
    live = is_live_source(source)
    if live and o.out:
        raise ConfigError("an annotated copy (--out) is of a file; for a live source use the events")
    if live and o.boxes and not o.video_id:
        raise ConfigError("boxes on a live source need the video's id (--video-id)")
    return None if live else probe(source)


def person_finder(models: Models, source: str, o: DetectOptions, info) -> tuple[PersonDetector, str]:
    """The people's boxes: from `o.boxes` (a CSV), else the detector on whole frames and, for wide
    shots, on tiles; and what was used, in words."""
    if o.boxes:
        video_id = o.video_id or os.path.splitext(os.path.basename(source))[0]
        return CSVPersons(o.boxes, video_id=video_id, min_score=o.min_score), f"boxes: {o.boxes}"
    size = (info.width, info.height) if info else (0, 0)
    tile, fit = o.tile_for(*size), o.fit_for(*size)
    weakest = tracking_config(o).low  # weak boxes reach the tracker: they extend tracks
    found = f"tiles: {tile or 'off'}" + (", then sized to the people" if fit else "")
    return SSDPersons(models.detector(), min_score=weakest, tile=tile, fit=fit), found


def tracking_config(o: DetectOptions) -> TrackerConfig:
    """The tracker's thresholds: tracks start at `min_score`; weaker boxes, down to the default
    `low` (or `min_score` if that is lower), only extend them."""
    return TrackerConfig(high=o.min_score, low=min(o.min_score, TrackerConfig.low))


def detect_session(
    models: Models, source: str, o: DetectOptions = DetectOptions(), *, model: str | None = None
) -> Iterator[dict]:
    """The events of the detect session on `source` with `models`' video model `model` (see the
    module's docstring); the result's "found" says how the people were found."""
    info = check_detect(source, o)
    recognizer = person_recognizer(models.get(model), window=o.window, fps=o.fps)
    finder, found = person_finder(models, source, o, info)
    per_person = TrackSegments(recognizer.model.class_names)
    people: dict[int, dict] = {}
    mot_rows: list[str] = []
    writer = VideoWriter(o.out, fps=info.fps) if o.out else None
    reports = people_actions(
        source,
        detector=finder,
        recognizer=recognizer,
        config=PeopleConfig(
            fps=o.fps, context=o.context, top_k=o.top_k, settle=o.settle, min_action=o.min_action
        ),
        tracking=tracking_config(o),
        every_frame=writer is not None,
        probs=True,
        realtime=o.realtime,
        timeout=o.timeout,
    )
    try:
        for report in reports:
            if writer is not None:
                writer.write(draw_tracks(report.pop("image"), report["tracks"]))
                if not report.pop("keyframe"):
                    continue
            closed = per_person.update(report["time"], report["tracks"], alive=recognizer.alive)
            for t in report["tracks"]:
                del t["probs"]
                mot_rows.append(mot_row(report["frame"] + 1, t["id"], t["box"], t["score"]))
                seen = people.setdefault(t["id"], {"id": t["id"], "first": report["time"], "looks": 0})
                seen.update(
                    last=report["time"], looks=seen["looks"] + 1, action=t["action"], actions=t["actions"]
                )
            yield {"type": "people", **report}
            for s in closed:
                yield {"type": "segment", **s}
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    before = len(per_person.segments)
    segments = per_person.finish()
    for s in per_person.segments[before:]:  # still open at the end
        yield {"type": "segment", **s}
    if o.segments:
        atomic_write_text(o.segments, "".join(json.dumps(s) + "\n" for s in segments))
    if o.mot:
        atomic_write_text(o.mot, "".join(mot_rows))
    if o.timeline:
        plot_track_timeline(o.timeline, segments, {i: (p["first"], p["last"]) for i, p in people.items()})
    yield {
        "type": "result",
        "people": [
            {**p, "seen": round(p["last"] - p["first"], 3)} for p in people.values() if p["looks"] > 1
        ],
        "segments": segments,
        "statistics": statistics(segments),
        "found": found,
        **({"files": {"mot": o.mot}} if o.mot else {}),
    }


__all__ = ["check_detect", "detect_session", "person_finder", "tracking_config"]
