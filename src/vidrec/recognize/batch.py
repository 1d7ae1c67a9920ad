"""Prediction and feature extraction over many videos: `vidrec predict --list` and `vidrec extract`.

    videos (a list file, a folder or a glob)
      └─ not yet in OUT ─> decode (DataLoader worker processes, or Ray tasks)
                             └─> the model on batches of videos (this process, or a Ray actor pool)
                                   └─> rows ─> ShardWriter: OUT/part-*.parquet, one row per video

A row is `vidrec predict --json`'s object plus "error" (None, or why the video failed: a failed
video is a row too, and a re-run skips it unless asked to retry). Extraction rows carry the
model's pooled features, the vector its classifier reads: "feature" (averaged over the views) or,
with `per_clip`, "features" (one per view). Re-running on the same OUT skips what is done; a
killed run loses at most the batch in flight (`vidrec.io.shards`).
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterator
from dataclasses import asdict

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrec.errors import ConfigError
from vidrec.io.folders import claim_folder
from vidrec.io.shards import ShardWriter
from vidrec.io.video import VIDEO_EXTENSIONS
from vidrec.models.base import ModelBase
from vidrec.recognize.batch_ray import ray_rows
from vidrec.recognize.batch_work import BatchOptions, Decoder, Runner, Videos, model_features
from vidrec.utils import state_fingerprint

META = "_meta.json"
FEATURE_COLUMNS = ("feature", "features")


def list_videos(spec: str) -> list[str]:
    """The videos `spec` names: a folder (every video file under it), a list file (.txt: one path
    per line, '#' comments; .csv: its "video" or "path" column, else its first), or a glob. Relative paths
    in a list are relative to the list's folder. Duplicates are kept once, in order."""
    if os.path.isdir(spec):
        found = [
            os.path.join(d, f)
            for d, _, files in os.walk(spec)
            for f in files
            if f.lower().endswith(VIDEO_EXTENSIONS)
        ]
        videos = sorted(found)
    elif os.path.isfile(spec):
        with open(spec, newline="") as f:
            if spec.lower().endswith(".csv"):
                rows = list(csv.reader(f))
                header = [c.strip().lower() for c in rows[0]] if rows else []
                named = next((c for c in ("video", "path") if c in header), None)  # vidrec's CSVs: path
                column = header.index(named) if named else 0
                body = rows[1:] if named else rows
                names = [r[column].strip() for r in body if len(r) > column and r[column].strip()]
            else:
                names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        base = os.path.dirname(spec)
        videos = [
            n if os.path.isabs(n) or "://" in n else os.path.normpath(os.path.join(base, n)) for n in names
        ]
    elif glob.has_magic(spec):
        videos = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
    else:
        raise ConfigError(f"{spec}: no such list file, folder or glob")
    if not videos:
        raise ConfigError(f"{spec}: no videos in it")
    return list(dict.fromkeys(videos))


def local_rows(
    model: ModelBase, videos: list[str], options: BatchOptions, *, batch_size: int, workers: int, device
) -> Iterator[list[dict]]:
    """Rows batch by batch: `workers` processes decode, this one runs the model."""
    runner = Runner(model, options, device)
    loader = DataLoader(
        Videos(videos, Decoder(model, options)),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2 if workers else None,
    )
    for items in loader:
        yield runner.rows(items)


def run_batch(
    model: ModelBase,
    videos: list[str],
    out: str,
    *,
    options: BatchOptions = BatchOptions(),
    batch_size: int = 8,
    workers: int = 2,
    shard_size: int = 1000,
    device: torch.device | str = "cpu",
    retry_failed: bool = False,
    progress: bool = True,
    ray_address: str | None = None,
) -> dict:
    """Predict or extract every video of `videos` not yet in `out` (see the module's docstring);
    with `ray_address` ("local" starts a local Ray) on a Ray cluster. Returns a summary:
    videos, done before, processed now, failed (all runs) and the first failure, shards."""
    if batch_size < 1 or workers < 0:
        raise ConfigError(f"--batch-size must be >= 1 and --workers >= 0, got {batch_size} and {workers}")
    # The weights' fingerprint too: rows of another training of the same architecture are not
    # these rows, and a re-run must not skip over them.
    meta = {"task": options.task, "model": model.arch, "weights": state_fingerprint(model), **asdict(options)}

    def refusal(old: dict) -> str:
        changed = ", ".join(f"{k} {old.get(k)} (now {v})" for k, v in meta.items() if old.get(k) != v)
        return f"{out} holds {old.get('task')} rows made with other settings: {changed}; use another --out"

    claim_folder(out, META, meta, refusal)  # a folder holds one model's one kind of rows
    with ShardWriter(out, shard_size=shard_size, float32=FEATURE_COLUMNS) as writer:
        if retry_failed:
            writer.forget([v for v, error in writer.done.items() if error])
        todo = [v for v in videos if v not in writer.done]
        before = len(videos) - len(todo)
        if todo:
            if ray_address is not None:
                batches = ray_rows(model, todo, options, batch_size=batch_size, address=ray_address)
            else:
                batches = local_rows(
                    model, todo, options, batch_size=batch_size, workers=workers, device=device
                )
            with tqdm(total=len(todo), unit="video", desc=options.task, disable=not progress) as bar:
                for rows in batches:
                    writer.add(rows)
                    bar.update(len(rows))
        errors = [(v, writer.done[v]) for v in videos if writer.done.get(v)]
    return {
        "out": out,
        "videos": len(videos),
        "done_before": before,
        "processed": len(todo),
        "failed": len(errors),
        "first_error": f"{errors[0][0]}: {errors[0][1]}" if errors else None,
        "shards": writer.next_shard,
    }


__all__ = [
    "BatchOptions",
    "Decoder",
    "Runner",
    "list_videos",
    "local_rows",
    "model_features",
    "run_batch",
]
