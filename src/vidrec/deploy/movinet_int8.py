"""MoViNet's int8 form: each float module swapped for one that computes as the int8 TFLite runtime
does (XNNPACK and TFLite kernels), bit for bit, in float32. The float model has no int8 code.

The grids `{point: (scale, zero_point, *input grids)}` come from the int8 file the weights were
imported from (vidrec.models.convert.tflite). A point is a module path (`stem`, `blocks.0.0.expansion`,
`blocks.0.0.rezero`, `blocks.0.0.skip_pool`, `blocks.0.0.add`, `project`, `hidden`, `head`) or a
rounding inside the model's pools (`input`, `frame_pool.sum`, `frame_pool.mean`, `pool.state`,
`pool.sum`, `pool.mean`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from vidrec.deploy.int8 import (
    fake_int8,
    from_int,
    int8_add,
    int8_affine,
    int8_sum,
    int8_weights,
    round_half_away,
    to_int,
)
from vidrec.deploy.swap import swap_modules
from vidrec.errors import ConfigError
from vidrec.models.movinet import (
    Add,
    CausalTemporalConv,
    FrameConv,
    MoViNet,
    ReZero,
    RunningMean,
    SkipPool,
    SpatialMean,
    int8_points,
)


def _folded(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias with its eval-mode batch norm folded in (as TFLite files hold them)."""
    bias = conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0, 0])
    if isinstance(bn, nn.BatchNorm2d):
        return fuse_conv_bn_weights(
            conv.weight, bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
    return conv.weight, bias


class _Int8Affine(nn.Module):
    """A conv or linear map with its activation, on integers: the weights quantized once."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, act: nn.Module, grid: tuple):
        super().__init__()
        self.grid, self.act = grid, act
        w_int, b_int, w_scale = int8_weights(weight.detach(), bias.detach(), float(grid[2]))
        self.register_buffer("w_int", w_int)
        self.register_buffer("b_int", b_int)
        self.register_buffer("w_scale", w_scale)

    def affine(self, x: torch.Tensor, apply, *, dim: int = 1) -> torch.Tensor:
        y = int8_affine(
            x, None, None, apply, self.grid, dim=dim, prepared=(self.w_int, self.b_int, self.w_scale)
        )
        return fake_int8(self.act(y), self.grid)


class Int8FrameConv(_Int8Affine):
    """FrameConv on integers; the stem first rounds the image onto the input grid."""

    def __init__(self, unit: FrameConv, grid: tuple, input_grid: tuple | None = None):
        super().__init__(*_folded(unit.conv, unit.bn), unit.act, grid)
        self.pad, self.input_grid = unit.pad, input_grid
        self.stride, self.groups = unit.conv.stride, unit.conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(fake_int8(x, self.input_grid))  # zeros: the input zero point, in the runtime's integers
        return self.affine(x, lambda v, w: F.conv2d(v, w, stride=self.stride, groups=self.groups))


class Int8TemporalConv(_Int8Affine):
    """CausalTemporalConv on integers; the stream buffer holds values already on its input grid."""

    def __init__(self, unit: CausalTemporalConv, grid: tuple):
        super().__init__(*_folded(unit.conv, unit.bn), unit.act, grid)
        self.unit = unit  # for its buffer handling and taps (its own weights are not used)
        self.buffer_size = unit.buffer_size

    def forward(self, x: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.unit.with_buffer(x, buffer)
        y = self.affine(frames, self.unit.taps)
        return y, frames[:, frames.shape[1] - self.unit.buffer_size :]


class Int8Linear(_Int8Affine):
    """A fully connected layer (and the activation after it) on integers."""

    def __init__(self, linear: nn.Linear, grid: tuple, act: nn.Module | None = None):
        super().__init__(linear.weight, linear.bias, act or nn.Identity(), grid)
        self.rounds_output = act is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = int8_affine(
            x, None, None, F.linear, self.grid, dim=-1, prepared=(self.w_int, self.b_int, self.w_scale)
        )
        return fake_int8(self.act(y), self.grid) if self.rounds_output else y


class Int8ReZero(nn.Module):
    def __init__(self, rezero: ReZero, grid: tuple):
        super().__init__()
        self.scale, self.grid = rezero.scale, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_int8(x * self.scale, self.grid)


class Int8SkipPool(nn.Module):
    """TFLite's int8 average pool: the mean of the stored integers, rounded half away from zero.
    Ties are common (4 or 6 pixels at the border): rounding the float mean differs in ~1% of outputs."""

    def __init__(self, pool: SkipPool, grid: tuple):
        super().__init__()
        self.pool, self.grid = pool, grid  # input and output share the grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_int(round_half_away(self.pool(to_int(x, self.grid))), self.grid)


class Int8Add(nn.Module):
    def __init__(self, add: Add, grid: tuple):
        super().__init__()
        self.grid = grid

    def forward(self, branch: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return int8_add(branch, skip, self.grid)


class Int8SpatialMean(nn.Module):
    """The runtime's frame mean: a rounded pixel sum times 1/(H*W), rounded again."""

    def __init__(self, pool: SpatialMean, sum_grid: tuple, mean_grid: tuple):
        super().__init__()
        self.sum_grid, self.mean_grid = sum_grid, mean_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_int8(int8_sum(x, (2, 3), self.sum_grid) / (x.shape[-2] * x.shape[-1]), self.mean_grid)


class Int8RunningMean(nn.Module):
    """The runtime rounds the state it reads back and the running sum, frame by frame."""

    def __init__(self, pool: RunningMean, state_grid: tuple, sum_grid: tuple, mean_grid: tuple):
        super().__init__()
        self.state_grid, self.sum_grid, self.mean_grid = state_grid, sum_grid, mean_grid

    def forward(
        self, feats: torch.Tensor, total: torch.Tensor, count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for frame in feats.unbind(1):
            total = int8_add(frame, fake_int8(total, self.state_grid), self.sum_grid)
        return fake_int8(total / (count.reshape(-1, 1) + feats.shape[1]), self.mean_grid), total


def to_int8_movinet(model: MoViNet, grids: dict) -> MoViNet:
    """A copy of `model` (eval mode) whose modules compute as the int8 runtime of `grids` does."""
    points = int8_points(model)
    missing, extra = sorted(set(points) - set(grids)), sorted(set(grids) - set(points))
    if missing or extra:
        raise ConfigError(
            f"the int8 grids do not fit {model.arch}: {len(missing)} points missing "
            f"(e.g. {missing[:3]}), {len(extra)} unknown (e.g. {extra[:3]})"
        )
    int8 = copy.deepcopy(model).eval()
    hidden_act = int8.hidden_act

    def convert(path: str, module: nn.Module) -> nn.Module | None:
        grid = grids.get(path)
        if isinstance(module, FrameConv):
            return Int8FrameConv(module, grid, input_grid=grids["input"] if path == "stem" else None)
        if isinstance(module, CausalTemporalConv):
            return Int8TemporalConv(module, grid)
        simple = {ReZero: Int8ReZero, SkipPool: Int8SkipPool, Add: Int8Add}
        if type(module) in simple:
            return simple[type(module)](module, grid)
        if path == "frame_pool":
            return Int8SpatialMean(module, grids["frame_pool.sum"], grids["frame_pool.mean"])
        if path == "pool":
            return Int8RunningMean(module, grids["pool.state"], grids["pool.sum"], grids["pool.mean"])
        if path == "hidden":
            return Int8Linear(module, grid, act=hidden_act)
        if path == "hidden_act":
            return nn.Identity()  # applied inside Int8Linear, before its rounding
        if path == "head":
            return Int8Linear(module, grid)
        return None

    return swap_modules(int8, convert)


__all__ = ["to_int8_movinet"]
