"""How a model wants its input (`Preprocessing`), saved in config.json beside its weights. Plain
settings, no tensors: the command line builds its flags from these fields without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from vidrec.data.sampling import ClipSampling
from vidrec.errors import ConfigError, unknown_name_message

KINETICS_MEAN = (0.45, 0.45, 0.45)  # PySlowFast / PyTorchVideo Kinetics statistics
KINETICS_STD = (0.225, 0.225, 0.225)
TRAIN_CROPS = ("jitter", "resized")
MODALITIES = ("rgb", "flow")
CENTERINGS = ("dataset", "clip", "frame")


def _setting(default, text: str):
    """A preprocessing field with its help text (shown by `vidrec train --help` and in configs)."""
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its input: saved in config.json next to its weights. Every field is also
    a `data:` key of a run config and a `vidrec train` flag (`vidrec.train.config.PREPROCESSING_FIELDS`)."""

    num_frames: int = _setting(8, "frames per clip")
    sampling_rate: int = _setting(4, "stride between sampled frames")
    frame_sampling: str = _setting(
        "stride",
        "'stride': num_frames frames sampling_rate apart (Kinetics); 'segments': the video cut into "
        "num_frames equal parts, a frame from each (Something-Something V2: the whole action in a clip)",
    )
    target_fps: float | None = _setting(None, "resample videos to this rate before sampling (None: native)")
    resize: int = _setting(128, "short side for testing, before the crop")
    crop_size: int = _setting(112, "square side fed to the model in training")
    test_crop_size: int | None = _setting(
        None, "square side for testing (None: crop_size; SlowFast tests at 256)"
    )
    mean: tuple[float, float, float] = _setting(KINETICS_MEAN, "per-channel mean of RGB in [0, 1]")
    std: tuple[float, float, float] = _setting(KINETICS_STD, "per-channel std of RGB in [0, 1]")
    centering: str = _setting(
        "dataset",
        "'dataset': subtract `mean`; 'clip': subtract each clip's own per-channel mean instead, so its "
        "overall colour carries no signal (whole clips only: not for frame-by-frame streaming); 'frame': "
        "each frame's own per-channel mean (causal, so stream models can use it)",
    )
    train_crop: str = _setting(
        "jitter",
        "'jitter': short side in [resize, 1.25*resize] + random crop; 'resized': random resized crop",
    )
    train_scale: tuple[float, float] = _setting((0.25, 1.0), "area range of the 'resized' crop")
    flip: bool = _setting(True, "random horizontal flip in training (false where labels depend on direction)")
    pad: str = _setting("repeat_last", "short-video policy: 'repeat_last' or 'loop' (vidrec.data.sampling)")
    modality: str = _setting(
        "rgb", "'rgb' frames, or 'flow' (x, y fields from vidrec flow: a flip negates x)"
    )

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ConfigError(unknown_name_message("modality", self.modality, MODALITIES))
        if self.train_crop not in TRAIN_CROPS:
            raise ConfigError(unknown_name_message("train_crop", self.train_crop, TRAIN_CROPS))
        if self.centering not in CENTERINGS:
            raise ConfigError(unknown_name_message("centering", self.centering, CENTERINGS))
        for name in ("crop_size", "test_crop_size"):
            if (getattr(self, name) or 0) > self.resize:
                raise ConfigError(
                    f"{name} {getattr(self, name)} is larger than resize {self.resize} (the short "
                    f"side it is cut from): lower {name} or raise resize"
                )
        _ = self.sampling  # validates the frame settings

    @property
    def sampling(self) -> ClipSampling:
        """The clip-sampling settings these fields describe."""
        return ClipSampling(
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            target_fps=self.target_fps,
            pad=self.pad,
            mode=self.frame_sampling,
        )

    def to_dict(self) -> dict:
        """The fields as a plain dict (for config.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        valid = {f.name for f in fields(cls)}
        for key in d:
            if key not in valid:
                raise ConfigError(unknown_name_message("preprocessing key", key, sorted(valid)))
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


__all__ = ["CENTERINGS", "KINETICS_MEAN", "KINETICS_STD", "MODALITIES", "TRAIN_CROPS", "Preprocessing"]
