"""MOTChallenge tracking files: one row per box, `frame,id,x,y,w,h,conf,...` with 1-based frames
and x, y the box's top-left corner in pixels. Ground truth uses `conf` as a flag (0: ignore this
box) and, from MOT16 on, the 8th column as a class (1: pedestrian); MOT15's files put -1 (no
class) or world coordinates there. A tracker's file puts its score in `conf` and -1 after it.

    1,3,113.84,274.5,57.307,130.05,0.93,-1,-1,-1
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vidrec.errors import ConfigError


@dataclass
class MOTRows:
    """The rows of one file: `frames (N,)` 1-based, `ids (N,)`, `boxes (N, 4)` x y w h,
    `conf (N,)`, `classes (N,)` (-1 where the file has none)."""

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, keep: np.ndarray) -> MOTRows:
        """The rows where `keep` (a boolean mask) is true."""
        return MOTRows(
            self.frames[keep], self.ids[keep], self.boxes[keep], self.conf[keep], self.classes[keep]
        )


def read_mot(path: str | os.PathLike) -> MOTRows:
    """Read a MOTChallenge file (comma- or space-separated; blank lines skipped). A row needs
    frame, id and the box; a missing `conf` reads as 1 and a missing class as -1."""
    rows: list[list[float]] = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                fields = line.replace(",", " ").split()
                if not fields:
                    continue
                try:
                    values = [float(v) for v in fields[:8]]
                except ValueError:
                    raise ConfigError(f"{path}, line {number}: not numbers: {line.strip()[:60]!r}") from None
                if len(values) < 6:
                    raise ConfigError(
                        f"{path}, line {number}: expected frame,id,x,y,w,h[,conf,...], "
                        f"not {len(fields)} fields"
                    )
                if values[0] < 1 or values[0] != int(values[0]):
                    raise ConfigError(
                        f"{path}, line {number}: frames are whole numbers from 1, got {fields[0]}"
                    )
                rows.append(values + [1.0, -1.0][len(values) - 6 :])  # conf and class where missing
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    table = np.array(rows, dtype=np.float64).reshape(-1, 8)
    return MOTRows(
        frames=table[:, 0].astype(np.int64),
        ids=table[:, 1].astype(np.int64),
        boxes=table[:, 2:6],
        conf=table[:, 6],
        classes=table[:, 7],
    )


def mot_row(frame: int, track_id: int, box, score: float) -> str:
    """One tracker row for 1-based `frame` and a box x1 y1 x2 y2 in pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"{frame},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"


__all__ = ["MOTRows", "mot_row", "read_mot"]
