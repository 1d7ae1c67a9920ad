"""Events in time (a serve, a shot, a goal): read and written as SoccerNet lays them out, and as CSV.

    SoccerNet ground truth   GAME/Labels-v2.json         {"annotations": [{"gameTime": "1 - 05:23",
                                                           "label", "position": "323400" (ms),
                                                           "team", "visibility"}]}
    SoccerNet predictions    GAME/results_spotting.json  {"predictions": [{"gameTime", "label",
                                                           "position", "half", "confidence"}]}
    CSV                      video,time,label[,track]    time in seconds; a header row may name the
                                                           columns (video, time, label, confidence,
                                                           track, team, half) in any order

A file's events belong to one video (SoccerNet's game): the JSON's "UrlLocal", else the name of
the folder holding it. A folder of such files (SoccerNet's `league/season/game/Labels-v2.json`)
gives each file's folder, relative to it, as the video. SoccerNet positions are milliseconds from
the start of the half; a plain video is one half.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass

from vidrec.errors import ConfigError
from vidrec.utils import atomic_write_text

LABELS_FILE = "Labels-v2.json"
PREDICTIONS_FILE = "results_spotting.json"
CSV_COLUMNS = ("video", "time", "label", "confidence", "track", "team", "half")


@dataclass(frozen=True)
class Event:
    """One event: where (video, half), when (seconds), what, and how sure (predictions only)."""

    video: str  # the video (SoccerNet: the game's folder) it happens in
    time: float  # seconds from the start of the video (SoccerNet: of the half)
    label: str
    confidence: float | None = None  # a prediction's score; None for ground truth
    half: int = 1  # SoccerNet's half (1 or 2); 1 for any other video
    team: str | None = None  # SoccerNet's "home" / "away" (None: not given)
    track: int | None = None  # the person it belongs to (vidrec's track ids)
    visible: bool = True  # SoccerNet's visibility: False for "not shown" (seen only in a replay)


def _number(value, what: str, path: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{path}: {what} {value!r} is not finite")
    return number


def _json_video(data: dict, path: str) -> str:
    url = str(data.get("UrlLocal") or "").strip("/")
    return url or os.path.basename(os.path.dirname(os.path.abspath(path)))


def _half_of(item: dict, path: str) -> int:
    """The half of a SoccerNet item: its "half", else gameTime's leading digit ("2 - 12:30")."""
    if "half" in item:
        return int(_number(item["half"], "half", path))
    game_time = str(item.get("gameTime", "1"))
    return int(_number(game_time.split("-")[0].strip() or "1", "gameTime", path))


def _position_seconds(item: dict, path: str) -> float:
    """Seconds into the half: "position" (ms), else gameTime's mm:ss (SoccerNet v1's precision)."""
    if "position" in item:
        return _number(item["position"], "position", path) / 1000.0
    game_time = str(item.get("gameTime", ""))
    try:
        minutes, seconds = game_time.split("-")[-1].strip().split(":")
        return 60.0 * int(minutes) + int(seconds)
    except ValueError:
        raise ConfigError(f"{path}: an event has neither position nor a gameTime like '1 - 05:23'") from None


def read_soccernet_json(path: str, *, video: str | None = None) -> list[Event]:
    """The events of one Labels-v2.json (annotations) or results_spotting.json (predictions)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not ({"annotations", "predictions"} & set(data)):
        raise ConfigError(f"{path}: neither SoccerNet labels ('annotations') nor predictions ('predictions')")
    video = video if video is not None else _json_video(data, path)
    predictions = "predictions" in data
    events = []
    for item in data["predictions" if predictions else "annotations"]:
        if "label" not in item:
            raise ConfigError(f"{path}: an event without a label: {json.dumps(item)[:80]}")
        team = item.get("team")
        events.append(
            Event(
                video=video,
                time=_position_seconds(item, path),
                label=str(item["label"]),
                confidence=_number(item.get("confidence", 1.0), "confidence", path) if predictions else None,
                half=_half_of(item, path),
                team=None if team in (None, "", "not applicable") else str(team),
                track=int(_number(item["track"], "track", path)) if "track" in item else None,
                visible=item.get("visibility", "visible") != "not shown",
            )
        )
    return events


def read_events_csv(path: str) -> list[Event]:
    """`video,time,label[,track]` rows, or any of CSV_COLUMNS named by a header row."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if {"video", "time", "label"} <= set(header):
        unknown = sorted(set(header) - set(CSV_COLUMNS))
        if unknown:
            raise ConfigError(f"{path}: unknown column {unknown[0]!r} (columns: {', '.join(CSV_COLUMNS)})")
        names, rows = header, rows[1:]
    else:
        names = ["video", "time", "label", "track"]
    events = []
    for line, row in enumerate(rows, start=2 if names is header else 1):
        if len(row) < 3 or len(row) > len(names):
            raise ConfigError(f"{path}:{line}: expected {', '.join(names)}, got {len(row)} columns")
        cell = {k: v for k, v in zip(names, (c.strip() for c in row)) if v}
        where = f"{path}:{line}"
        if not {"video", "time", "label"} <= set(cell):
            raise ConfigError(f"{where}: video, time and label must not be empty")
        events.append(
            Event(
                video=cell["video"],
                time=_number(cell["time"], "time", where),
                label=cell["label"],
                confidence=_number(cell["confidence"], "confidence", where) if "confidence" in cell else None,
                half=int(_number(cell["half"], "half", where)) if "half" in cell else 1,
                team=cell.get("team"),
                track=int(_number(cell["track"], "track", where)) if "track" in cell else None,
            )
        )
    return events


def read_events(path: str) -> list[Event]:
    """Events from a CSV, one SoccerNet JSON, or a folder of them (each file's folder its video)."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        events = []
        found = False
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                if name.endswith(".json"):
                    found = True
                    game = os.path.relpath(root, path).replace(os.sep, "/")
                    video = game if game != "." else None  # a file at the top: its own UrlLocal
                    events += read_soccernet_json(os.path.join(root, name), video=video)
        if not found:
            raise ConfigError(f"{path}: no SoccerNet .json files in this folder")
        return events
    if path.lower().endswith(".json"):
        return read_soccernet_json(path)
    return read_events_csv(path)


def _game_time(event: Event) -> str:
    seconds = int(event.time)
    return f"{event.half} - {seconds // 60:02d}:{seconds % 60:02d}"


def soccernet_json(events: list[Event], *, video: str, predictions: bool | None = None) -> dict:
    """One video's events as SoccerNet writes them: predictions when they have confidences (or
    when `predictions` says so: a video where nothing was found)."""
    if predictions is None:
        predictions = any(e.confidence is not None for e in events)
    items = []
    for e in sorted(events, key=lambda e: (e.half, e.time)):
        item = {"gameTime": _game_time(e), "label": e.label, "position": str(round(e.time * 1000))}
        if predictions:
            item.update(half=str(e.half), confidence=str(1.0 if e.confidence is None else e.confidence))
        else:
            item.update(team=e.team or "not applicable", visibility="visible" if e.visible else "not shown")
        if e.track is not None:
            item["track"] = e.track
        items.append(item)
    return {"UrlLocal": video, "predictions" if predictions else "annotations": items}


def write_events(
    events: list[Event], path: str, *, video: str | None = None, videos: list[str] | None = None
) -> list[str]:
    """Write `events`: a .csv file (every video), a .json file (one video's), or a folder with
    VIDEO/results_spotting.json (or Labels-v2.json for ground truth) per video; `videos` adds files
    for videos without events (so they are scored). Returns the paths."""
    if path.lower().endswith(".csv"):
        halves = any(e.half != 1 for e in events)  # a plain video's events need no half column
        lines = ["video,time,label,confidence,track" + (",half" if halves else "")]
        for e in sorted(events, key=lambda e: (e.video, e.half, e.time)):
            confidence = "" if e.confidence is None else f"{e.confidence:.6g}"
            track = "" if e.track is None else str(e.track)
            row = f"{_csv_cell(e.video)},{e.time:.3f},{_csv_cell(e.label)},{confidence},{track}"
            lines.append(row + (f",{e.half}" if halves else ""))
        atomic_write_text(path, "\n".join(lines) + "\n")
        return [path]
    videos = sorted({e.video for e in events} | set(videos or ())) or ([video] if video else [])
    if path.lower().endswith(".json"):
        if len(videos) > 1:
            raise ConfigError(f"{path}: events of {len(videos)} videos; give a folder or a .csv")
        name = video or (videos[0] if videos else "")
        atomic_write_text(path, json.dumps(soccernet_json(events, video=name), indent=1) + "\n")
        return [path]
    written = []
    for name in videos:
        mine = [e for e in events if e.video == name]
        predictions = any(e.confidence is not None for e in events)
        kind = PREDICTIONS_FILE if predictions else LABELS_FILE
        target = os.path.join(path, name, kind)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        text = json.dumps(soccernet_json(mine, video=name, predictions=predictions), indent=1)
        atomic_write_text(target, text + "\n")
        written.append(target)
    return written


def _csv_cell(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


__all__ = [
    "CSV_COLUMNS",
    "LABELS_FILE",
    "PREDICTIONS_FILE",
    "Event",
    "read_events",
    "read_events_csv",
    "read_soccernet_json",
    "soccernet_json",
    "write_events",
]
