"""Datasets often ship videos as folders of JPEG/PNG frames; read them like a video."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np
from PIL import Image

from vidrec.errors import VideoError
from vidrec.io.video import VideoInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _natural_key(name: str) -> list:
    # img_2.jpg before img_10.jpg
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class FrameFolderReader:
    """A directory of images, one per frame, in natural sort order; same API as VideoReader."""

    def __init__(self, path: str | os.PathLike, *, fps: float = 30.0):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise VideoError(f"{self.path}: not a directory of frames")
        names = [n for n in os.listdir(self.path) if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not names:
            raise VideoError(f"{self.path}: no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        self._files = [os.path.join(self.path, n) for n in sorted(names, key=_natural_key)]
        first = self._load(0)
        h, w = first.shape[:2]
        n = len(self._files)
        self.decode_errors: list[Exception] = []
        self.info = VideoInfo(
            path=self.path,
            width=w,
            height=h,
            num_frames=n,
            fps=fps,
            duration=n / fps,
            time_base=Fraction(1, 1),
            rotation=0,
            codec="images",
            pix_fmt=None,
            has_audio=False,
            num_frames_source="files",
            fps_source="given",
            header_num_frames=None,
            header_fps=None,
            header_duration=None,
        )

    def __len__(self) -> int:
        return len(self._files)

    @property
    def timestamps(self) -> np.ndarray:
        """Each frame's time in seconds, at the folder's nominal fps."""
        return np.arange(len(self)) / self.info.fps

    def _load(self, i: int) -> np.ndarray:
        try:
            with Image.open(self._files[i]) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise VideoError(f"{self._files[i]}: cannot read frame image ({e})") from None

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The frames at `indices`: `(N, H, W, 3)` uint8 RGB."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise VideoError(f"{self.path}: frame index out of range (folder has {len(self)} frames)")
        cache = {int(i): self._load(int(i)) for i in np.unique(idx)}
        frames = [cache[int(i)] for i in idx]
        if len({f.shape for f in frames}) > 1:
            raise VideoError(f"{self.path}: frames have different sizes")
        return np.stack(frames) if frames else np.zeros((0, self.info.height, self.info.width, 3), np.uint8)

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Frames `start`, `start + step`, ... one at a time."""
        for i in range(start, len(self) if stop is None else min(stop, len(self)), step):
            yield self._load(i)

    def close(self) -> None:
        """Nothing to release (images are opened one at a time)."""
        pass

    def __enter__(self) -> FrameFolderReader:
        return self

    def __exit__(self, *exc) -> None:
        pass
