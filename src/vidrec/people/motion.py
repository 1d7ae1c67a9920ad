"""Camera motion between the frames looked at, so a panning camera does not break tracks: the
global translation by phase correlation (the peak of the normalised cross-power spectrum) of
the two frames in grey at a quarter of their size, under a Hann window. A pan or a follow shot
moves the whole background by the same amount, which the people's own motion (a small part of
the frame) does not outweigh; the tracker shifts its predictions by it (as BoT-SORT's camera
motion compensation does, translation only). A few milliseconds per 960x480 frame."""

from __future__ import annotations

import numpy as np
from PIL import Image


class CameraMotion:
    """`motion(rgb)` -> `(dx, dy)`: how far the scene moved in frame pixels since the last frame
    given (0, 0 for the first, where the frame's size changed, and for a move of one cell of the
    reduced frame, `scale` pixels, which people moving before a still camera give)."""

    def __init__(self, scale: int = 4):
        self.scale = scale
        self.previous: tuple | None = None  # the last frame's (reduced size, spectrum)
        self.window: np.ndarray | None = None

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        # PIL's grey (ITU-R 601-2 luma) and box reduction in C: a millisecond for a 768x576 frame,
        # where NumPy's float mean over the blocks took 8
        grey = np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb)).convert("L").reduce(self.scale), np.float32
        )
        if self.window is None or self.window.shape != grey.shape:
            self.window = np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1])).astype(np.float32)
        return (grey - grey.mean()) * self.window

    def __call__(self, rgb: np.ndarray) -> tuple[float, float]:
        grey = self._grey(rgb)
        spectrum = (grey.shape, np.fft.rfft2(grey))  # kept: the next frame's previous one
        previous, self.previous = self.previous, spectrum
        if previous is None or previous[0] != grey.shape:
            return 0.0, 0.0
        cross = spectrum[1] * np.conj(previous[1])
        response = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=grey.shape)
        dy, dx = np.unravel_index(int(np.argmax(response)), response.shape)
        h, w = grey.shape
        dy, dx = (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)
        if abs(dx) <= 1 and abs(dy) <= 1:  # one cell: within the estimate's noise (a still camera)
            return 0.0, 0.0
        return float(dx * self.scale), float(dy * self.scale)


__all__ = ["CameraMotion"]
