"""What every vidrec model shares: its config, labels and preprocessing, and saving."""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from vidrec.data.transforms import Preprocessing
from vidrec.errors import ConfigError, unknown_name_message


def build_config(config_cls: type, defaults: dict, overrides: dict):
    """`config_cls(**defaults, **overrides)`, naming any override the config does not have."""
    valid = [f.name for f in dataclasses.fields(config_cls)]
    for key in overrides:
        if key not in valid:
            raise ConfigError(unknown_name_message(f"option for {config_cls.__name__}", key, valid))
    # JSON has no tuples: a config read back from config.json gives lists.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in {**defaults, **overrides}.items()}
    return config_cls(**values)


def linear_head(in_features: int, num_classes: int) -> nn.Linear:
    """Classifier initialised as PySlowFast's heads: normal(std=0.01) weights, zero bias."""
    head = nn.Linear(in_features, num_classes)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    return head


def build_model(model_cls: type, config_cls: type, *, arch: str, defaults: dict, overrides: dict,
                preprocessing: Preprocessing):
    """What every registered builder does: config from defaults + overrides, then name and inputs."""
    model = model_cls(build_config(config_cls, defaults, overrides))
    model.arch, model.preprocessing = arch, preprocessing
    return model


class VideoModel(nn.Module):
    """Base of vidrec models: input `(B, C, T, H, W)` float, output logits `(B, num_classes)`.

    Subclasses set `self.config` (a dataclass with `num_classes`) and `self.head`, and implement
    `forward_features`, `forward_head(x, pre_logits=False)` and `make_head(num_classes)`.
    """

    arch: str = ""  # registry name, set by the builder
    labels: list[str] | None = None  # class names in logit order, when known
    preprocessing: Preprocessing = Preprocessing()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for `num_classes` (fine-tuning on other labels)."""
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.head = self.make_head(num_classes)
        self.labels = None

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (beyond norms and biases)."""
        return set()

    def set_labels(self, labels: list[str] | None) -> None:
        if labels is not None and len(labels) != self.num_classes:
            raise ConfigError(f"{len(labels)} labels given for a model with {self.num_classes} classes")
        self.labels = list(labels) if labels is not None else None

    def check_input(self, x: torch.Tensor) -> None:
        """One clear error for the most common mistake: a wrong layout or channel count."""
        channels = getattr(self.config, "in_channels", 3)
        if x.ndim != 5 or x.shape[1] != channels:
            raise ConfigError(f"{self.arch} expects input (B, {channels}, T, H, W), got {tuple(x.shape)}")

    def save_pretrained(self, directory: str | os.PathLike, *, format: str = "vidrec") -> None:
        """`format="vidrec"`: config.json + model.safetensors. `format="transformers"` (VideoMAE):
        a directory transformers' `from_pretrained` loads."""
        if format == "transformers":
            if not self.arch.startswith("videomae"):
                raise ConfigError(f"{self.arch} has no transformers counterpart; use format='vidrec'")
            from vidrec.convert.videomae import save_transformers_videomae

            return save_transformers_videomae(self, os.fspath(directory))
        if format != "vidrec":
            raise ConfigError(unknown_name_message("format", format, ["vidrec", "transformers"]))
        from vidrec.hub import save_pretrained

        save_pretrained(self, directory)


def config_dict(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


__all__ = ["VideoModel", "build_config", "build_model", "config_dict", "linear_head"]
