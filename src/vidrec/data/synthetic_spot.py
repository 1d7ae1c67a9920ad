"""SynthMotion-Spot: long videos of shapes in continuous motion, with events at the moments they
happen, for training and scoring event spotting (`vidrec synth-spot`).

    every frame: each shape moves, its heading drifting and its speed varying (motion, no event);
    shapes spin; a "pulsing" shape may grow and shrink in place (motion, no event)
    events (the time of the frame they happen on, and the shape's id as `track`):
      bounce    a shape reaches a wall and reflects        (from the motion)
      collide   two shapes touch and push each other off   (from the motion)
      reverse   a shape turns back in open space           (at random)
      appear    a shape pops in                            (at random)
      vanish    a shape pops out                           (at random)

The videos are `out/videos/SPLIT/SPLIT_00000.mp4`; the events are in `out/SPLIT.csv`
(video,time,label,track; video relative to `out`) and in SoccerNet's layout,
`out/soccernet/SPLIT/SPLIT_00000/Labels-v2.json`. Each video is drawn from its own seeded stream.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from vidrec.data.synthetic import (
    SHAPES,
    SPLITS,
    is_complete_video,
    render_jobs,
    shape_coverage,
    textured_background,
)
from vidrec.errors import ConfigError
from vidrec.io.events import Event, write_events
from vidrec.io.folders import claim_folder
from vidrec.utils import atomic_write_text, write_video

SPOT_CLASSES = ("bounce", "collide", "reverse", "appear", "vanish")


@dataclass(frozen=True)
class SynthSpotConfig:
    """How SynthMotion-Spot videos look and how often their events happen."""

    min_seconds: float = 30.0  # each video's length is drawn in [min_seconds, max_seconds]
    max_seconds: float = 120.0
    size: int = 64  # square frame side in pixels (even)
    fps: int = 10
    min_objects: int = 1  # shapes on screen at once (appear / vanish keep the count in range)
    max_objects: int = 4
    speed: tuple[float, float] = (0.6, 1.6)  # pixels per frame
    reverse_every: float = 20.0  # mean seconds between a shape's random reversals
    appear_every: float = 15.0  # mean seconds between appearances (and between vanishings)
    pulsing: float = 0.5  # probability that a video has a pulsing shape (a distractor)
    texture: bool = True
    noise: float = 0.0  # std of per-pixel Gaussian noise, 0-255

    def __post_init__(self):
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ConfigError(
                f"video length needs 0 < min <= max, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.size < 32 or self.size % 2:
            raise ConfigError(f"size must be even and >= 32, got {self.size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"objects need 1 <= min <= max, got {self.min_objects}, {self.max_objects}")


@dataclass
class _Shape:
    id: int
    shape: str
    color: np.ndarray
    x: float
    y: float
    vx: float
    vy: float
    radius: float
    angle: float
    spin: float  # degrees per frame
    last_event: int = -1000  # frame of its last random event (reversals are kept apart)


def _new_shape(
    rng: np.random.Generator, ident: int, shapes: list[_Shape], cfg: SynthSpotConfig
) -> _Shape | None:
    """A shape at a free place (None when there is none), moving in a random direction."""
    radius = rng.uniform(0.07, 0.11) * cfg.size
    for _ in range(20):
        x, y = rng.uniform(radius + 1, cfg.size - radius - 1, size=2)
        if all(math.hypot(x - s.x, y - s.y) > radius + s.radius + 2 for s in shapes):
            heading, speed = rng.uniform(0, 2 * math.pi), rng.uniform(*cfg.speed)
            return _Shape(
                ident, str(rng.choice(SHAPES)), rng.uniform(0, 255, 3), x, y,
                speed * math.cos(heading), speed * math.sin(heading), radius,
                rng.uniform(0, 360), rng.uniform(-3, 3),
            )  # fmt: skip
    return None


def simulate(rng: np.random.Generator, num_frames: int, cfg: SynthSpotConfig):
    """The shapes of every frame (lists of their draw states) and the events, in frame order."""
    shapes: list[_Shape] = []
    next_id = 0
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        s = _new_shape(rng, next_id, shapes, cfg)
        if s is not None:
            shapes.append(s)
            next_id += 1
    p_reverse, p_pop = 1 / (cfg.reverse_every * cfg.fps), 1 / (cfg.appear_every * cfg.fps)
    frames, events = [], []
    for f in range(num_frames):
        happened = []
        if f > 0:  # random events (none on the first frame: nothing was there before it)
            if len(shapes) > cfg.min_objects and rng.random() < p_pop:
                gone = shapes.pop(int(rng.integers(len(shapes))))
                happened.append(("vanish", gone.id))
            if len(shapes) < cfg.max_objects and rng.random() < p_pop:
                s = _new_shape(rng, next_id, shapes, cfg)
                if s is not None:
                    shapes.append(s)
                    happened.append(("appear", s.id))
                    next_id += 1
            for s in shapes:
                if rng.random() < p_reverse and f - s.last_event > cfg.fps:
                    s.vx, s.vy, s.last_event = -s.vx, -s.vy, f
                    happened.append(("reverse", s.id))
        for s in shapes:  # continuous motion: heading drifts, speed wanders within its range
            turn = rng.normal(0, math.radians(3))
            c, si = math.cos(turn), math.sin(turn)
            s.vx, s.vy = c * s.vx - si * s.vy, si * s.vx + c * s.vy
            speed = float(np.clip(math.hypot(s.vx, s.vy) * rng.uniform(0.97, 1.03), *cfg.speed))
            norm = math.hypot(s.vx, s.vy)
            s.vx, s.vy = s.vx * speed / norm, s.vy * speed / norm
            s.x, s.y, s.angle = s.x + s.vx, s.y + s.vy, s.angle + s.spin
            bounced = False
            for axis in ("x", "y"):
                pos, vel = getattr(s, axis), getattr(s, "v" + axis)
                if (pos < s.radius and vel < 0) or (pos > cfg.size - s.radius and vel > 0):
                    setattr(s, "v" + axis, -vel)
                    bounced = True
            if bounced:
                happened.append(("bounce", s.id))
        for i, a in enumerate(shapes):  # equal masses, elastic: the normal components swap
            for b in shapes[i + 1 :]:
                dx, dy = b.x - a.x, b.y - a.y
                dist = math.hypot(dx, dy)
                approaching = (b.vx - a.vx) * dx + (b.vy - a.vy) * dy < 0
                if dist < a.radius + b.radius and approaching and dist > 0:
                    nx, ny = dx / dist, dy / dist
                    va, vb = a.vx * nx + a.vy * ny, b.vx * nx + b.vy * ny
                    a.vx, a.vy = a.vx + (vb - va) * nx, a.vy + (vb - va) * ny
                    b.vx, b.vy = b.vx + (va - vb) * nx, b.vy + (va - vb) * ny
                    push = (a.radius + b.radius - dist) / 2  # apart to touching: one contact, one event
                    a.x, a.y, b.x, b.y = a.x - push * nx, a.y - push * ny, b.x + push * nx, b.y + push * ny
                    happened.append(("collide", a.id))
        events += [(f, label, ident) for label, ident in happened]
        frames.append([(s.shape, s.color, s.x, s.y, s.radius, s.angle) for s in shapes])
    return frames, events


def render_spot_video(rng: np.random.Generator, cfg: SynthSpotConfig = SynthSpotConfig()):
    """Frames `(T, S, S, 3)` uint8 and the events [(frame, label, shape id)] of one video."""
    seconds = rng.uniform(cfg.min_seconds, cfg.max_seconds)
    num_frames = max(2, round(seconds * cfg.fps))
    background = textured_background(rng, cfg.size, cfg.texture)
    grid = np.mgrid[0 : cfg.size, 0 : cfg.size].astype(np.float32) + 0.5
    pulse = None
    if rng.random() < cfg.pulsing:  # a shape in place whose size breathes: motion that is no event
        pulse = (
            str(rng.choice(SHAPES)), rng.uniform(0, 255, 3), *rng.uniform(0.2, 0.8, 2) * cfg.size,
            rng.uniform(0.05, 0.08) * cfg.size, rng.uniform(0.5, 1.5) / cfg.fps,
        )  # fmt: skip
    states, events = simulate(rng, num_frames, cfg)
    video = np.empty((num_frames, cfg.size, cfg.size, 3), np.uint8)
    for f, shapes in enumerate(states):
        img = background.copy()
        if pulse is not None:
            shape, color, x, y, radius, rate = pulse
            r = radius * (1 + 0.35 * math.sin(2 * math.pi * rate * f))
            cov = shape_coverage(shape, x, y, r, 0.0, grid)[..., None]
            img = img * (1 - cov) + color * cov
        for shape, color, x, y, radius, angle in shapes:
            cov = shape_coverage(shape, x, y, radius, angle, grid)[..., None]
            img = img * (1 - cov) + color * cov
        if cfg.noise:
            img = img + rng.normal(0, cfg.noise, size=img.shape)
        video[f] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return video, events


def _make_one(job: tuple) -> tuple[str, list[Event]]:
    path, video, seed, split, index, cfg = job
    frames, events = render_spot_video(np.random.default_rng([seed, SPLITS.index(split), index, 11]), cfg)
    complete = is_complete_video(path, len(frames))
    if not complete:
        write_video(path, frames, fps=cfg.fps)
    return ("kept" if complete else "made"), [
        Event(video, f / cfg.fps, label, track=ident) for f, label, ident in events
    ]


def generate_spot_dataset(
    out: str,
    *,
    counts: dict[str, int],
    cfg: SynthSpotConfig = SynthSpotConfig(),
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """Write the videos, `out/SPLIT.csv`, `out/soccernet/SPLIT/*/Labels-v2.json` and
    `out/classes.txt`. Resumable: complete videos are kept (their events drawn again, the same)."""
    claim_folder(
        out, "synth_spot.json", {"seed": seed, "config": asdict(cfg)},
        lambda _: f"{out} holds a SynthMotion-Spot set made with other settings; use another directory",
    )  # fmt: skip
    atomic_write_text(os.path.join(out, "classes.txt"), "\n".join(SPOT_CLASSES) + "\n")
    jobs = []
    for split, count in counts.items():
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}' (valid: {', '.join(SPLITS)})")
        os.makedirs(os.path.join(out, "videos", split), exist_ok=True)
        for i in range(count):
            rel = f"videos/{split}/{split}_{i:05d}.mp4"
            jobs.append((os.path.join(out, rel), rel, seed, split, i, cfg))
    stats, events = {"made": 0, "kept": 0}, {split: [] for split in counts}
    how = {"desc": "synth-spot", "workers": workers, "progress": progress}
    for job, video_events in render_jobs(_make_one, jobs, stats, **how):
        events[job[3]] += video_events
    for split, split_events in events.items():
        write_events(split_events, os.path.join(out, f"{split}.csv"))
        game = lambda video: os.path.splitext(os.path.basename(video))[0]  # noqa: E731
        games = [Event(**{**e.__dict__, "video": game(e.video)}) for e in split_events]
        every = [game(job[1]) for job in jobs if job[3] == split]
        write_events(games, os.path.join(out, "soccernet", split), videos=every)
    return stats


__all__ = ["SPOT_CLASSES", "SynthSpotConfig", "generate_spot_dataset", "render_spot_video", "simulate"]
