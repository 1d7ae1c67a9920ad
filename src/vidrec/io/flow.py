"""Reader for optical flow stored by `vidrec flow` (one compressed array per video)."""

from __future__ import annotations

import numpy as np

from vidrec.errors import VidrecError


class FlowReader:
    """A stored flow array (`vidrec flow`) with the reader API of videos: frames are flow fields
    `(H, W, 2)` uint8, x then y, over [-20, 20] px."""

    def __init__(self, path: str):
        self.path = path
        try:
            with np.load(path) as data:
                self.flow = data["flow"]  # (N, H, W, 2) uint8
        except (OSError, KeyError, ValueError) as e:
            raise VidrecError(f"{path}: unreadable flow file ({e})") from None

    def __len__(self) -> int:
        return len(self.flow)

    timestamps = None

    def get_frames(self, indices) -> np.ndarray:
        """The flow fields at `indices`: `(N, H, W, 2)` uint8."""
        return self.flow[np.asarray(indices, dtype=np.int64)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
