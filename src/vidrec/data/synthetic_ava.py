"""SynthMotion-AVA: several actors per video, each doing its own SynthMotion action (or standing
still), with its box on every keyframe, written as videos + AVA-format CSVs + a label map.

    frame (S x S, textured background)
      actor k: one of 13 classes, its track drawn in a `cell`-sized square placed anywhere in the
               frame (squares overlap, so actors do; later actors occlude earlier ones); a moving
               actor may enter or leave the frame
    keyframes: whole seconds 1, 2, ... (frame sec * fps); an actor has a box there when it is
               visible (opacity >= 0.5, at least half its box inside the frame)

The tracks are SynthMotion's (`vidrec.data.synthetic`), so a classifier trained on SynthMotion
sees actors of the same size and motion; a SynthMotion clip of 16 frames spans half a video here.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from vidrec.data.ava import ActionLabel, AvaBox, write_boxes, write_label_map
from vidrec.data.synthetic import (
    ASYMMETRIC_SHAPES,
    CLASSES,
    SHAPES,
    SPLITS,
    actor_track,
    is_complete_video,
    render_jobs,
    shape_coverage,
    shape_polygon,
    textured_background,
)
from vidrec.errors import ConfigError
from vidrec.io.folders import claim_folder
from vidrec.utils import write_video

STILL = "stand still"
AVA_CLASSES = (*CLASSES, STILL)  # label id = index + 1
GROUPS = {
    "move left": "TRANSLATION",
    "move right": "TRANSLATION",
    "move up": "TRANSLATION",
    "move down": "TRANSLATION",
    "approach": "SCALE",
    "recede": "SCALE",
    "rotate clockwise": "ROTATION",
    "rotate counter-clockwise": "ROTATION",
    "appear": "VISIBILITY",
    "disappear": "VISIBILITY",
    "oscillate fast": "OSCILLATION",
    "oscillate slow": "OSCILLATION",
    STILL: "STILL",
}
LABEL_MAP = [ActionLabel(i + 1, name, GROUPS[name]) for i, name in enumerate(AVA_CLASSES)]


@dataclass(frozen=True)
class SynthAvaConfig:
    """How SynthMotion-AVA videos look."""

    size: int = 128  # square frame side in pixels (even, for yuv420p)
    num_frames: int = 32  # frames per video; keyframes every `fps` frames
    fps: int = 10
    min_actors: int = 2
    max_actors: int = 4
    cell: int = 64  # side of the square each actor's track is drawn in (SynthMotion's frame size)
    enter_leave: float = 0.3  # share of moving actors whose path starts or ends outside the frame
    texture: bool = True
    noise: float = 0.0  # std of per-pixel Gaussian noise, 0-255 scale

    def __post_init__(self):
        if self.size < self.cell or self.size % 2:
            raise ConfigError(f"size must be even and >= cell ({self.cell}), got {self.size}")
        if not 1 <= self.min_actors <= self.max_actors:
            raise ConfigError(f"need 1 <= min_actors <= max_actors, got {self.min_actors}, {self.max_actors}")
        if self.num_frames <= self.fps:
            raise ConfigError(f"a video needs more than one second ({self.fps} frames) for a keyframe")

    @property
    def keyframes(self) -> list[int]:
        """Keyframe times in seconds (frame = sec * fps)."""
        return list(range(1, (self.num_frames - 1) // self.fps + 1))


def _still_track(rng: np.random.Generator, cell: int, n: int) -> dict:
    return {
        "x": np.full(n, rng.uniform(0.25, 0.75) * cell),
        "y": np.full(n, rng.uniform(0.25, 0.75) * cell),
        "radius": np.full(n, rng.uniform(0.09, 0.15) * cell),
        "angle": np.full(n, rng.uniform(0, 360)),
        "alpha": np.ones(n),
    }


def _enter_or_leave(track: dict, label: str, rng: np.random.Generator, size: int) -> None:
    """Shift a move's path along its axis so that it starts (enters) or ends (leaves) just
    outside the frame."""
    axis = "x" if label in ("move left", "move right") else "y"
    along, r = track[axis], track["radius"][0]
    forward = along[-1] > along[0]
    if rng.random() < 0.5:  # enter: the first frame is outside, on the side it comes from
        shift = (-r - along[0]) if forward else (size + r - along[0])
    else:  # leave: the last frame is outside, on the side it goes to
        shift = (size + r - along[-1]) if forward else (-r - along[-1])
    track[axis] = along + shift


def _extent(shape: str, x: float, y: float, radius: float, angle: float) -> np.ndarray:
    """Tight box (x1, y1, x2, y2) of a shape in pixels."""
    if shape == "circle":
        return np.array([x - radius, y - radius, x + radius, y + radius])
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    verts = shape_polygon(shape) * radius @ np.array([[c, s], [-s, c]]) + [x, y]
    return np.concatenate([verts.min(0), verts.max(0)])


def _visible_box(box: np.ndarray, alpha: float, size: int) -> tuple | None:
    """The box clipped to the frame and normalised, or None when the actor is not visible."""
    clipped = np.clip(box, 0, size)
    area = (box[2] - box[0]) * (box[3] - box[1])
    inside = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
    if alpha < 0.5 or inside < 0.5 * area:
        return None
    return tuple(float(v) for v in np.round(clipped / size, 4))


def render_ava_video(rng: np.random.Generator, cfg: SynthAvaConfig = SynthAvaConfig()):
    """Frames `(T, S, S, 3)` uint8 and the actors: `[{"label", "boxes": [box or None per frame]}]`."""
    size, n = cfg.size, cfg.num_frames
    frames = np.repeat(textured_background(rng, size, cfg.texture)[None], n, axis=0)  # (T, S, S, 3) float
    t = np.linspace(0.0, 1.0, n)
    grid = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    actors = []
    for _ in range(int(rng.integers(cfg.min_actors, cfg.max_actors + 1))):
        label = AVA_CLASSES[int(rng.integers(len(AVA_CLASSES)))]
        track = _still_track(rng, cfg.cell, n) if label == STILL else actor_track(label, rng, cfg.cell, t)
        ox, oy = rng.uniform(0, size - cfg.cell, size=2)
        track["x"], track["y"] = track["x"] + ox, track["y"] + oy
        if label.startswith("move") and rng.random() < cfg.enter_leave:
            _enter_or_leave(track, label, rng, size)
        shape = str(rng.choice(ASYMMETRIC_SHAPES if label.startswith("rotate") else SHAPES))
        color = rng.uniform(0, 255, size=3)
        boxes = []
        for i in range(n):
            x, y, r, a = (track[k][i] for k in ("x", "y", "radius", "angle"))
            cov = shape_coverage(shape, x, y, r, a, grid)[..., None] * track["alpha"][i]
            frames[i] = frames[i] * (1 - cov) + color * cov
            boxes.append(_visible_box(_extent(shape, x, y, r, a), track["alpha"][i], size))
        actors.append({"label": label, "shape": shape, "boxes": boxes})
    if cfg.noise:
        frames = frames + rng.normal(0, cfg.noise, size=frames.shape)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), actors


def keyframe_rows(video_id: str, actors: list[dict], cfg: SynthAvaConfig) -> list[AvaBox]:
    """Ground-truth rows: every visible actor on every keyframe, person_id = actor index."""
    rows = []
    for sec in cfg.keyframes:
        for person, actor in enumerate(actors):
            box = actor["boxes"][sec * cfg.fps]
            if box is not None:
                rows.append(AvaBox(video_id, sec, box, AVA_CLASSES.index(actor["label"]) + 1, person))
    return rows


def detected_boxes(rows: list[AvaBox], rng: np.random.Generator) -> list[AvaBox]:
    """What a person detector would give for `rows`: each box jittered by a few % of its size and
    scored 0.8-1.0, and now and then a spurious box scored low (for testing on detected boxes)."""
    out = []
    for r in rows:
        x1, y1, x2, y2 = r.box
        w, h = x2 - x1, y2 - y1
        j = rng.normal(0, 0.04, size=4) * [w, h, w, h]
        box = np.clip([x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3]], 0, 1)
        if box[2] > box[0] and box[3] > box[1]:
            out.append(
                AvaBox(r.video_id, r.sec, tuple(np.round(box, 4)), None, None, float(rng.uniform(0.8, 1)))
            )
        if rng.random() < 0.1:
            cx, cy, s = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.15)
            box = np.clip([cx - s, cy - s, cx + s, cy + s], 0, 1)
            out.append(
                AvaBox(r.video_id, r.sec, tuple(np.round(box, 4)), None, None, float(rng.uniform(0.1, 0.5)))
            )
    return out


def _make_one(job: tuple) -> tuple[str, list[AvaBox]]:
    path, video_id, seed, split, index, cfg = job
    complete = is_complete_video(path, cfg.num_frames)
    frames, actors = render_ava_video(np.random.default_rng([seed, SPLITS.index(split), index, 7]), cfg)
    if not complete:
        write_video(path, frames, fps=cfg.fps)
    return ("kept" if complete else "made"), keyframe_rows(video_id, actors, cfg)


def generate_ava_dataset(
    out: str,
    *,
    counts: dict[str, int],
    cfg: SynthAvaConfig = SynthAvaConfig(),
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """Write `out/videos/SPLIT/*.mp4`, `out/SPLIT.csv` (AVA ground truth), `out/SPLIT_boxes.csv`
    (jittered "detected" person boxes with scores) and `out/labels.pbtxt`. Resumable: complete
    videos are kept (their annotations are drawn again, identically)."""
    os.makedirs(out, exist_ok=True)
    claim_folder(
        out,
        "synth_ava.json",
        {"seed": seed, "config": asdict(cfg)},
        lambda _: f"{out} holds a SynthMotion-AVA set made with other settings; use another directory",
    )
    write_label_map(os.path.join(out, "labels.pbtxt"), LABEL_MAP)
    jobs = []
    for split, count in counts.items():
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}' (valid: {', '.join(SPLITS)})")
        os.makedirs(os.path.join(out, "videos", split), exist_ok=True)
        for i in range(count):
            video_id = f"{split}_{i:05d}"
            jobs.append(
                (os.path.join(out, "videos", split, video_id + ".mp4"), video_id, seed, split, i, cfg)
            )
    stats, rows = {"made": 0, "kept": 0}, {split: [] for split in counts}
    how = {"desc": "synth-ava", "workers": workers, "progress": progress, "chunksize": 2}
    for job, video_rows in render_jobs(_make_one, jobs, stats, **how):
        rows[job[3]].extend(video_rows)
    for split, split_rows in rows.items():
        write_boxes(os.path.join(out, f"{split}.csv"), split_rows, kind="gt")
        boxes = detected_boxes(split_rows, np.random.default_rng([seed, SPLITS.index(split), 99]))
        write_boxes(os.path.join(out, f"{split}_boxes.csv"), boxes, kind="boxes")
    return stats
