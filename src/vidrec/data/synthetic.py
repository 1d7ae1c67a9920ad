"""SynthMotion: labelled action videos made locally, whose labels need time to be told apart.

Each video has a random textured background and 1-3 objects of random shape, colour and size; one
of them (the actor) performs the action, the others stand still. Appearance carries no label.
Most classes come in pairs that are each other's time reversal (move left / move right, approach /
recede, rotate clockwise / counter-clockwise, appear / disappear), so one frame, or an order-less
average of frames, cannot separate them; oscillate fast / slow needs temporal resolution.

Coordinates are image coordinates: x to the right, y down, angles clockwise on screen.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

from vidrec.data.preprocessing import Preprocessing
from vidrec.errors import ConfigError, VidrecError, unknown_name_message
from vidrec.io.folders import claim_folder
from vidrec.utils import atomic_write_text, write_video

CLASSES = (
    "move left",
    "move right",
    "move up",
    "move down",
    "approach",
    "recede",
    "rotate clockwise",
    "rotate counter-clockwise",
    "appear",
    "disappear",
    "oscillate fast",
    "oscillate slow",
)
# Class pairs that are each other's time reversal (indices into CLASSES), and the pace pair.
REVERSAL_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
PACE_PAIR = (10, 11)
SHAPES = ("circle", "square", "triangle", "rectangle", "pentagon")
ASYMMETRIC_SHAPES = ("triangle",)  # rotation must be visible and unambiguous
SPLITS = ("train", "val", "test")
LABELS = ("action", "shape", "objects")  # what a generated set is labelled by
# What the CPU-scale models take from SynthMotion: every frame of a 16-frame video, 56 px crops of the
# 64 px frames, never a flip (left and right are labels), and each clip centred on its own mean
# colour (every video has its own background colour; see vidrec.data.transforms.normalize).
SYNTHMOTION_PREP = Preprocessing(
    num_frames=16, sampling_rate=1, resize=64, crop_size=56, flip=False, centering="clip"
)


@dataclass(frozen=True)
class SynthConfig:
    """How SynthMotion videos look: length, size, object, noise and camera shake."""

    num_frames: int = 16  # frames per video
    size: int = 64  # square frame side in pixels (even, for yuv420p)
    fps: int = 10  # frame rate written to the files
    max_objects: int = 3  # actor + up to max_objects-1 still distractors
    texture: bool = True  # textured background (False: a flat colour, for tests)
    noise: float = 0.0  # std of per-pixel Gaussian noise, 0-255 scale
    camera_jitter: float = 0.0  # camera shake: std of the per-frame offset in pixels

    def __post_init__(self):
        if self.num_frames < 4:
            raise ConfigError(f"SynthMotion needs at least 4 frames, got {self.num_frames}")
        if self.size < 16 or self.size % 2:
            raise ConfigError(f"size must be even and >= 16, got {self.size}")
        if self.max_objects < 1:
            raise ConfigError(f"max_objects must be >= 1, got {self.max_objects}")


@dataclass(frozen=True)
class _Object:
    shape: str
    color: np.ndarray  # (3,) float 0-255
    x: float
    y: float
    radius: float
    angle: float  # degrees


def shape_polygon(shape: str) -> np.ndarray:
    """Unit-radius vertices `(V, 2)` of a convex shape around the origin, in order."""
    if shape == "circle":
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    elif shape == "square":
        a = np.radians([45, 135, 225, 315])
    elif shape == "pentagon":
        a = np.radians(np.arange(5) * 72 - 90)
    elif shape == "triangle":  # a long isosceles "arrow": its heading shows the rotation
        return np.array([[1.0, 0.0], [-0.6, 0.55], [-0.6, -0.55]])
    elif shape == "rectangle":
        return np.array([[1.0, 0.5], [-1.0, 0.5], [-1.0, -0.5], [1.0, -0.5]])
    else:
        raise ConfigError(f"unknown shape {shape}")
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def shape_coverage(shape: str, x: float, y: float, radius: float, angle: float, grid: tuple) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a convex shape over the pixel grid `(H, W)`."""
    gy, gx = grid
    if shape == "circle":
        return np.clip(radius - np.hypot(gx - x, gy - y) + 0.5, 0.0, 1.0)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    verts = shape_polygon(shape) * radius @ np.array([[c, s], [-s, c]]) + [x, y]
    inside = np.full(gx.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0)):
        ex, ey = x1 - x0, y1 - y0
        # Signed distance to the edge line, oriented so that the shape's centre is positive.
        d = ((gx - x0) * ey - (gy - y0) * ex) / math.hypot(ex, ey)
        if (x - x0) * ey - (y - y0) * ex < 0:
            d = -d
        inside = np.minimum(inside, d)
    return np.clip(inside + 0.5, 0.0, 1.0)


def textured_background(rng: np.random.Generator, size: int, texture: bool) -> np.ndarray:
    """A `(size, size, 3)` float background: a random colour, textured unless `texture` is off."""
    base = rng.uniform(30, 220, size=3)
    if not texture:
        return np.broadcast_to(base, (size, size, 3)).astype(np.float32).copy()
    cells = rng.integers(3, 9)
    coarse = rng.normal(0, 35, size=(cells, cells, 3))
    # Bilinear upsampling of a coarse noise grid gives a smooth, random texture.
    pos = np.linspace(0, cells - 1, size)
    i0 = np.clip(np.floor(pos).astype(int), 0, cells - 2)
    f = (pos - i0)[:, None]
    rows = coarse[i0] * (1 - f)[..., None] + coarse[i0 + 1] * f[..., None]
    tex = rows[:, i0] * (1 - f.T)[..., None] + rows[:, i0 + 1] * f.T[..., None]
    fine = rng.normal(0, 8, size=(size, size, 3))
    return np.clip(base + tex + fine, 0, 255).astype(np.float32)


def actor_track(label: str, rng: np.random.Generator, size: int, t: np.ndarray) -> dict:
    """Per-frame actor state `{x, y, radius, angle, alpha}` (arrays over t in [0, 1])."""
    n = len(t)
    radius = np.full(n, rng.uniform(0.09, 0.15) * size)
    x = np.full(n, rng.uniform(0.3, 0.7) * size)
    y = np.full(n, rng.uniform(0.3, 0.7) * size)
    angle = np.full(n, rng.uniform(0, 360))
    alpha = np.ones(n)
    if label.startswith("move"):
        dist = rng.uniform(0.35, 0.55) * size
        lo, hi = radius[0] + 1, size - radius[0] - 1 - dist
        start = rng.uniform(lo, hi)
        along = start + dist * t  # increasing coordinate
        if label in ("move left", "move up"):
            along = start + dist * (1 - t)
        if label in ("move left", "move right"):
            x = along
        else:
            y = along
    elif label in ("approach", "recede"):
        r0 = rng.uniform(0.06, 0.09) * size
        grow = r0 * rng.uniform(2.0, 3.0) ** t
        radius = grow if label == "approach" else grow[::-1].copy()
        x[:] = rng.uniform(0.4, 0.6) * size
        y[:] = rng.uniform(0.4, 0.6) * size
    elif label.startswith("rotate"):
        sweep = rng.uniform(90, 160) * t
        angle = angle + (sweep if label == "rotate clockwise" else -sweep)
        radius[:] = rng.uniform(0.16, 0.22) * size
    elif label in ("appear", "disappear"):
        t0, t1 = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
        fade = np.clip((t - t0) / (t1 - t0), 0, 1)
        alpha = fade if label == "appear" else fade[::-1].copy()
    elif label.startswith("oscillate"):
        cycles = rng.uniform(2.5, 3.5) if label == "oscillate fast" else rng.uniform(0.7, 1.1)
        amp = rng.uniform(0.12, 0.2) * size
        phase = rng.uniform(0, 2 * np.pi)
        offset = amp * np.sin(2 * np.pi * cycles * t + phase)
        if rng.random() < 0.5:
            x = x + offset
        else:
            y = y + offset
    else:
        raise ConfigError(f"unknown SynthMotion class '{label}'")
    return {"x": x, "y": y, "radius": radius, "angle": angle, "alpha": alpha}


def render_video(
    label: str, rng: np.random.Generator, cfg: SynthConfig = SynthConfig()
) -> tuple[np.ndarray, dict]:
    """One video of `label`: frames `(T, S, S, 3)` uint8 and the actor's track (for tests)."""
    size, margin = cfg.size, int(math.ceil(3 * cfg.camera_jitter))
    canvas = textured_background(rng, size + 2 * margin, cfg.texture)
    t = np.linspace(0.0, 1.0, cfg.num_frames)
    track = actor_track(label, rng, size, t)
    actor_shape = rng.choice(ASYMMETRIC_SHAPES if label.startswith("rotate") else SHAPES)
    actor_color = rng.uniform(0, 255, size=3)
    distractors = [
        _Object(
            rng.choice(SHAPES),
            rng.uniform(0, 255, 3),
            rng.uniform(0.1, 0.9) * size,
            rng.uniform(0.1, 0.9) * size,
            rng.uniform(0.05, 0.12) * size,
            rng.uniform(0, 360),
        )
        for _ in range(int(rng.integers(0, cfg.max_objects)))
    ]
    grid = np.mgrid[0 : size + 2 * margin, 0 : size + 2 * margin].astype(np.float32) + 0.5
    still = canvas.copy()
    for o in distractors:
        cov = shape_coverage(o.shape, o.x + margin, o.y + margin, o.radius, o.angle, grid)[..., None]
        still = still * (1 - cov) + o.color * cov
    shake = (
        np.rint(rng.normal(0, cfg.camera_jitter, size=(cfg.num_frames, 2))).astype(int)
        if cfg.camera_jitter
        else np.zeros((cfg.num_frames, 2), int)
    )
    shake = np.clip(shake, -margin, margin)
    frames = np.empty((cfg.num_frames, size, size, 3), np.uint8)
    for i in range(cfg.num_frames):
        cov = (
            shape_coverage(
                actor_shape,
                track["x"][i] + margin,
                track["y"][i] + margin,
                track["radius"][i],
                track["angle"][i],
                grid,
            )[..., None]
            * track["alpha"][i]
        )
        img = still * (1 - cov) + actor_color * cov
        dy, dx = margin + shake[i, 0], margin + shake[i, 1]
        img = img[dy : dy + size, dx : dx + size]
        if cfg.noise:
            img = img + rng.normal(0, cfg.noise, size=img.shape)
        frames[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    track["shape"] = str(actor_shape)
    track["color"] = actor_color
    track["objects"] = 1 + len(distractors)
    return frames, track


def object_count_name(n: int) -> str:
    """The class name of a frame with `n` objects (label="objects")."""
    return f"{n} object" + ("s" if n > 1 else "")


def video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Each video's own stream: the same file for the same (seed, split, index), in any order."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def split_labels(seed: int, split: str, count: int) -> np.ndarray:
    """Balanced, shuffled labels: each block of 12 videos holds every class once, so a larger
    set extends a smaller one made with the same seed (video i keeps its label)."""
    blocks = [
        np.random.default_rng([seed, SPLITS.index(split), 1 << 30, b]).permutation(len(CLASSES))
        for b in range(-(-count // len(CLASSES)))
    ]
    return np.concatenate(blocks)[:count] if blocks else np.zeros(0, np.int64)


def _make_one(job: tuple) -> tuple[str, dict]:
    """Write one video (unless it is already complete); ("made" | "kept", its per-frame labels
    when asked for)."""
    path, label, seed, split, index, cfg, per_frame = job
    complete = is_complete_video(path, cfg.num_frames)
    if complete and not per_frame:
        return "kept", {}
    # shape and object count are drawn by the same stream as the pixels: a kept video is drawn again
    frames, track = render_video(CLASSES[label], video_rng(seed, split, index), cfg)
    if not complete:
        write_video(path, frames, fps=cfg.fps)
    labels = {"shape": track["shape"], "objects": object_count_name(track["objects"])}
    return ("kept" if complete else "made"), labels


def render_jobs(
    make_one, jobs: list[tuple], stats: dict, *, desc: str, workers: int, progress: bool, chunksize: int = 1
):
    """`(job, what make_one(job) gives beside its status)` for each job, in order, rendered by
    `workers` processes (one: this one) under a progress bar; `stats` counts the statuses
    ("made", "kept")."""
    with (
        tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress) as bar,
        Pool(workers) if workers > 1 else contextlib.nullcontext() as pool,
    ):
        results = pool.imap(make_one, jobs, chunksize=chunksize) if pool else map(make_one, jobs)
        for job, result in zip(jobs, results, strict=True):
            stats[result[0]] += 1
            bar.update()
            yield job, result[1]


def is_complete_video(path: str, num_frames: int) -> bool:
    """Whether `path` is a readable video of `num_frames` frames (a resumed generation keeps it)."""
    if not os.path.exists(path):
        return False
    from vidrec.io import probe

    try:
        return probe(path).num_frames == num_frames
    except VidrecError:
        return False


def generate_dataset(
    out: str,
    *,
    counts: dict[str, int],
    cfg: SynthConfig = SynthConfig(),
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    label: str = "action",
) -> dict[str, int]:
    """Write `out/videos/SPLIT/*.mp4`, `out/SPLIT.csv` (path,label) and `out/classes.txt`.

    `label="shape"` labels the same videos by the actor's shape (`SHAPES`), `label="objects"` by
    how many objects they show ("1 object" .. "N objects"): tasks one frame can tell, for the
    per-frame pretraining of a 2D network before it is inflated to 3D. Resumable: videos already
    complete are kept; settings must match the existing set."""
    if label not in LABELS:
        raise ConfigError(unknown_name_message("label", label, LABELS))
    os.makedirs(out, exist_ok=True)
    meta = {"seed": seed, "config": asdict(cfg), **({"label": label} if label != "action" else {})}
    claim_folder(
        out,
        "synth.json",
        meta,
        lambda old: f"{out} holds a SynthMotion set made with other settings ({old}); use another directory",
    )
    count_names = [object_count_name(n) for n in range(1, cfg.max_objects + 1)]
    classes = {"action": CLASSES, "shape": SHAPES, "objects": count_names}[label]
    atomic_write_text(os.path.join(out, "classes.txt"), "\n".join(classes) + "\n")
    jobs, rows = [], {}
    for split, count in counts.items():
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}' (valid: {', '.join(SPLITS)})")
        os.makedirs(os.path.join(out, "videos", split), exist_ok=True)
        labels = split_labels(seed, split, count)
        rows[split] = []
        for i, action in enumerate(labels):
            rel = f"videos/{split}/{split}_{i:05d}.mp4"
            rows[split].append([rel, CLASSES[action]])
            jobs.append((os.path.join(out, rel), int(action), seed, split, i, cfg, label != "action"))
    per_frame, stats = {}, {"made": 0, "kept": 0}
    how = {"desc": "synth", "workers": workers, "progress": progress, "chunksize": 4}
    for job, labels in render_jobs(_make_one, jobs, stats, **how):
        per_frame[job[0]] = labels
    for split, split_rows in rows.items():
        if label != "action":
            for row in split_rows:
                row[1] = per_frame[os.path.join(out, row[0])][label]
        lines = ["path,label"] + [f"{p},{name}" for p, name in split_rows]
        atomic_write_text(os.path.join(out, f"{split}.csv"), "\n".join(lines) + "\n")
    return stats


def pair_accuracy(confusion, pairs) -> float:
    """Accuracy (%) on the videos of the classes in `pairs`, counting only the choice within each
    pair: of the videos predicted as one of its pair's two classes, the share predicted right.
    `confusion[true][pred]` counts videos (vidrec.recognize.evaluate's confusion matrix)."""
    right = total = 0
    for a, b in pairs:
        right += confusion[a][a] + confusion[b][b]
        total += confusion[a][a] + confusion[a][b] + confusion[b][a] + confusion[b][b]
    return 100.0 * right / total if total else float("nan")


def reversal_pair_accuracy(confusion) -> float:
    """Within-pair accuracy (%) over the time-reversal pairs: 50% for a model blind to time order."""
    return pair_accuracy(confusion, REVERSAL_PAIRS)


__all__ = [
    "CLASSES",
    "PACE_PAIR",
    "REVERSAL_PAIRS",
    "SynthConfig",
    "generate_dataset",
    "pair_accuracy",
    "render_jobs",
    "render_video",
    "reversal_pair_accuracy",
    "split_labels",
    "video_rng",
]
