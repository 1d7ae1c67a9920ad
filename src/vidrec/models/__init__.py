"""Model families (one file each) and the contract they keep (`vidrec.models.base`)."""

from vidrec.models.base import ModelBase, PretrainingModel, StreamingModel, VideoModel

__all__ = ["ModelBase", "PretrainingModel", "StreamingModel", "VideoModel"]
