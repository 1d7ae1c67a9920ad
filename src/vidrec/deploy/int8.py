"""The arithmetic of an int8 TFLite runtime (XNNPACK and TFLite's own kernels), bit for bit, in float32.

An int8 model stores every activation as integers `q` on a per-tensor grid: `x = (q - zero) * scale`.
Its convolutions multiply those integers by per-channel integer weights, and each op rounds its
result back onto its output grid. These helpers take and return ordinary float tensors that lie on
such grids, so a float model can reproduce the runtime exactly (`vidrec.deploy.to_int8`).

A grid is `(scale, zero_point)`, followed by the grids of the op's inputs where the op needs them.
Where the runtime rounds ties differently from `torch.round`, the helper follows the runtime: over
16 blocks, one flipped rounding in 10**6 outputs is enough to move the logits.
"""

from __future__ import annotations

import math

import torch


def to_int(x: torch.Tensor, grid) -> torch.Tensor:
    """The integers `q` (as floats) that `x`, which lies on `grid`, is stored as."""
    return torch.round(x / float(grid[0])) + int(grid[1])


def from_int(q: torch.Tensor, grid) -> torch.Tensor:
    """The values of the integers `q`, saturated to int8."""
    return (q.clamp(-128, 127) - int(grid[1])) * float(grid[0])


def fake_int8(x: torch.Tensor, grid) -> torch.Tensor:
    """`x` rounded to the int8 `grid` (half to even, saturating); unchanged where `grid` is None."""
    if grid is None:
        return x
    return torch.fake_quantize_per_tensor_affine(x, float(grid[0]), int(grid[1]), -128, 127)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, ties away from zero (TFLite's average pool)."""
    return x.sign() * (x.abs() + 0.5).floor()


def _float32(value: float) -> float:
    return torch.tensor(value, dtype=torch.float32).item()


def int8_weights(weight: torch.Tensor, bias: torch.Tensor, in_scale: float) -> tuple[torch.Tensor, ...]:
    """`(w_int, bias_int, w_scale)`: the weights on TFLite's symmetric per-channel grids (the largest
    weight of a channel is 127 steps) and the int32 bias on `in_scale * w_scale`, as integer floats."""
    w_scale = weight.abs().flatten(1).amax(1) / 127
    w_scale = torch.where(w_scale > 0, w_scale, torch.ones_like(w_scale))
    w_int = torch.round(weight / w_scale.view(-1, *[1] * (weight.ndim - 1)))
    return w_int, torch.round(bias / (in_scale * w_scale)), w_scale


def int8_affine(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    apply,
    grid,
    *,
    dim: int = 1,
    prepared: tuple[torch.Tensor, ...] | None = None,
) -> torch.Tensor:
    """`apply(x, weight) + bias` (a conv or linear map, output channels along `dim`) as XNNPACK
    computes it: `x` on the input grid `grid[2:4]`, the weights as `int8_weights` (or `prepared`,
    its result computed once), integer products summed exactly (float32 holds every partial sum
    exactly below 2**24: MoViNet's widest sum is 12.4M), the int32 bias added, then scaled by the
    float32 `in_scale * weight_scale / out_scale` and rounded half to even."""
    in_scale = float(grid[2])
    w_int, b_int, w_scale = prepared if prepared is not None else int8_weights(weight, bias, in_scale)
    acc = apply(torch.round(x / in_scale), w_int)  # x - zero point: zero padding stays exact
    view = [1] * acc.ndim
    view[dim] = -1
    acc = acc + b_int.view(view)
    q = torch.round(acc * (in_scale * w_scale / float(grid[0])).view(view)) + int(grid[1])
    return from_int(q, grid)


def int8_add(a: torch.Tensor, b: torch.Tensor, grid) -> torch.Tensor:
    """`a + b` as XNNPACK's int8 add: `a` on `grid[2:4]`, `b` on `grid[4:6]`, each integer times a
    fixed-point multiplier (`in_scale / out_scale` in float32, 21 significant bits for the larger),
    summed in integers and shifted back, rounding half up."""
    ratios = [_float32(_float32(s) / _float32(grid[0])) for s in (grid[2], grid[4])]
    shift = 20 - (math.frexp(max(map(abs, ratios)))[1] - 1)
    acc = 1 << (shift - 1)
    for x, ratio, in_scale in ((a, ratios[0], grid[2]), (b, ratios[1], grid[4])):
        acc = acc + torch.round(x / float(in_scale)).long() * round(ratio * 2**shift)  # lrintf: half to even
    return from_int(((acc >> shift) + int(grid[1])).to(a.dtype), grid)


def int8_sum(x: torch.Tensor, dims: tuple[int, ...], grid) -> torch.Tensor:
    """`x.sum(dims)` as TFLite's int8 SUM: the stored integers summed, then rescaled in float32 as
    `sum(q) * r - in_zero * r * n` with `r = in_scale / out_scale`, rounded half to even. The sums
    are often exact ties that `sum / n` computed otherwise would round the other way."""
    in_scale, in_zero = float(grid[2]), int(grid[3])
    n = math.prod(x.shape[d] for d in dims)
    ratio = torch.tensor(in_scale, dtype=x.dtype) / torch.tensor(float(grid[0]), dtype=x.dtype)
    sums = to_int(x, grid[2:4]).sum(dims)  # exact
    return from_int(torch.round(sums * ratio + (-in_zero * ratio * n)) + int(grid[1]), grid)


__all__ = [
    "fake_int8",
    "from_int",
    "int8_add",
    "int8_affine",
    "int8_sum",
    "int8_weights",
    "round_half_away",
    "to_int",
]
