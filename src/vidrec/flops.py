"""Multiply-accumulates of a forward pass, counted by torch.utils.flop_counter. Papers call
multiply-accumulates "FLOPs"; torch counts a multiply-add as 2 FLOPs, so MACs = FLOPs / 2."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    # torch's counter knows the CUDA attention kernels but not the CPU one SDPA dispatches to.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}  # keyed by op packet


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of `model` on a zero tensor of `input_shape` (batch included)."""
    x = torch.zeros(input_shape, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (every tensor, trainable or not)."""
    return sum(p.numel() for p in model.parameters())
