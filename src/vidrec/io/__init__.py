"""Video input: PyAV decoding with frame-exact access, streaming, and frame folders."""

from __future__ import annotations

import os

from vidrec.io.flow import FlowReader
from vidrec.io.frames import FrameFolderReader
from vidrec.io.video import VideoInfo, VideoReader, iter_frames, probe, read_frames, read_video


def open_video(path: str | os.PathLike, *, fps: float = 30.0) -> VideoReader | FrameFolderReader | FlowReader:
    """A reader for a video file, a directory of frame images (at `fps`), or stored flow (.npz)."""
    if os.path.isdir(path):
        return FrameFolderReader(path, fps=fps)
    if os.fspath(path).endswith(".npz"):
        return FlowReader(os.fspath(path))
    return VideoReader(path)


__all__ = [
    "FlowReader",
    "FrameFolderReader",
    "VideoInfo",
    "VideoReader",
    "iter_frames",
    "open_video",
    "probe",
    "read_frames",
    "read_video",
]
