"""vidrec: video action recognition (I3D, SlowFast, VideoMAE, MoViNet) in one small code base.

import vidrec
model = vidrec.load_model("movinet_a0_stream")        # or a directory, a checkpoint, a hub id
vidrec.predict(model, "clip.mp4")                     # {"video", "predictions", "views", ...}
vidrec.create_model("slowfast_r50_8x8", num_classes=10)
"""

from vidrec._version import __version__
from vidrec.models.loader import load_model, save_model
from vidrec.models.registry import create_model, list_models
from vidrec.recognize.predict import predict

__all__ = ["__version__", "create_model", "list_models", "load_model", "predict", "save_model"]
