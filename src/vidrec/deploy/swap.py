"""The one mechanism behind every deployable form: walk a model's modules and swap some of them
for their deployable counterparts (as PyTorchVideo's accelerator blocks `convert()` themselves)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def swap_modules(model: nn.Module, convert: Callable[[str, nn.Module], nn.Module | None]) -> nn.Module:
    """Replace, in place, every module for which `convert(path, module)` returns a module (the
    model itself is never replaced; a replacement is not walked into). Returns `model`."""

    def walk(parent: nn.Module, prefix: str) -> None:
        for name, child in list(parent.named_children()):
            path = f"{prefix}{name}"
            new = convert(path, child)
            if new is not None:
                setattr(parent, name, new)
            else:
                walk(child, path + ".")

    walk(model, "")
    return model


__all__ = ["swap_modules"]
