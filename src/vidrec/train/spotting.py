"""Event spotting's data for `task: spotting`: events (CSV) of the videos of each split, their
features from a frozen extractor (computed once into `spotting.features` by the same work as
`vidrec extract --rate`, then read back), training windows with per-step targets, and the
evaluation of a spotter as SoccerNet scores it.

    train.csv (video,time,label) ─┐
    extractor ─ features/ shards ─┴─> windows of `window` s: features (T, D), targets (T,)
                                       0 = no event, 1 + c within label_radius steps of an event
    val / test: the whole video through the spotter ─> peaks (vidrec.recognize.spot) ─>
                average-mAP (vidrec.metrics.spotting)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrec.errors import ConfigError
from vidrec.io.events import Event, read_events_csv, write_events
from vidrec.io.shards import read_shards, shard_paths
from vidrec.metrics.spotting import spotting_map
from vidrec.models.base import SpottingModel
from vidrec.models.loader import load_model
from vidrec.models.registry import create_model
from vidrec.recognize.batch import BatchOptions, run_batch
from vidrec.recognize.spot import pick_events
from vidrec.train.config import RunConfig
from vidrec.train.setup import split_path
from vidrec.utils import atomic_write_text

IGNORE = -100  # the target of padding steps (cross-entropy skips them)


@dataclass
class SpotSplit:
    """One split: its videos (paths), their events, and each video's features once loaded."""

    videos: list[str]
    events: list[Event]
    timelines: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # times, feats


def _read_split(path: str) -> SpotSplit:
    """Events of a CSV; their videos resolved relative to the CSV's folder (as vidrec synth-spot
    writes them, and as `vidrec extract --list CSV` names them in its rows)."""
    base = os.path.dirname(path)
    events = read_events_csv(path)
    resolve = lambda v: v if os.path.isabs(v) or "://" in v else os.path.normpath(os.path.join(base, v))  # noqa: E731
    events = [Event(**{**e.__dict__, "video": resolve(e.video)}) for e in events]
    return SpotSplit(list(dict.fromkeys(e.video for e in events)), events)


def load_spot_splits(cfg: RunConfig) -> tuple[dict[str, SpotSplit], list[str]]:
    """The splits given (train needed) and the class names (classes.txt beside train.csv, else
    the training labels, sorted)."""
    if cfg.data.train is None:
        raise ConfigError("data.train is not set (an events CSV, or a directory with train.csv)")
    train = cfg.data.train
    if os.path.isdir(train):
        train = os.path.join(train, "train.csv")
    if not os.path.isfile(train):
        raise ConfigError(f"data.train: {train}: no such file")
    splits = {"train": _read_split(train)}
    for name in ("val", "test"):
        path = split_path(cfg, name)
        if path:
            if not os.path.isfile(path):
                raise ConfigError(f"data.{name}: {path}: no such file")
            splits[name] = _read_split(path)
    listed = os.path.join(os.path.dirname(train), "classes.txt")
    if os.path.exists(listed):
        with open(listed) as f:
            classes = [line.strip() for line in f if line.strip()]
    else:
        classes = sorted({e.label for e in splits["train"].events})
    if not splits["train"].events:
        raise ConfigError(f"{train}: no events to learn from")
    unknown = sorted({e.label for s in splits.values() for e in s.events} - set(classes))
    if unknown:
        raise ConfigError(f"event label {unknown[0]!r} is not one of the classes ({', '.join(classes)})")
    return splits, classes


def ensure_features(
    cfg: RunConfig, videos: list[str], *, causal: bool, device, log: Callable[[str], None]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each video's (times, features) from spotting.features; those missing are extracted there
    first with spotting.extractor (resumable shards; the folder refuses another extractor's)."""
    s = cfg.spotting
    meta_path = os.path.join(s.features, "_meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        made, asked = (meta.get("rate"), bool(meta.get("causal"))), (s.rate, causal)
        if made != asked:
            clips = lambda c: "causal" if c else "centred"  # noqa: E731
            raise ConfigError(
                f"{s.features} holds features at {made[0]} steps/s, {clips(made[1])} clips; this run wants "
                f"{asked[0]:g}, {clips(asked[1])} (spotting.rate, spotting.causal_features): use another "
                "spotting.features"
            )
    shards = shard_paths(s.features)
    done = set(read_shards(s.features, columns=["video"]).column("video").to_pylist()) if shards else set()
    missing = [v for v in videos if v not in done]
    if missing:
        if s.extractor is None:
            raise ConfigError(
                f"{len(missing)} videos have no features in {s.features} (e.g. {missing[0]}): "
                "set spotting.extractor to compute them"
            )
        log(f"features of {len(missing)} videos with {s.extractor} at {s.rate:g} steps/s into {s.features}")
        options = BatchOptions(task="extract", rate=s.rate, causal=causal)
        summary = run_batch(
            load_model(s.extractor), missing, s.features, options=options, workers=0, device=device
        )
        if summary["failed"]:
            raise ConfigError(f"feature extraction failed: {summary['first_error']}")
    table = read_shards(s.features, columns=["video", "times", "features", "error"])
    wanted, out = set(videos), {}
    names, errors = table.column("video").to_pylist(), table.column("error").to_pylist()
    for i, (video, error) in enumerate(zip(names, errors)):
        if video in wanted and error is None:  # straight to numpy: no Python list per number
            times = table.column("times")[i].values.to_numpy(zero_copy_only=False).astype(np.float64)
            flat = table.column("features")[i].values.flatten().to_numpy(zero_copy_only=False)
            out[video] = times, flat.astype(np.float32).reshape(len(times), -1)
    failed = sorted(wanted - set(out))
    if failed:
        raise ConfigError(f"{failed[0]}: its features failed in {s.features}")
    return out


def step_targets(times: np.ndarray, events: list[Event], classes: list[str], radius: int) -> np.ndarray:
    """`(T,)` targets: 0, or 1 + the class of an event within `radius` steps of the step nearest it
    (a later event overwrites an earlier one's steps)."""
    targets = np.zeros(len(times), np.int64)
    index = {name: i for i, name in enumerate(classes)}
    for e in sorted(events, key=lambda e: e.time):
        k = int(np.argmin(np.abs(times - e.time)))
        targets[max(0, k - radius) : k + radius + 1] = 1 + index[e.label]
    return targets


class SpotWindows(Dataset):
    """Training windows of `steps` feature steps drawn across the videos (in proportion to their
    length), reproducible per (seed, epoch, index): `{"video": (T, D) features, "label": (T,)}`."""

    def __init__(self, split: SpotSplit, classes: list[str], *, steps: int, radius: int, seed: int):
        self.items = []
        for video in split.videos:
            times, feats = split.timelines[video]
            mine = [e for e in split.events if e.video == video]
            self.items.append((feats, step_targets(times, mine, classes, radius)))
        self.steps, self.seed, self.epoch = steps, seed, 0
        lengths = np.array([len(t) for _, t in self.items], np.float64)
        self.weights = lengths / lengths.sum()
        # each step is seen about twice an epoch
        self.count = max(1, math.ceil(2 * lengths.sum() / steps))

    def __len__(self) -> int:
        return self.count

    def set_epoch(self, epoch: int) -> None:
        """Other windows each epoch, the same for a seed and epoch."""
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        feats, targets = self.items[int(rng.choice(len(self.items), p=self.weights))]
        start = int(rng.integers(0, max(1, len(targets) - self.steps + 1)))
        x = np.zeros((self.steps, feats.shape[1]), np.float32)
        y = np.full(self.steps, IGNORE, np.int64)
        n = min(self.steps, len(targets) - start)
        x[:n], y[:n] = feats[start : start + n], targets[start : start + n]
        return {"video": torch.from_numpy(x), "label": torch.from_numpy(y), "index": i}


def collate_windows(items: list[dict]) -> dict:
    """A batch of windows: features `(B, T, D)`, targets `(B, T)` (no window fails to load)."""
    return {
        "video": torch.stack([x["video"] for x in items]),
        "label": torch.stack([x["label"] for x in items]),
        "index": torch.tensor([x["index"] for x in items]),
        "failed": [],
    }


def spot_loss(logits: torch.Tensor, targets: torch.Tensor, fg_weight: float) -> torch.Tensor:
    """Cross-entropy over every step, event classes weighted `fg_weight` against "no event"."""
    weight = torch.full((logits.shape[-1],), fg_weight, device=logits.device)
    weight[0] = 1.0
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), weight=weight, ignore_index=IGNORE
    )


@torch.inference_mode()
def spot_split(model: SpottingModel, split: SpotSplit, cfg: RunConfig) -> list[Event]:
    """The events the spotter finds in every video of a split (on the model's device)."""
    model.eval()
    found = []
    for video in split.videos:
        times, feats = split.timelines[video]
        probs = model.probabilities(torch.from_numpy(feats))
        found += pick_events(
            probs,
            times,
            model.class_names,
            video=video,
            nms=cfg.spotting.nms,
            threshold=cfg.spotting.threshold,
        )
    return found


def score_split(model, split: SpotSplit, cfg: RunConfig, *, metric: str) -> float:
    """average-mAP (%) of the spotter on a split."""
    found = spot_split(model, split, cfg)
    return 100.0 * spotting_map(split.events, found, model.class_names, metric=metric).a_mAP


def reads_causal_features(cfg: RunConfig) -> bool:
    """Whether the run's features are clips ending at each step: spotting.causal_features, else
    what the spotter the run builds says (its `causal_features`, or a causal network)."""
    if cfg.spotting.causal_features is not None:
        return cfg.spotting.causal_features
    if cfg.model.init is not None:
        config = load_model(cfg.model.init).config
    else:
        with torch.device("meta"):  # its config only: no weights made
            config = create_model(cfg.model.name, **cfg.model.options).config
    return bool(config.causal_features or config.causal)


def write_test_report(out: str, split: SpotSplit, found: list[Event], classes: list[str]) -> dict:
    """Tight and loose average-mAP of the test split into `out/test_report.json`, the events into
    `out/test_events.csv`; returns the summary."""
    report = {}
    for metric in ("tight", "loose"):
        score = spotting_map(split.events, found, classes, metric=metric)
        report[metric] = score.to_dict()
    write_events(found, os.path.join(out, "test_events.csv"))
    atomic_write_text(os.path.join(out, "test_report.json"), json.dumps(report, indent=1) + "\n")
    return {
        "test_tight_a_mAP": 100 * report["tight"]["a_mAP"],
        "test_loose_a_mAP": 100 * report["loose"]["a_mAP"],
    }


__all__ = [
    "SpotSplit",
    "SpotWindows",
    "collate_windows",
    "ensure_features",
    "load_spot_splits",
    "reads_causal_features",
    "score_split",
    "spot_loss",
    "spot_split",
    "step_targets",
    "write_test_report",
]
