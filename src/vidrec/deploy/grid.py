"""A model imported from a uint8 TFLite file, computing on that file's activation grids: each
layer the file quantizes gets its output rounded onto the file's uint8 grid (scale, zero point),
as the runtime stores it. The weights are already the file's dequantized values, so what remains
between this and the runtime is integer rounding inside the layers (under a pixel on boxes, about
0.003 on scores for the SSD detector)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from vidrec.deploy.swap import swap_modules
from vidrec.errors import ConfigError


class OnGrid(nn.Module):
    """`module`, its output snapped to a uint8 grid: `(clamp(round(y / s) + z, 0, 255) - z) * s`."""

    def __init__(self, module: nn.Module, scale: float, zero_point: int):
        super().__init__()
        self.module, self.scale, self.zero_point = module, scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused op for round, shift, clamp to [0, 255] and scale back
        return torch.fake_quantize_per_tensor_affine(self.module(x), self.scale, self.zero_point, 0, 255)


def on_uint8_grids(model: nn.Module) -> nn.Module:
    """A copy of `model` whose layers listed in `model.quant_grids` ({module path: (scale, zero
    point)}, set by the TFLite importer) compute on those grids."""
    grids = model.quant_grids
    if not grids:
        raise ConfigError(
            f"{type(model).__name__} has no uint8 grids (it was not imported from a uint8 file)"
        )
    out = copy.deepcopy(model)
    seen = set()

    def convert(path: str, module: nn.Module) -> nn.Module | None:
        if path in grids:
            seen.add(path)
            return OnGrid(module, *grids[path])
        return None

    swap_modules(out, convert)
    if missing := set(grids) - seen:
        raise ConfigError(f"uint8 grids for modules the model does not have: {sorted(missing)[:3]}")
    return out


__all__ = ["OnGrid", "on_uint8_grids"]
