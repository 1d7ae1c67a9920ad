"""Training checkpoints that survive kills: each is written to a temp file and renamed, its
sha256 is recorded in `index.json` (also written atomically), the last K are kept plus the best.
Resuming takes the newest checkpoint that verifies; a corrupt one is reported and skipped. What a
checkpoint carries besides the weights: the RNG state, and the settings a resumed run must share."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import sys

import torch
from tqdm import tqdm

from vidrec.models.download import sha256_of
from vidrec.train.config import RunConfig
from vidrec.utils import atomic_write, atomic_write_text

INDEX = "index.json"
BEST = "best.pt"


class CheckpointManager:
    """The checkpoints of one run: atomic writes, sha256 index, the last K plus the best."""

    def __init__(self, directory: str, *, keep_last: int = 3, writer: bool = True):
        self.directory, self.keep_last, self.writer = directory, max(1, keep_last), writer
        self.index = self._read_index()

    def _read_index(self) -> dict:
        try:
            with open(os.path.join(self.directory, INDEX)) as f:
                index = json.load(f)
            if isinstance(index, dict) and isinstance(index.get("checkpoints"), list):
                return index
        except (OSError, json.JSONDecodeError):
            pass
        # no (readable) index: list what is there, unverified, newest last
        found = sorted(glob.glob(os.path.join(self.directory, "step-*.pt")))
        return {"checkpoints": [{"file": os.path.basename(p), "sha256": None} for p in found], "best": None}

    def exists(self) -> bool:
        """Whether the run has any checkpoint."""
        return bool(self.index["checkpoints"])

    def save(self, state: dict, *, step: int, metric: float | None = None) -> str | None:
        """Write `step-STEP.pt`; keep it as `best.pt` too when `metric` (higher is better) improves."""
        if not self.writer:
            return None
        os.makedirs(self.directory, exist_ok=True)
        name = f"step-{step:09d}.pt"
        path = os.path.join(self.directory, name)
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        entry = {
            "file": name,
            "sha256": sha256_of(path),
            "step": step,
            "epoch": state.get("epoch"),
            "metric": metric,
        }
        entries = [e for e in self.index["checkpoints"] if e["file"] != name] + [entry]
        best = self.index.get("best")
        if metric is not None and (best is None or metric > best["metric"]):
            atomic_write(os.path.join(self.directory, BEST), lambda tmp: shutil.copyfile(path, tmp))
            best = {**entry, "file": BEST}
        for old in entries[: -self.keep_last]:
            try:
                os.remove(os.path.join(self.directory, old["file"]))
            except FileNotFoundError:
                pass
        self.index = {"checkpoints": entries[-self.keep_last :], "best": best}
        atomic_write_text(os.path.join(self.directory, INDEX), json.dumps(self.index, indent=1) + "\n")
        return path

    def load(self, path: str, sha256: str | None = None) -> dict:
        """One checkpoint, verified against its recorded hash; ValueError says what is wrong."""
        if sha256 is not None and sha256_of(path) != sha256:
            raise ValueError("sha256 mismatch (truncated or modified)")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: never fatal while older ones exist
            raise ValueError(f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None

    def best(self) -> tuple[dict, dict] | None:
        """(state, index entry) of `best.pt` as the index on disk records it (every process of a
        distributed run reads the same one); None when there is none or it does not verify."""
        entry = self._read_index().get("best")
        if not entry:
            return None
        try:
            return self.load(os.path.join(self.directory, BEST), entry.get("sha256")), entry
        except (OSError, ValueError) as e:
            tqdm.write(f"warning: {BEST} is unusable ({e}); keeping the last weights", file=sys.stderr)
            return None

    def latest(self) -> tuple[dict, str] | None:
        """The newest checkpoint that verifies and loads, falling back past corrupt ones."""
        for entry in reversed(self.index["checkpoints"]):
            path = os.path.join(self.directory, entry["file"])
            if not os.path.exists(path):
                continue
            try:
                return self.load(path, entry.get("sha256")), path
            except ValueError as e:
                tqdm.write(
                    f"warning: checkpoint {path} is corrupt ({e}); falling back to an older one",
                    file=sys.stderr,
                )
        return None


def rng_state(device: torch.device) -> dict:
    """The global RNG state (and this device's CUDA one), to save in a checkpoint."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def resumable_settings(cfg: RunConfig) -> dict:
    """What must not change between a run and its resumption (epochs, logging and eval may)."""
    d = cfg.to_dict()
    d["schedule"].pop("epochs")
    d["data"].pop("workers")
    d["data"].pop("val")
    d["data"].pop("test")
    d["data"].pop("cache")  # where decoded frames are kept: the same frames either way
    d["data"].pop("videos")  # where the videos are: moving them changes nothing
    for key in ("log_every", "checkpoint_every", "keep_last", "tensorboard", "device", "out", "keep_best"):
        d["run"].pop(key)
    d.pop("eval")
    for key in ("nms", "threshold", "metric"):  # how events are picked and scored, not trained
        d["spotting"].pop(key)
    return _as_saved(d)


def _as_saved(tree: dict) -> dict:
    """`tree` as it comes back from a checkpoint: tuples as lists."""
    return json.loads(json.dumps(tree))


def changed_settings(saved: dict, cfg: RunConfig) -> list[str]:
    """The settings ("section.key") in which this run differs from the checkpoint's. A key the
    checkpoint lacks is a field added to vidrec since it was written: it counts as unchanged while
    it keeps its default, so upgrading vidrec does not strand a half-trained run."""
    now = resumable_settings(cfg)
    changed = []
    for section, values in now.items():
        if not isinstance(values, dict):  # a top-level setting (task)
            if saved.get(section, RunConfig.__dataclass_fields__[section].default) != values:
                changed.append(section)
            continue
        before = saved.get(section, {})
        defaults = _as_saved(dataclasses.asdict(type(getattr(cfg, section))()))
        for key, value in values.items():
            if before.get(key, defaults.get(key)) != value:
                changed.append(f"{section}.{key}")
    return changed
