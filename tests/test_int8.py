"""The int8 runtime arithmetic (vidrec.deploy.int8) on its own: exact integer sums in float32, the
runtime's rounding of ties. tests/test_movinet.py checks it bit for bit against the TFLite runtime."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidrec.deploy.int8 import fake_int8, int8_add, int8_affine, int8_sum
from vidrec.deploy.movinet_int8 import Int8SkipPool
from vidrec.models.movinet import SkipPool


def test_int8_affine_sums_integers_exactly():
    """A 1x1 conv over 384 channels of 8-bit integers (MoViNet's widest): float32 gives the int64 sum."""
    g = torch.Generator().manual_seed(0)
    in_grid, out_scale = (0.02, -128), 0.5
    q_in = torch.randint(-128, 128, (2, 384, 5, 5), generator=g)
    q_w = torch.randint(-127, 128, (16, 384, 1, 1), generator=g)
    q_w[:, 0] = 127  # every channel's largest weight is 127 steps, as TFLite quantizes
    w_scale = torch.rand(16, generator=g) * 0.01 + 0.001
    bias_int = torch.randint(-5000, 5000, (16,), generator=g)
    x = (q_in - in_grid[1]).float() * in_grid[0]
    weight = q_w.float() * w_scale[:, None, None, None]
    bias = bias_int.float() * (in_grid[0] * w_scale)
    y = int8_affine(x, weight, bias, F.conv2d, (out_scale, 3, *in_grid))
    acc = np.einsum(
        "bchw,oc->bohw",
        (q_in - in_grid[1]).numpy().astype(np.int64),
        q_w[:, :, 0, 0].numpy().astype(np.int64),
    )
    acc = acc + bias_int.numpy()[None, :, None, None]
    mult = (np.float32(in_grid[0]) * w_scale.numpy() / np.float32(out_scale)).astype(np.float32)
    want = np.clip(np.round(acc.astype(np.float32) * mult[None, :, None, None]) + 3, -128, 127)
    assert np.array_equal(torch.round(y / out_scale).numpy() + 3, want)
    inside = torch.from_numpy((want > -128) & (want < 127))  # not saturated: within half a step of float
    assert inside.float().mean() > 0.5
    assert (y - F.conv2d(x, weight, bias))[inside].abs().max() <= out_scale * 0.5 + 1e-4


def test_rounding_of_ties_follows_the_runtime():
    """Each op rounds exact ties as its TFLite/XNNPACK kernel does, where torch.round (half to
    even, as fake_int8) would differ: add half up, sum half to even, average pool half away from
    zero in the stored integers (so a zero point of -128 changes the result)."""
    step = 0.2
    a = torch.tensor([0.1, -0.1, 0.5, 0.3])  # on (0.1, 0): halves of the output step
    got = int8_add(a, torch.zeros(4), (step, 0, 0.1, 0, 0.1, 0)) / step
    assert got.tolist() == [1.0, 0.0, 3.0, 2.0]
    assert (fake_int8(a, (step, 0)) / step).tolist() == [0.0, 0.0, 2.0, 2.0]

    q = torch.tensor([[1, 1, 0, 0], [3, 3, 0, 0], [5, 5, 0, 0], [1, 0, 0, 0]]).float().view(4, 1, 2, 2)
    sums = int8_sum(q * 0.1, (2, 3), (0.4, 0, 0.1, 0)) / 0.4  # 0.5, 1.5, 2.5, 0.25 steps
    assert sums.flatten().tolist() == [0.0, 2.0, 2.0, 0.0]

    # a 2x2 map: one 'SAME' 3x3 stride-2 window holding 4 pixels, mean 0.5 step
    pair = torch.tensor([0.1, 0.1, 0.0, 0.0]).view(1, 1, 2, 2)
    assert torch.allclose(Int8SkipPool(SkipPool(), (0.1, 0))(pair), torch.tensor(0.1))
    assert torch.allclose(Int8SkipPool(SkipPool(), (0.1, 0))(-pair), torch.tensor(-0.1))
    assert torch.allclose(Int8SkipPool(SkipPool(), (0.1, -128))(pair), torch.tensor(0.0))  # -127.5 -> -128
    assert torch.allclose(SkipPool()(pair), torch.tensor(0.05))  # float: the plain mean
