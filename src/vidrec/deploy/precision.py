"""`to_bfloat16(model)`: inference in bfloat16 where it is safe, float32 where it is not.

The model's entry points (forward, a stream model's step and step_features, forward_features) run
under `torch.autocast(dtype=torch.bfloat16)`: convolutions and matrix products in bfloat16,
normalisations, softmax and reductions in float32, as autocast decides; what comes out (logits,
features, a stream's state) is float32 again. On a CPU with native bfloat16 (AVX512-BF16 or AMX;
`lscpu` shows avx512_bf16 or amx_bf16) this is several times faster than float32 for the 3D CNNs
and VideoMAE (bench/precision.py records it); elsewhere it is emulated and slower. Logits move by
about 1e-2 of their range, so it is an opt-in (`--precision bf16`), never a default.
"""

from __future__ import annotations

import torch

from vidrec.models.base import ModelBase

ENTRY_POINTS = ("forward", "forward_features", "step", "step_features")


def _float32(out):
    """Floating tensors of `out` (a tensor, or tuples / lists / dicts of them) as float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {k: _float32(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(_float32(v) for v in out)
    return out


class _Autocast:
    """One entry point of `model` (the class's function: picklable, no bound method) under
    bfloat16 autocast on the device of the model's parameters."""

    def __init__(self, model: ModelBase, name: str):
        self.model, self.function = model, getattr(type(model), name)

    def __call__(self, *args, **kwargs):
        device = self.model.device.type
        with torch.autocast(device, dtype=torch.bfloat16):
            out = self.function(self.model, *args, **kwargs)
        return _float32(out)


def to_bfloat16(model: ModelBase) -> ModelBase:
    """`model` (in place, returned) computing in bfloat16 under autocast; see the module's docstring."""
    for name in ENTRY_POINTS:
        if callable(getattr(type(model), name, None)):
            setattr(model, name, _Autocast(model, name))
    model.precision = "bf16"
    return model


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (otherwise it is emulated, and slow)."""
    return bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()) and bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


__all__ = ["native_bfloat16", "to_bfloat16"]
