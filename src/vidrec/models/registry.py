"""The architectures: a plain dict of builders, name -> function(**config overrides) -> model.

Each model family lists its builders in `ARCHITECTURES`; nothing registers itself on import."""

from __future__ import annotations

from collections.abc import Callable

from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models import (
    ava_detector,
    i3d,
    movinet,
    slowfast,
    spotting,
    ssd,
    tsn,
    videomae,
    videomae_pretrain,
)
from vidrec.models.base import ModelBase

_FAMILIES = (i3d, slowfast, videomae, videomae_pretrain, movinet, tsn, ava_detector)


def _collect() -> dict[str, Callable[..., ModelBase]]:
    builders: dict[str, Callable[..., ModelBase]] = {}
    for family in _FAMILIES:
        for fn in family.ARCHITECTURES:
            if fn.__name__ in builders:
                raise ValueError(f"model '{fn.__name__}' is defined twice")
            builders[fn.__name__] = fn
    return builders


BUILDERS = _collect()
# Image models (the person detector): built and loaded by name like the rest (a converted SSD
# directory loads back), but not video architectures, so `list_models` leaves them out.
IMAGE_BUILDERS: dict[str, Callable[..., ModelBase]] = {"ssd_mobilenet_v1": ssd.ssd_mobilenet_v1}
# Event spotters read features, not frames: built and loaded by name too, listed apart.
SPOTTER_BUILDERS: dict[str, Callable[..., ModelBase]] = {fn.__name__: fn for fn in spotting.ARCHITECTURES}


def list_models() -> list[str]:
    """Every registered architecture name, sorted (`create_model` builds them; `vidrec models` lists them
    with their parameter counts)."""
    return sorted(BUILDERS)


def get_builder(name: str) -> Callable[..., ModelBase]:
    """The builder of `name` (a video architecture, or an image model); unknown names raise with
    the closest video architecture."""
    if name in IMAGE_BUILDERS:
        return IMAGE_BUILDERS[name]
    if name in SPOTTER_BUILDERS:
        return SPOTTER_BUILDERS[name]
    if name not in BUILDERS:
        raise ConfigError(unknown_name_message("model", name, list(BUILDERS)))
    return BUILDERS[name]


def create_model(name: str, **overrides) -> ModelBase:
    """Build a registered architecture; `overrides` replace fields of its config dataclass
    (`num_classes=12`, `dropout=0.2`, ...). Unknown names raise with what exists."""
    return get_builder(name)(**overrides)


__all__ = ["BUILDERS", "IMAGE_BUILDERS", "SPOTTER_BUILDERS", "create_model", "get_builder", "list_models"]
