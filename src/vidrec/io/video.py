"""Frame-exact video decoding with PyAV.

A video is indexed once by demuxing its packets (cheap: no decoding). The index gives the true
frame count, each frame's presentation time (so variable frame rate is handled by indexing frames
in presentation order) and the keyframes to seek to. `VideoReader.get_frames(indices)` then seeks
to the keyframe before each wanted frame and decodes forward, in one pass over sorted indices; when
a seek lands after the wanted frame, or timestamps are missing, it falls back to sequential
decoding from the start. Frames are RGB uint8 `(H, W, 3)`, rotated as the display matrix says.

Some files store timestamps the decoder disagrees with (a remux that rewrote B-frames' composition
offsets: frames come out with times 0, 101000, 67000, ...). Indexing decodes the first frames to
check; where they disagree, frame k is what decoders and users call frame k, the k-th frame the
decoder outputs, counted by decoding the whole file once.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidrec.errors import VideoError

# What a folder of videos is searched for (and what a name's extension says is a video).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")

# FFmpeg happily "decodes" a text file as a picture of its characters; these are never videos.
_NOT_VIDEO_FORMATS = {"tty"}


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video, and where each figure came from.

    Headers are often wrong (durations of the audio track, frame counts of an edited file), so the
    frame count, fps and duration come from the packet index when it is usable (`*_source` says
    "packets"), and from the header only when demuxing cannot tell ("header").
    """

    path: str
    width: int  # displayed width, after rotation
    height: int  # displayed height, after rotation
    num_frames: int
    fps: float  # frames per second measured from presentation times (or the header's)
    duration: float  # seconds, first frame shown to last frame ended
    time_base: Fraction  # unit of the stream's timestamps
    rotation: int  # degrees counter-clockwise applied to decoded frames to display them
    codec: str
    pix_fmt: str | None
    has_audio: bool
    num_frames_source: str  # "packets" | "decoded" | "header"
    fps_source: str  # "timestamps" | "header"
    header_num_frames: int | None
    header_fps: float | None
    header_duration: float | None

    def to_dict(self) -> dict:
        """The facts as JSON-ready values."""
        d = dict(self.__dict__)
        d["time_base"] = str(self.time_base)
        return d


@dataclass(frozen=True)
class _FrameIndex:
    """Packet-derived index of one video stream."""

    pts: np.ndarray  # (N,) int64 presentation timestamps, sorted: frame i has pts[i]
    keyframes: np.ndarray  # (K,) int64 frame indices of keyframes, sorted
    seekable: bool  # timestamps present and unique: seeking by pts can be trusted
    rotation: int  # display rotation, degrees counter-clockwise (from the first frame's matrix)
    counted_by_decoding: bool = False  # timestamps missing or wrong: frames were counted by decoding
    slices: int = 1  # H.264 slices in the first keyframe (encoders with slice threads write several)
    pix_fmt: str | None = None  # the first decoded frame's pixel format
    coded_size: tuple[int, int] = (0, 0)  # the first decoded frame's width, height (before rotation)


def _h264_slices(packet: bytes, extradata: bytes | None) -> int:
    """Coded slices (NAL units of type 1 or 5) in one H.264 access unit: length-prefixed (avcC,
    as MP4 and Matroska store it) or with start codes (Annex B, as MPEG-TS does)."""
    if extradata and extradata[0] == 1:  # avcC: each NAL unit after a big-endian length
        size, i, count = (extradata[4] & 3) + 1, 0, 0
        while i + size < len(packet):
            length = int.from_bytes(packet[i : i + size], "big")
            count += packet[i + size] & 31 in (1, 5)
            i += size + length
        return count
    count, m = 0, packet.find(b"\x00\x00\x01")
    while 0 <= m < len(packet) - 3:
        count += packet[m + 3] & 31 in (1, 5)
        m = packet.find(b"\x00\x00\x01", m + 3)
    return count


CHECKED_FRAMES = 16  # frames decoded at indexing to check the stored timestamps against the decoder


def _decoder_agrees(decoded: list, packet_pts: set) -> bool:
    """Decoded presentation times must increase and be packets' times (a corrupt frame may be
    missing: that leaves a gap, not a disagreement)."""
    return all(p is not None and p in packet_pts for p in decoded) and all(
        a < b for a, b in zip(decoded, decoded[1:])
    )


_PROBE = {"skip_frame": "nonkey"}
_PROBED_STREAMS = 16  # streams past these are probed in full


def _open_container(path: str, *, full_probe: bool = False) -> av.container.InputContainer:
    """`path` opened, with a one-line VideoError for anything that is not a readable video.

    Unless `full_probe`, FFmpeg's stream probe decodes no frames (its own decoder skips all but
    keyframes, and then stops at the headers): it otherwise decodes up to a dozen frames of a file
    with B-frames only to learn the pixel format, 34 ms per 720p file opened, more than a whole
    clip's decoding (bench/decode.py). The decoder vidrec reads with is a fresh one made from the
    headers: the same frames, bit for bit (tests/test_io.py). What only the full probe gives (the
    pixel format, and the display rotation on decoded frames) is read once per file, by the index."""
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        try:
            options = None if full_probe else [_PROBE] * _PROBED_STREAMS
            container = av.open(path, metadata_errors="ignore", stream_options=options)
        except ValueError:  # a format whose streams appear only while probing (MPEG-TS): in full
            container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: cannot open as a video ({_reason(e)})") from None
    if container.format.name in _NOT_VIDEO_FORMATS:
        container.close()
        raise VideoError(f"{path}: not a video file (looks like text)")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoError(f"{path}: no video stream (has {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoError(f"{path}: unsupported video codec")
    return container


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


def _rewind(container: av.container.InputContainer, path: str) -> av.container.InputContainer:
    """Back to the start; raw streams cannot seek, so those are opened again."""
    try:
        container.seek(0)
        return container
    except av.FFmpegError:
        container.close()
        return _open_container(path, full_probe=True)


def _decoded_frames(
    container: av.container.InputContainer, errors: list | None = None, keep: frozenset | None = None
) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, skipping packets the decoder rejects (corrupt data) and stopping
    where the demuxer gives up (a truncated file); each failure is appended to `errors`.

    With `keep` (the presentation times wanted), a packet of another time is decoded only if
    later frames refer to it: the decoder skips non-reference frames (`skip_frame = NONREF`,
    set per packet; frame threads copy it as each packet is submitted), so no wanted frame and
    no frame a wanted one depends on is ever dropped."""
    context = container.streams.video[0].codec_context
    context.skip_frame = "DEFAULT"  # a pass that skipped before leaves its last setting behind
    try:
        for packet in container.demux(container.streams.video[0]):
            if keep is not None:
                context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in keep else "NONREF"
            try:
                yield from packet.decode()
            except av.FFmpegError as e:
                if errors is not None:
                    errors.append(e)
    except av.FFmpegError as e:
        if errors is not None:
            errors.append(e)


def _build_index(path: str) -> _FrameIndex:
    container = _open_container(path, full_probe=True)
    try:
        pts, keys, slices = [], [], 1
        context = container.streams.video[0].codec_context
        try:
            for packet in container.demux(container.streams.video[0]):
                if packet.size == 0:  # the flush packet at the end
                    continue
                if not pts and context.name == "h264":
                    slices = max(1, _h264_slices(bytes(packet), context.extradata))
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                keys.append(packet.is_keyframe)
        except av.FFmpegError:
            pass  # a truncated file: index what could be read
        container = _rewind(container, path)
        frames = _decoded_frames(container)
        # The display rotation is side data on decoded frames; the first frames also show whether
        # the decoder agrees with the stored timestamps.
        head = [f for _, f in zip(range(CHECKED_FRAMES), frames)]
        rotation = int(round(head[0].rotation or 0)) % 360 if head else 0
        pix_fmt = head[0].format.name if head else None
        size = (head[0].width, head[0].height) if head else (0, 0)
        if not pts or any(t is None for t in pts) or not _decoder_agrees([f.pts for f in head], set(pts)):
            n = len(head) + sum(1 for _ in frames)  # frame k = the k-th frame out of the decoder
            return _FrameIndex(
                np.arange(n, dtype=np.int64),
                np.zeros(1, np.int64),
                False,
                rotation,
                True,
                slices,
                pix_fmt,
                size,
            )
    finally:
        container.close()
    pts_arr = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts_arr, kind="stable")
    sorted_pts = pts_arr[order]
    key_flags = np.asarray(keys, dtype=bool)[order]
    unique = len(np.unique(sorted_pts)) == len(sorted_pts)
    keyframes = np.flatnonzero(key_flags)
    if len(keyframes) == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes])
    return _FrameIndex(
        sorted_pts,
        keyframes.astype(np.int64),
        unique,
        rotation,
        slices=slices,
        pix_fmt=pix_fmt,
        coded_size=size,
    )


@functools.lru_cache(maxsize=4096)
def _cached_index(path: str, mtime_ns: int, size: int) -> _FrameIndex:
    return _build_index(path)


class VideoReader:
    """Random and sequential access to the frames of one video file.

    >>> with VideoReader("clip.mp4") as video:
    ...     clip = video.get_frames([0, 4, 8, 12])  # (4, H, W, 3) uint8
    """

    # FFmpeg's decoder threads; None: slice threads for sliced H.264, else "AUTO" (frame threads)
    thread_type: str | None = None
    skip_unwanted = True  # get_frames: skip non-reference frames that were not asked for
    full_probe = False  # FFmpeg's stream probe decoding frames at open (see _open_container)

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._container = _open_container(self.path, full_probe=self.full_probe)
        st = os.stat(self.path)
        self._index = _cached_index(self.path, st.st_mtime_ns, st.st_size)
        self._stream = self._container.streams.video[0]
        # Slice threads decode a frame's slices at once, with no frame pipeline to fill after
        # each seek (bench/decode.py times both). One slice: frame threads.
        chosen = "SLICE" if self._index.slices > 1 else "AUTO"
        self._stream.thread_type = self.thread_type or chosen
        # One YUV -> RGB converter per open file: `frame.to_ndarray(format=)` builds a new swscale
        # context for every frame, 5-8 ms even for a 64x64 frame (PyAV 18 here: 8.3 ms against
        # 0.07 ms per 64x64 frame; 6.8 against 1.4 ms at 960x480). Not shared between files: a
        # converter inherited by forked DataLoader workers hung them.
        self._converter = VideoReformatter()
        self.decode_errors: list[Exception] = []  # what the decoder rejected (corrupt data)
        if len(self._index.pts) == 0:
            self.close()
            raise VideoError(f"{self.path}: no decodable video frames")
        self._pts_to_index = {int(p): i for i, p in enumerate(self._index.pts)}
        self._rotation = self._index.rotation
        self.info = self._make_info()

    # -- set-up -------------------------------------------------------------------------------
    def _make_info(self) -> VideoInfo:
        s, idx = self._stream, self._index
        tb = Fraction(s.time_base) if s.time_base else Fraction(1, 1)
        header_fps = float(s.average_rate) if s.average_rate else None
        header_frames = int(s.frames) or None
        if s.duration is not None:
            header_duration = float(s.duration * tb)
        elif self._container.duration is not None:
            header_duration = self._container.duration / av.time_base
        else:
            header_duration = None
        n = len(idx.pts)
        if idx.seekable and n > 1 and idx.pts[-1] > idx.pts[0]:
            fps = float((n - 1) / ((idx.pts[-1] - idx.pts[0]) * tb))
            fps_source = "timestamps"
        else:
            fps, fps_source = header_fps or 30.0, "header"
        duration = n / fps
        # Some headers leave the size to the decoder (MPEG-4 Part 2 in MP4 opened without probing):
        # then the first decoded frame's.
        w, h = s.codec_context.width or idx.coded_size[0], s.codec_context.height or idx.coded_size[1]
        if self._rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=self.path,
            width=w,
            height=h,
            num_frames=n,
            fps=fps,
            duration=duration,
            time_base=tb,
            rotation=self._rotation,
            codec=s.codec_context.name,
            pix_fmt=s.codec_context.pix_fmt or idx.pix_fmt,
            has_audio=bool(self._container.streams.audio),
            num_frames_source="decoded" if idx.counted_by_decoding else "packets",
            fps_source=fps_source,
            header_num_frames=header_frames,
            header_fps=header_fps,
            header_duration=header_duration,
        )

    # -- public API ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.info.num_frames

    @property
    def timestamps(self) -> np.ndarray:
        """(N,) float64 presentation time of each frame in seconds, from the first frame."""
        if not self._index.seekable:
            return np.arange(len(self)) / self.info.fps
        return ((self._index.pts - self._index.pts[0]) * float(self.info.time_base)).astype(np.float64)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Exactly the frames at `indices` (any order, repeats allowed): `(N, H, W, 3)` uint8."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise VideoError(f"{self.path}: frame {bad} out of range (video has {n} frames)")
        wanted = np.unique(idx)
        decoded = self._decode(wanted)
        missing = [int(i) for i in wanted if int(i) not in decoded]
        if missing:
            raise VideoError(
                f"{self.path}: {len(missing)} requested frame(s) could not be decoded "
                f"(corrupt stream), first is frame {missing[0]}"
            )
        if len(idx) == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), np.uint8)
        return np.stack([decoded[int(i)] for i in idx])

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Yield frames `start, start+step, ...` one at a time: memory stays bounded."""
        stop = len(self) if stop is None else min(stop, len(self))
        if step < 1:
            raise VideoError(f"step must be >= 1, got {step}")
        wanted = start  # the next frame index to yield
        try:
            source = (
                self._frames_from(start) if self._index.seekable and start > 0 else self._sequential_frames()
            )
            for i, frame in source:
                if i >= stop:
                    return
                if i >= wanted and (i - start) % step == 0:
                    wanted = i + 1
                    yield self._to_rgb(frame)
        except _SeekUnreliable:
            for i, frame in self._sequential_frames(strict=False):
                if i >= stop:
                    return
                if i >= wanted and (i - start) % step == 0:
                    yield self._to_rgb(frame)

    def indexed_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Every decodable frame in order with its index, `(i, (H, W, 3) uint8)`: one pass, bounded
        memory; a corrupt frame leaves a gap in the indices instead of shifting the rest."""
        for i, frame in self._sequential_frames(strict=False):
            yield i, self._to_rgb(frame)

    def close(self) -> None:
        """Close the file."""
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- decoding -----------------------------------------------------------------------------
    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = self._converter.reformat(frame, format="rgb24").to_ndarray()
        if self._rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=self._rotation // 90))
        return rgb

    def _indexed(
        self, frames: Iterator[av.VideoFrame], *, strict: bool
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Give each decoded frame its index: by presentation time when the index has them (so a
        corrupt frame leaves a gap instead of shifting the rest), else by counting. A time that is
        not the index's, or goes backwards, is a decoder disagreeing with the stored times: a
        seeking pass gives up (`strict`), a sequential one counts from there."""
        last = -1
        for frame in frames:
            i = self._pts_to_index.get(frame.pts) if self._index.seekable and frame.pts is not None else None
            if i is None or i <= last:
                if strict and self._index.seekable:
                    raise _SeekUnreliable
                i = last + 1
            last = i
            yield i, frame

    def _sequential_frames(self, *, strict: bool = True) -> Iterator[tuple[int, av.VideoFrame]]:
        self._container = _rewind(self._container, self.path)
        self._stream = self._container.streams.video[0]
        yield from self._indexed(_decoded_frames(self._container, self.decode_errors), strict=strict)

    def _frames_from(self, target: int, keep: frozenset | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to the keyframe at or before `target`, then yield (index, frame) in order (with
        `keep`, the presentation times wanted: other frames only as far as references need)."""
        k = self._index.keyframes[np.searchsorted(self._index.keyframes, target, side="right") - 1]
        self._container.seek(int(self._index.pts[k]), stream=self._stream, backward=True, any_frame=False)
        yield from self._indexed(_decoded_frames(self._container, self.decode_errors, keep), strict=True)

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        if not self._index.seekable:
            return self._decode_sequential(wanted)
        errors = len(self.decode_errors)
        try:
            out = self._decode_seeking(wanted, skip=self.skip_unwanted)
            if len(self.decode_errors) == errors or not self.skip_unwanted:
                return out
            # Corrupt data on the way: the decoder conceals it from the frames it last decoded,
            # skipped ones included, so decode again without skipping to give what a full
            # decode gives.
            del self.decode_errors[errors:]
            return self._decode_seeking(wanted, skip=False)
        except _SeekUnreliable:
            return self._decode_sequential(wanted)

    def _passes(self, todo: list[int]) -> list[list[int]]:
        """Sorted targets in decoding passes: a new pass (a seek) where a keyframe lies between one
        target and the next; each pass decodes forward from its keyframe."""
        keys, passes = self._index.keyframes, []
        for t in todo:
            key = int(keys[np.searchsorted(keys, t, side="right") - 1])
            if not passes or key > passes[-1][-1]:
                passes.append([t])
            else:
                passes[-1].append(t)
        return passes

    def _pass(self, targets: list[int], keep: frozenset | None) -> dict[int, np.ndarray]:
        """Decode one pass: seek before its first target, then forward to its last."""
        out: dict[int, np.ndarray] = {}
        remaining, first = set(targets), True
        for i, frame in self._frames_from(targets[0], keep):
            if first and i > targets[0]:
                raise _SeekUnreliable  # the seek landed after the target
            first = False
            if i in remaining:
                out[i] = self._to_rgb(frame)
                remaining.discard(i)
            if i >= targets[-1] or not remaining:
                break
        return out

    def _decode_seeking(self, wanted: np.ndarray, *, skip: bool) -> dict[int, np.ndarray]:
        """The wanted frames by seeking passes (`skip`: non-reference frames that are not wanted
        are not decoded). Running passes in threads on containers of their own was measured
        too: at most 1.14x, slower on sliced streams, whose slice threads already fill the cores."""
        passes = self._passes(sorted(int(x) for x in wanted))
        keep = frozenset(int(self._index.pts[i]) for p in passes for i in p) if skip else None
        return {i: f for p in passes for i, f in self._pass(p, keep).items()}

    def _decode_sequential(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        todo = set(int(x) for x in wanted)
        stop = max(todo) if todo else -1
        # No skipping here: this pass may count frames (times missing or not to be trusted), and a
        # skipped frame would shift the count.
        for i, frame in self._sequential_frames(strict=False):
            if i in todo:
                out[i] = self._to_rgb(frame)
            if i >= stop:
                break
        return out


def read_ahead(items: Iterable, depth: int = 2) -> Iterator:
    """`items` in order, made by a thread of their own up to `depth` ahead, so that decoding the
    next frames (FFmpeg and the colour conversion release the GIL) overlaps the work on this one.
    An error while making them is raised here, where the item would have come; closing this
    iterator stops the thread and closes `items` (a reader's file with it)."""
    done = object()
    out: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                out.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put((done, e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=make, daemon=True, name="vidrec-read-ahead")
    thread.start()
    try:
        while True:
            item, error = out.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class _SeekUnreliable(Exception):
    """Seeking gave frames that do not match the index: decode sequentially instead."""


def probe(path: str | os.PathLike) -> VideoInfo:
    """Metadata of a video (frame count and fps from its packets, not its header)."""
    with VideoReader(path) as video:
        return video.info


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Exactly the frames at `indices` of the video at `path`: `(N, H, W, 3)` uint8 RGB."""
    with VideoReader(path) as video:
        return video.get_frames(indices)


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a video: `(T, H, W, 3)` uint8 RGB. Prefer `iter_frames` for long videos."""
    with VideoReader(path) as video:
        return np.stack(list(video.iter_frames()))


def iter_frames(
    path: str | os.PathLike, *, start: int = 0, stop: int | None = None, step: int = 1
) -> Iterator[np.ndarray]:
    """Stream frames of a (long) video with bounded memory."""
    with VideoReader(path) as video:
        yield from video.iter_frames(start, stop, step)
