"""Decoded frames kept on disk, so that many epochs over small videos read them instead of
decoding them again (masked pretraining runs hundreds of epochs over the same clips).

`DecodedCache(directory).open(path)` gives a reader with the API of `VideoReader` (`len`,
`timestamps`, `get_frames`, a context manager). The first open of a video decodes every frame
with the reader `open_video` picks and writes them, uint8 `(N, H, W, 3)`, as one `.npy` beside a
`.json` of its timestamps, each written atomically; later opens memory-map the `.npy`, in any
process. A video's entry is keyed by its absolute path, size and modification time, so an edited
video is decoded again. Several DataLoader workers may fill the cache at once: the last rename
wins and every entry is complete."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from vidrec.errors import VideoError
from vidrec.utils import atomic_write, atomic_write_text


class CachedVideo:
    """The frames of one cached video, memory-mapped; the reader API of `VideoReader`."""

    def __init__(self, path: str, frames: np.ndarray, timestamps: np.ndarray):
        self.path, self._frames, self.timestamps = path, frames, timestamps

    def __len__(self) -> int:
        return len(self._frames)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The frames at `indices`: `(N, H, W, 3)` uint8 RGB (a copy, not the mapped file)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise VideoError(f"{self.path}: frame index out of range (video has {len(self)} frames)")
        return np.ascontiguousarray(self._frames[idx])

    def close(self) -> None:
        """Drop the mapping (the file is unmapped once nothing else refers to it)."""
        self._frames = self._frames[:0]

    def __enter__(self) -> CachedVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DecodedCache:
    """A folder of decoded videos (see the module's docstring)."""

    def __init__(self, directory: str | os.PathLike, *, fps: float = 30.0):
        self.directory, self.fps = os.fspath(directory), fps

    def key(self, path: str) -> str:
        """The entry's name: a hash of the video's absolute path, size and modification time."""
        real = os.path.abspath(path)
        st = os.stat(real)
        return hashlib.sha1(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()

    def open(self, path: str | os.PathLike) -> CachedVideo:
        """The cached frames of `path`, decoding and storing them on the first open."""
        from vidrec.io import open_video  # the package's reader choice (files, frame folders, flow)

        path = os.fspath(path)
        try:
            base = os.path.join(self.directory, self.key(path))
        except OSError as e:
            raise VideoError(f"{path}: {e.strerror}") from None
        if not (os.path.exists(base + ".npy") and os.path.exists(base + ".json")):
            with open_video(path, fps=self.fps) as video:
                frames = video.get_frames(np.arange(len(video)))
                stamps = np.asarray(video.timestamps, dtype=np.float64)
            os.makedirs(self.directory, exist_ok=True)

            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    np.save(f, frames)

            atomic_write(base + ".npy", write)
            atomic_write_text(base + ".json", json.dumps({"path": path, "timestamps": stamps.tolist()}))
            return CachedVideo(path, frames, stamps)
        with open(base + ".json") as f:
            stamps = np.asarray(json.load(f)["timestamps"], dtype=np.float64)
        return CachedVideo(path, np.load(base + ".npy", mmap_mode="r"), stamps)


__all__ = ["CachedVideo", "DecodedCache"]
