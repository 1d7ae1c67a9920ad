"""Live sources through PyAV: a stream URL (RTSP, RTMP, HTTP/HLS, UDP, TCP, SRT), a camera device
(`/dev/video0`, read with v4l2), or `-` for a stream on stdin (MPEG-TS, Matroska, ...).

A thread decodes as the frames arrive. In real-time mode the consumer gets only the newest frame
whenever it asks, and the frames it never asked for are counted as dropped: a slow model falls
behind by at most one frame, so latency stays bounded. Otherwise every frame is kept (a
bounded queue: decoding waits for the model). A source that stops sending for `timeout` seconds
is reported as stalled, never waited on forever; one that ends, ends the iteration.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from vidrec.errors import VideoError
from vidrec.utils import temp_beside

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def is_live_source(source: str) -> bool:
    """Whether `source` names a live source rather than a video file."""
    s = str(source)
    return s == "-" or s.startswith(LIVE_SCHEMES) or s.startswith("/dev/video")


def open_live(source: str, *, timeout: float, options: dict | None = None):
    """The PyAV input container of a live source (`VideoError` when it cannot be opened)."""
    # Start after half a second of probing, not the default 5 MB / 5 s: a live source sends
    # slowly, and the wait is latency.
    options = {"probesize": "65536", "analyzeduration": "500000", **(options or {})}
    try:
        if source == "-":
            return av.open("pipe:0", options=options)  # FFmpeg reads what has come, no 32 KB wait
        if source.startswith("/dev/video"):
            return av.open(source, format="v4l2", options=options)
        if source.startswith("rtsp"):
            options["rtsp_transport"] = "tcp"  # no lost UDP packets on a busy network
        return av.open(source, options=options, timeout=(timeout, timeout))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{source}: cannot open the live source ({e})") from None


def record_live(source: str, out: str, *, seconds: float, timeout: float = 10.0) -> dict:
    """Copy the first `seconds` of a live source's video (and its first audio stream) into `out`
    (Matroska, packets as sent: no re-encoding), written beside and renamed into place, so that
    commands that need a whole video (predict's clip sampling, a highlight reel) can read a live
    source. Ends early when the source ends; a source silent for `timeout` seconds raises
    `VideoError` and leaves no file. Returns `{"seconds", "video_packets", "audio"}`."""
    if seconds <= 0:
        raise VideoError(f"{source}: record a positive number of seconds, not {seconds:g}")
    container = open_live(source, timeout=timeout)
    if not container.streams.video:
        container.close()
        raise VideoError(f"{source}: no video stream in the live source")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    progress: queue.Queue = queue.Queue()
    tmp = temp_beside(out)
    result = {"seconds": 0.0, "video_packets": 0, "audio": audio is not None}

    def copy() -> None:  # in a thread: a demuxer blocked on a silent source cannot be interrupted
        try:
            with av.open(tmp, "w", format="matroska") as sink:
                streams = {video.index: sink.add_stream_from_template(video)}
                if audio is not None:
                    streams[audio.index] = sink.add_stream_from_template(audio)
                start = None
                for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's flush packets
                    if packet.stream.index == video.index and packet.pts is not None:
                        t = float(packet.pts * packet.time_base)
                        start = t if start is None else start
                        if t - start >= seconds:
                            break
                        result["seconds"] = t - start
                        result["video_packets"] += 1
                    packet.stream = streams[packet.stream.index]
                    sink.mux(packet)
                    progress.put(True)
            progress.put(None)
        except (av.FFmpegError, OSError) as e:
            progress.put(e)
        finally:
            container.close()

    threading.Thread(target=copy, daemon=True).start()
    while (item := _next(progress, timeout)) is True:
        pass
    problem = None
    if item is False:
        problem = f"stalled, nothing for {timeout:g} s while recording"
    elif isinstance(item, Exception):
        problem = f"recording failed ({item})"
    elif not result["video_packets"]:
        problem = "the live source ended before sending a frame"
    if problem:
        os.unlink(tmp)
        raise VideoError(f"{source}: {problem}")
    os.replace(tmp, out)
    return result


@contextlib.contextmanager
def as_file(source: str, *, seconds: float, timeout: float = 10.0, keep: str | None = None) -> Iterator[str]:
    """A video file for `source`: a file is itself; a live source is recorded for `seconds`
    (`record_live`) into `keep`, or into a temporary file removed afterwards."""
    source = str(source)
    if not is_live_source(source):
        if keep:
            raise VideoError(f"{source} is a file, not a live source: there is nothing to record")
        yield source
        return
    if keep:
        record_live(source, keep, seconds=seconds, timeout=timeout)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="vidrec-live-") as folder:
        path = os.path.join(folder, "live.mkv")
        record_live(source, path, seconds=seconds, timeout=timeout)
        yield path


def _next(q: queue.Queue, timeout: float):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return False


@dataclass
class LiveFrame:
    """One decoded frame: RGB, its stream time (s), and the wall-clock time it arrived."""

    rgb: np.ndarray
    time: float
    arrived: float


class LiveReader:
    """`frames()` yields `LiveFrame`s as a live source sends them; `stats()` says how it went."""

    def __init__(
        self, source: str, *, realtime: bool = True, timeout: float = 10.0, options: dict | None = None
    ):
        self.source, self.realtime, self.timeout = str(source), realtime, timeout
        self.options = options
        self.decoded = self.dropped = self.taken = 0
        self.latencies: list[float] = []
        self._queue: queue.Queue = queue.Queue(maxsize=1 if realtime else 64)
        self._stop = threading.Event()
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    def _open(self):
        return open_live(self.source, timeout=self.timeout, options=self.options)

    def _decode(self, container) -> None:
        try:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                if self._stop.is_set():
                    return
                item = LiveFrame(frame.to_ndarray(format="rgb24"), float(frame.time or 0.0), time.monotonic())
                self.decoded += 1
                if self.realtime:
                    try:  # keep only the newest: the one waiting is dropped
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
                    self._queue.put_nowait(item)
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except (av.FFmpegError, OSError, IndexError) as e:
            self._error = f"{self.source}: the live source failed ({e})"
        finally:
            container.close()
            self._put_end()

    def _put_end(self) -> None:
        """The end marker, after the frames still queued (real time: in place of the waiting one)."""
        while not self._stop.is_set():
            try:
                self._queue.put(None, timeout=0.2)
                return
            except queue.Full:
                if self.realtime:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def frames(self) -> Iterator[LiveFrame]:
        """Open the source and yield its frames (in real time: the newest each time one is asked
        for); ends with the source, raises `VideoError` when it fails or stalls."""
        container = self._open()
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.source}: no video stream in the live source")
        self._thread = threading.Thread(target=self._decode, args=(container,), daemon=True)
        self._thread.start()
        self.started = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.timeout)
                except queue.Empty:
                    raise VideoError(f"{self.source}: stalled, no frame for {self.timeout:g} s") from None
                if item is None:
                    if self._error:
                        raise VideoError(self._error)
                    return
                self.taken += 1
                yield item
                self.latencies.append(time.monotonic() - item.arrived)  # arrival to the consumer done
        finally:
            self._stop.set()

    def stats(self) -> dict:
        """Frames decoded, taken by the consumer and dropped (newer ones came while it was busy),
        input frames/s, and the latency from a frame's arrival to the end of its processing
        (median and worst, seconds)."""
        elapsed = max(time.monotonic() - getattr(self, "started", time.monotonic()), 1e-9)
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        return {
            "decoded": self.decoded,
            "taken": self.taken,
            "dropped": self.dropped,
            "input_fps": round(self.decoded / elapsed, 2),
            "latency_median_s": round(float(np.median(lat)), 3),
            "latency_max_s": round(float(lat.max()), 3),
        }


def sample_live(reader: LiveReader, fps: float | None) -> Iterator[tuple[float, LiveFrame, bool]]:
    """`(seconds since the first frame, frame, looked at)` for each frame taken from `reader`:
    looked at when it is the first at or after each tick of an `fps` clock (every frame when
    `fps` is None), so a live source is sampled like a file by its timestamps."""
    start = next_tick = None
    for f in reader.frames():
        start = f.time if start is None else start
        t = f.time - start
        look = not fps or next_tick is None or t >= next_tick - 1e-6
        if look and fps:
            next_tick = t + 1.0 / fps
        yield t, f, look


__all__ = [
    "LIVE_SCHEMES",
    "LiveFrame",
    "LiveReader",
    "as_file",
    "is_live_source",
    "open_live",
    "record_live",
    "sample_live",
]
