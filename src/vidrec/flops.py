"""Multiply-accumulates of a forward pass, counted by torch.utils.flop_counter. Papers call
multiply-accumulates "FLOPs"; torch counts a multiply-add as 2 FLOPs, so MACs = FLOPs / 2."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of `model` on a zero tensor of `input_shape` (batch included)."""
    x = torch.zeros(input_shape, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
