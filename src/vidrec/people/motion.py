"""Camera motion between the frames looked at, so a panning camera does not break tracks: the
global translation by phase correlation (the peak of the normalised cross-power spectrum) of
the two frames in grey at a quarter of their size, under a Hann window. A pan or a follow shot
moves the whole background by the same amount, which the people's own motion (a small part of
the frame) does not outweigh; the tracker shifts its predictions by it (as BoT-SORT's camera
motion compensation does, translation only). A few milliseconds per 960x480 frame."""

from __future__ import annotations

import numpy as np


class CameraMotion:
    """`motion(rgb)` -> `(dx, dy)`: how far the scene moved in frame pixels since the last frame
    given (0, 0 for the first, where the frame's size changed, and for a move of one cell of the
    reduced frame, `scale` pixels, which people moving before a still camera give)."""

    def __init__(self, scale: int = 4):
        self.scale = scale
        self.previous: np.ndarray | None = None
        self.window: np.ndarray | None = None

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        s = self.scale
        small = rgb[: rgb.shape[0] // s * s, : rgb.shape[1] // s * s].astype(np.float32)
        small = small.reshape(small.shape[0] // s, s, small.shape[1] // s, s, 3).mean((1, 3))
        grey = small @ np.array([0.299, 0.587, 0.114], np.float32)
        if self.window is None or self.window.shape != grey.shape:
            self.window = np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1])).astype(np.float32)
        return (grey - grey.mean()) * self.window

    def __call__(self, rgb: np.ndarray) -> tuple[float, float]:
        grey = self._grey(rgb)
        previous, self.previous = self.previous, grey
        if previous is None or previous.shape != grey.shape:
            return 0.0, 0.0
        cross = np.fft.rfft2(grey) * np.conj(np.fft.rfft2(previous))
        response = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=grey.shape)
        dy, dx = np.unravel_index(int(np.argmax(response)), response.shape)
        h, w = grey.shape
        dy, dx = (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)
        if abs(dx) <= 1 and abs(dy) <= 1:  # one cell: within the estimate's noise (a still camera)
            return 0.0, 0.0
        return float(dx * self.scale), float(dy * self.scale)


__all__ = ["CameraMotion"]
