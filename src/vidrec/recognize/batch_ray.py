"""`vidrec predict/extract --ray [ADDRESS]`: the same batch work on a Ray cluster with Ray Data.

    ray.data.from_items(videos) ─map(decode, Ray tasks, retried)─> decoded tensors (safetensors bytes)
      ─map_batches(model actors, an actor pool)─> rows as JSON ─> this process: the same ShardWriter

Decoding spreads over the cluster's CPUs; the model is put in the object store once and loaded by
each actor of the pool; Ray Data retries a task lost with its node and restarts a dead actor. The
rows come back to the driver, which writes the same resumable shards as a local run
(`vidrec.recognize.batch`).
Ray is imported only when called: `pip install 'vidrec[ray]'`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

import torch

from vidrec.data.datasets import Failed
from vidrec.errors import ConfigError
from vidrec.models.base import ModelBase
from vidrec.recognize.batch_work import BatchOptions, Decoder, Runner, Videos


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'vidrec[ray]'") from None
    return ray


def _pack(decoded) -> bytes:
    """Decoded tensors as safetensors bytes (no pickle crosses the cluster): "video", or
    "stream0", "stream1", ... for a model with several inputs."""
    from safetensors.torch import save

    if isinstance(decoded, tuple):
        return save({f"stream{i}": s.contiguous() for i, s in enumerate(decoded)})
    return save({"video": decoded.contiguous()})


def _unpack(data: bytes):
    from safetensors.torch import load

    tensors = load(data)
    return (
        tensors["video"] if "video" in tensors else tuple(tensors[f"stream{i}"] for i in range(len(tensors)))
    )


def _decode(row: dict, *, decoder: Decoder) -> dict:
    """A Ray Data row `{"video"}` -> `{"video", "data", "error"}`: runs as a Ray task."""
    torch.set_num_threads(1)
    path, decoded = Videos([row["video"]], decoder)[0]
    if isinstance(decoded, Failed):
        return {"video": path, "data": b"", "error": decoded.reason}
    return {"video": path, "data": _pack(decoded), "error": ""}


class _Model:
    """One actor of the pool: the model, and a batch of decoded rows -> JSON rows."""

    def __init__(self, model, options: BatchOptions, threads: int):
        ray = _ray()
        torch.set_num_threads(threads)
        model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.runner = Runner(model, options)

    def __call__(self, batch: dict) -> dict:
        items = [
            (str(v), Failed(str(v), str(e)) if e else _unpack(bytes(d)))
            for v, d, e in zip(batch["video"], batch["data"], batch["error"])
        ]
        return {"row": [json.dumps(r) for r in self.runner.rows(items)]}


def ray_rows(
    model: ModelBase,
    videos: list[str],
    options: BatchOptions,
    *,
    batch_size: int,
    address: str,
    actors: int = 1,
    actor_cpus: int = 1,
) -> Iterator[list[dict]]:
    """Rows batch by batch from a Ray cluster at `address` ("local": start one here; "auto": the
    cluster this machine belongs to)."""
    ray = _ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # this command shows its own (tqdm, in rows written)
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address, include_dashboard=False, log_to_driver=False
        )
    decoder = Decoder(model, options)
    model_ref = ray.put(model.eval().cpu())  # once in the object store, read by each actor
    ds = ray.data.from_items(
        [{"video": v} for v in videos], override_num_blocks=max(1, len(videos) // batch_size)
    )
    # Ray Data's defaults already retry a task lost with its node and restart a dead actor
    # (max_retries, max_restarts and max_task_retries all -1): nothing to set here.
    ds = ds.map(functools.partial(_decode, decoder=decoder), num_cpus=1)
    ds = ds.map_batches(
        _Model,
        fn_constructor_args=(model_ref, options, actor_cpus),
        batch_size=batch_size,
        concurrency=actors,
        num_cpus=actor_cpus,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        yield [json.loads(r) for r in batch["row"]]


__all__ = ["ray_rows"]
