"""Video input: PyAV decoding with frame-exact access, streaming, and frame folders."""

from __future__ import annotations

import os

from vidrec.io.frames import FrameFolderReader
from vidrec.io.video import VideoInfo, VideoReader, iter_frames, probe, read_frames, read_video


def open_video(path: str | os.PathLike, *, fps: float = 30.0) -> VideoReader | FrameFolderReader:
    """A reader for a video file, or for a directory of frame images (at `fps`)."""
    if os.path.isdir(path):
        return FrameFolderReader(path, fps=fps)
    return VideoReader(path)


__all__ = [
    "FrameFolderReader", "VideoInfo", "VideoReader", "iter_frames", "open_video", "probe",
    "read_frames", "read_video",
]
