"""torch.distributed for training and evaluation: torchrun's environment, gloo on CPU and nccl on
GPU, a resumable sharded batch sampler, reductions, and fully sharded data parallel (FSDP2: each
process holds 1/world of the parameters, gradients and optimizer state). One process (no torchrun)
is world size 1 and needs no process group."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place under torchrun (rank, world size, local rank); one process alone by default."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world > 1


def init_distributed(device: torch.device) -> Dist:
    """Join torchrun's process group (RANK / WORLD_SIZE / LOCAL_RANK in the environment)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def device_for(requested: torch.device, d: Dist) -> torch.device:
    """One GPU per process under torchrun."""
    if requested.type == "cuda" and d.enabled:
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return requested


class ShardedBatchSampler:
    """Batches of indices for one rank, reproducible from (seed, epoch) and resumable mid-epoch.

    Each global batch (`batch_size * world` indices of one shuffled order) is split into
    contiguous per-rank chunks, so N processes see exactly the batches one process with the
    global batch size would see. Without `drop_last` the order wraps around to fill the last
    batch (as DistributedSampler pads)."""

    def __init__(
        self, n: int, *, batch_size: int, d: Dist, seed: int, shuffle: bool = True, drop_last: bool = True
    ):
        self.n, self.batch_size, self.d, self.seed, self.shuffle = n, batch_size, d, seed, shuffle
        self.global_batch = batch_size * d.world
        self.drop_last = drop_last and n >= self.global_batch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Start an epoch's order (seeded by epoch), `start` batches in (a resumed run)."""
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return (
            self.n // self.global_batch if self.drop_last else math.ceil(self.n / self.global_batch)
        ) - self.start

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(
                self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            )
        else:
            order = torch.arange(self.n)
        batches = len(self) + self.start
        if batches * self.global_batch > self.n:  # wrap around to fill the last batch
            order = order.repeat(math.ceil(batches * self.global_batch / self.n))
        for b in range(self.start, batches):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[self.d.rank * self.batch_size : (self.d.rank + 1) * self.batch_size].tolist()


def all_reduce_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Sums across ranks (counts, loss sums, flags)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj, d: Dist) -> list:
    """Every rank's `obj`, on every rank."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def shard_model(model: nn.Module, units: list[nn.Module]) -> None:
    """Shard `model` in place over the process group (torch.distributed.fsdp.fully_shard): each of
    `units` (transformer blocks) is gathered only while it runs, the rest as one unit. Build the
    optimizer after: the parameters become sharded DTensors."""
    from torch.distributed.fsdp import fully_shard

    for unit in units:
        fully_shard(unit)
    fully_shard(model)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True)


# The state functions below take `fsdp`: whether the run uses run.strategy fsdp. Its checkpoints
# go through torch.distributed.checkpoint's whole-state API (the optimizer state keyed by parameter
# name), whether the model is sharded over several processes or runs in one, so either resumes the other.


def model_state(model: nn.Module, fsdp: bool) -> dict[str, torch.Tensor]:
    """The whole state dict of a model (sharded: a collective, on every rank)."""
    if not fsdp:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options())


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], fsdp: bool) -> None:
    """Load a whole state dict (as `model_state` gives) into a model, sharded or not."""
    if not fsdp:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_full_options())


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> dict:
    """The optimizer's whole state (fsdp: keyed by parameter name, gathered on every rank)."""
    if not fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options())


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, fsdp: bool) -> None:
    """Load what `optimizer_state` gave, into a sharded or unsharded optimizer alike."""
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_full_options())


def barrier(d: Dist) -> None:
    """Wait for every process (a no-op alone)."""
    if d.enabled:
        dist.barrier()
