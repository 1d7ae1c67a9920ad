"""Highlight reels: the best segments of some labels, padded, merged where they overlap, and cut
from the source into one MP4 with its audio, re-encoded so every cut is frame-exact (a stream copy
could only cut at keyframes)."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import av
import numpy as np

from vidrec.errors import ConfigError
from vidrec.timeline.segments import ScoreTimeline
from vidrec.utils import atomic_write, atomic_write_text


def choose(
    segments: list[dict], *, labels: list[str] | None, top: int, pad: float, duration: float
) -> list[tuple[float, float]]:
    """The `top` segments by peak among `labels` (all when None), each widened by `pad` seconds
    within [0, duration], merged where they touch, in time order."""
    wanted = [s for s in segments if labels is None or s["label"] in labels]
    if not wanted:
        raise ConfigError(f"no segments{' of ' + ', '.join(labels) if labels else ''} to make a reel of")
    best = sorted(wanted, key=lambda s: -s["peak"])[:top]
    spans = sorted((max(0.0, s["start"] - pad), min(duration, s["end"] + pad)) for s in best)
    merged = [list(spans[0])]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(round(a, 3), round(b, 3)) for a, b in merged]


def _in_spans(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(a <= t < b for a, b in spans)


def cut_reel(source: str | os.PathLike, spans: list[tuple[float, float]], out: str | os.PathLike) -> dict:
    """Write the `spans` (seconds) of `source` back to back as an H.264 (+ AAC audio) MP4,
    atomically. Returns `{"frames", "seconds", "audio"}` of the reel."""
    source, out = os.fspath(source), os.fspath(out)
    stats = {}

    def write(tmp: str) -> None:
        with av.open(source) as inp, av.open(tmp, "w", format="mp4") as dst:
            vin = inp.streams.video[0]
            ain = inp.streams.audio[0] if inp.streams.audio else None
            fps = vin.average_rate or Fraction(25)
            vout = dst.add_stream("libx264", rate=fps)
            vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
            vout.pix_fmt, vout.options = "yuv420p", {"crf": "20"}
            aout = resample = None
            if ain is not None:
                rate = ain.codec_context.sample_rate
                aout = dst.add_stream("aac", rate=rate)
                layout = ain.codec_context.layout.name if ain.codec_context.layout else "stereo"
                resample = av.AudioResampler(format="fltp", layout=layout, rate=rate)  # what AAC takes
            frames = samples = 0
            for start, end in spans:
                inp.seek(int(max(0.0, start - 0.5) / vin.time_base), stream=vin)  # a keyframe before
                streams = [vin] + ([ain] if ain is not None else [])
                done = {s.index: False for s in streams}
                for packet in inp.demux(*streams):
                    if all(done.values()):
                        break
                    for frame in packet.decode():
                        if frame.time is None or frame.time >= end:
                            done[packet.stream.index] = frame.time is not None and frame.time >= end
                            continue
                        if frame.time < start:
                            continue
                        if packet.stream.type == "video":
                            rgb = frame.to_ndarray(format="rgb24")[: vout.height, : vout.width]
                            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                            new.pts, new.time_base = frames, Fraction(1, 1) / fps
                            dst.mux(vout.encode(new))
                            frames += 1
                        else:
                            for part in resample.resample(frame):
                                part.pts, part.time_base = samples, Fraction(1, part.sample_rate)
                                samples += part.samples
                                dst.mux(aout.encode(part))
            dst.mux(vout.encode())
            if aout is not None:
                dst.mux(aout.encode())
            stats.update(frames=frames, seconds=round(frames / float(fps), 3), audio=aout is not None)

    atomic_write(out, write)
    if not stats.get("frames"):
        os.remove(out)
        raise ConfigError(f"{source}: the chosen segments hold no frames")
    return stats


def make_reel(
    source: str | os.PathLike,
    timeline: ScoreTimeline,
    out: str | os.PathLike,
    *,
    labels: list[str] | None,
    top: int,
    pad: float,
    duration: float,
) -> dict:
    """The reel of `source`'s best segments in `timeline` (`choose`, then `cut_reel` into `out`),
    with OUT.segments.jsonl (every segment) and OUT.timeline.png beside it. Returns the reel's
    `{"frames", "seconds", "audio", "spans", "segments"}` (segments: the reel's, of `labels`) and
    the two files' paths."""
    out = os.fspath(out)
    stem = os.path.splitext(out)[0]
    segments = timeline.segments
    atomic_write_text(stem + ".segments.jsonl", "".join(json.dumps(s) + "\n" for s in segments))
    timeline.plot(stem + ".timeline.png")
    spans = choose(segments, labels=labels, top=top, pad=pad, duration=duration)
    reel = cut_reel(source, spans, out)
    chosen = [s for s in segments if any(a <= s["start"] and s["end"] <= b for a, b in spans)]
    chosen = [s for s in chosen if labels is None or s["label"] in labels]
    return {
        **reel,
        "spans": spans,
        "segments": chosen,
        "segments_file": stem + ".segments.jsonl",
        "timeline_file": stem + ".timeline.png",
    }


def event_reel(
    source: str | os.PathLike,
    events: list,
    out: str | os.PathLike,
    *,
    labels: list[str] | None,
    top: int,
    pad: float,
    duration: float,
) -> dict:
    """The reel of `source` around its `top` most confident events (`vidrec.io.events.Event`s, of
    `labels`), `pad` seconds on each side, merged where they overlap. Returns the reel's
    `{"frames", "seconds", "audio", "spans", "events"}` (the events inside the reel)."""
    moments = [
        {
            "label": e.label,
            "start": e.time,
            "end": e.time,
            "peak": 1.0 if e.confidence is None else e.confidence,
        }
        for e in events
        if labels is None or e.label in labels
    ]
    spans = choose(moments, labels=labels, top=top, pad=pad, duration=duration)
    reel = cut_reel(source, spans, out)
    inside = [
        {"time": m["start"], "label": m["label"], "confidence": m["peak"]}
        for m in moments
        if _in_spans(m["start"], spans)
    ]
    return {**reel, "spans": spans, "events": inside}


__all__ = ["choose", "cut_reel", "event_reel", "make_reel"]
