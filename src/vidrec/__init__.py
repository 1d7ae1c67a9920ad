"""vidrec: video action recognition (I3D, SlowFast, VideoMAE) in one small code base."""

__version__ = "0.1.0"

from vidrec.engine.predict import predict  # noqa: E402
from vidrec.hub import load_model  # noqa: E402
from vidrec.registry import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_model", "predict"]
