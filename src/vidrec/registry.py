"""A plain dict of model builders: name -> function(**config overrides) -> model."""

from __future__ import annotations

from collections.abc import Callable

from vidrec.errors import ConfigError, unknown_name_message

_BUILDERS: dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    """Decorator: register a builder under its function name (only a dict insert)."""
    if fn.__name__ in _BUILDERS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _BUILDERS[fn.__name__] = fn
    return fn


def _ensure_models_imported() -> None:
    import vidrec.models  # noqa: F401  (registers the builders)


def list_models() -> list[str]:
    _ensure_models_imported()
    return sorted(_BUILDERS)


def get_builder(name: str) -> Callable:
    _ensure_models_imported()
    if name not in _BUILDERS:
        raise ConfigError(unknown_name_message("model", name, list(_BUILDERS)))
    return _BUILDERS[name]


def create_model(name: str, **overrides):
    """Build a registered architecture; `overrides` replace fields of its config dataclass
    (`num_classes=12`, `dropout=0.2`, ...). Unknown names raise with what exists."""
    return get_builder(name)(**overrides)
