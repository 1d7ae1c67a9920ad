"""Model families; importing this module registers every architecture."""

from vidrec.models import i3d, movinet, slowfast, tsn, videomae, videomae_pretrain  # noqa: F401
from vidrec.models.base import VideoModel

__all__ = ["VideoModel"]
