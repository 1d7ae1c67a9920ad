"""Moving shapes drawn by a program other than vidrec's SynthMotion generator, with the same 12
class meanings: OpenCV primitives drawn at 4x and area-downsampled (SynthMotion computes exact
coverage), other shapes (ellipses, stars, crosses, L and notched-arrow outlines), other motion
profiles (eased instead of linear moves, linear instead of geometric growth, oscillation along
any direction), and backgrounds SynthMotion never draws: two-colour gradients or stills cut from
real footage. A model that learned the motion should name it here; one that learned the
generator's look should not.

    from foreign_shapes import write_foreign_set
    csv = write_foreign_set("out/", videos=120, background="footage", seed=0)
"""

from __future__ import annotations

import glob
import itertools
import math
import os

import av
import cv2
import numpy as np

from vidrec.data.synthetic import CLASSES
from vidrec.utils import atomic_write_text, write_video

SCALE = 4  # drawn at 4x, then area-downsampled: anti-aliasing by another method than SynthMotion's
BACKGROUNDS = ("gradient", "footage")
STILL_SHAPES = ("ellipse", "star", "cross", "L")
FOOTAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "videos")


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.arange(2 * points) * np.pi / points - np.pi / 2
    r = np.where(np.arange(2 * points) % 2, inner, 1.0)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


# Unit-size outlines (x right, y down). "arrow" and "L" have no rotational symmetry, so a rotation shows.
OUTLINES = {
    "star": _star(),
    "cross": np.array(
        [[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3], [0.3, 1], [-0.3, 1]]
        + [[-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]]
    ),
    "L": np.array([[-0.7, -1], [-0.2, -1], [-0.2, 0.5], [0.7, 0.5], [0.7, 1], [-0.7, 1]]),
    "arrow": np.array([[1, 0], [-0.2, 0.7], [-0.2, 0.3], [-1, 0.3], [-1, -0.3], [-0.2, -0.3], [-0.2, -0.7]]),
}


def _draw(img: np.ndarray, shape: str, x: float, y: float, r: float, angle: float, color) -> None:
    """Fill `shape` of radius `r` at (x, y) (output pixels), turned `angle` degrees clockwise, on the
    4x canvas `img`."""
    color = tuple(float(c) for c in color)
    if shape == "ellipse":
        axes = (max(1, round(r * SCALE)), max(1, round(0.6 * r * SCALE)))
        cv2.ellipse(img, (round(x * SCALE), round(y * SCALE)), axes, angle, 0, 360, color, -1, cv2.LINE_AA)
        return
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    pts = OUTLINES[shape] @ np.array([[c, s], [-s, c]]) * r + [x, y]
    cv2.fillPoly(img, [np.round(pts * SCALE).astype(np.int32)], color, cv2.LINE_AA)


def footage_clips(folder: str = FOOTAGE) -> list[str]:
    """The real clips whose frames serve as backgrounds (the corrupt test stream left out)."""
    videos = sorted(glob.glob(os.path.join(folder, "*.mp4")) + glob.glob(os.path.join(folder, "*.mkv")))
    videos = [v for v in videos if "corrupt" not in os.path.basename(v)]
    if not videos:
        raise FileNotFoundError(f"no real clips (.mp4, .mkv) in {folder} for footage backgrounds")
    return videos


def _footage_still(rng: np.random.Generator, size: int, videos: list[str]) -> np.ndarray:
    """A random square cut from a random early frame of one of `videos`, `size` px."""
    with av.open(videos[int(rng.integers(len(videos)))]) as f:
        frame = next(itertools.islice(f.decode(f.streams.video[0]), int(rng.integers(1, 40)), None))
        rgb = frame.to_ndarray(format="rgb24")
    h, w = rgb.shape[:2]
    side = int(rng.uniform(0.3, 0.8) * min(h, w))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return cv2.resize(rgb[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def _background(rng: np.random.Generator, size: int, footage: list[str] | None) -> np.ndarray:
    """A still of real footage when `footage` lists clips, else a two-colour gradient."""
    if footage:
        return _footage_still(rng, size, footage).astype(np.float32)
    a, b = rng.uniform(20, 235, (2, 3))
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    ramp = (np.cos(theta) * xx + np.sin(theta) * yy)[..., None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    return (a * (1 - ramp) + b * ramp).astype(np.float32)


def _ease(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)  # smoothstep: starts and stops gently (SynthMotion moves linearly)


def actor_path(label: str, rng: np.random.Generator, size: int, t: np.ndarray) -> dict:
    """Per-frame `{x, y, r, angle, alpha}` of the actor doing `label`, with this module's own
    parameter ranges and motion profiles."""
    n = len(t)
    r = np.full(n, rng.uniform(0.08, 0.14) * size)
    x, y = np.full(n, rng.uniform(0.35, 0.65) * size), np.full(n, rng.uniform(0.35, 0.65) * size)
    angle, alpha = np.full(n, rng.uniform(0, 360)), np.ones(n)
    if label.startswith("move"):
        dist = rng.uniform(0.4, 0.6) * size
        start = rng.uniform(r[0] + 2, size - r[0] - 2 - dist)
        forward = label in ("move right", "move down")
        along = start + dist * (_ease(t) if forward else 1 - _ease(t))
        if label in ("move left", "move right"):
            x = along
        else:
            y = along
    elif label in ("approach", "recede"):
        r0, r1 = rng.uniform(0.05, 0.08) * size, rng.uniform(0.2, 0.26) * size
        r = r0 + (r1 - r0) * (t if label == "approach" else 1 - t)
    elif label.startswith("rotate"):
        sweep = rng.uniform(100, 170) * t
        angle = angle + (sweep if label == "rotate clockwise" else -sweep)
        r[:] = rng.uniform(0.18, 0.24) * size
    elif label in ("appear", "disappear"):
        t0 = rng.uniform(0.05, 0.35)
        fade = np.clip((t - t0) / rng.uniform(0.3, 0.55), 0, 1)
        alpha = fade if label == "appear" else fade[::-1].copy()
    elif label.startswith("oscillate"):
        cycles = rng.uniform(2.6, 3.4) if label == "oscillate fast" else rng.uniform(0.75, 1.0)
        amp, heading = rng.uniform(0.12, 0.18) * size, rng.uniform(0, np.pi)
        offset = amp * np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi))
        x, y = x + np.cos(heading) * offset, y + np.sin(heading) * offset
    else:
        raise ValueError(label)
    return {"x": x, "y": y, "r": r, "angle": angle, "alpha": alpha}


def render(
    label: str, rng: np.random.Generator, *, size: int, frames: int, footage: list[str] | None = None
) -> np.ndarray:
    """`(T, S, S, 3)` uint8 frames of one video, on stills of `footage` clips or a gradient."""
    big = size * SCALE
    canvas = cv2.resize(_background(rng, size, footage), (big, big), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(0, 3))):  # still distractors
        shape = STILL_SHAPES[int(rng.integers(len(STILL_SHAPES)))]
        pos = rng.uniform(0.1, 0.9, 2) * size
        _draw(canvas, shape, *pos, rng.uniform(0.05, 0.1) * size, rng.uniform(0, 360), rng.uniform(0, 255, 3))
    path = actor_path(label, rng, size, np.linspace(0, 1, frames))
    shape = ("arrow", "L")[int(rng.integers(2))] if label.startswith("rotate") else None
    shape = shape or ("ellipse", "star", "cross", "arrow", "L")[int(rng.integers(5))]
    color = rng.uniform(0, 255, 3)
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        layer = canvas.copy()
        _draw(layer, shape, path["x"][i], path["y"][i], path["r"][i], path["angle"][i], color)
        img = canvas * (1 - path["alpha"][i]) + layer * path["alpha"][i]
        out[i] = np.clip(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), 0, 255).round()
    return out


def write_foreign_set(
    out: str,
    *,
    videos: int,
    background: str,
    seed: int,
    size: int = 64,
    frames: int = 16,
    footage: str = FOOTAGE,
) -> str:
    """`videos` clips (classes in turn) under `out`, with `test.csv` and `classes.txt`; the CSV path.
    `background` is "gradient" or "footage" (stills of the clips in the folder `footage`)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    clips = footage_clips(footage) if background == "footage" else None
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    rows = ["path,label"]
    for i in range(videos):
        label = CLASSES[i % len(CLASSES)]
        name = f"videos/{i:05d}.mp4"
        write_video(os.path.join(out, name), render(label, rng, size=size, frames=frames, footage=clips))
        rows.append(f"{name},{label}")
    atomic_write_text(os.path.join(out, "classes.txt"), "\n".join(CLASSES) + "\n")
    atomic_write_text(os.path.join(out, "test.csv"), "\n".join(rows) + "\n")
    return os.path.join(out, "test.csv")
