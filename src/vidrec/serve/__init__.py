"""The HTTP service and its web page (`vidrec serve`; `pip install 'vidrec[serve]'`)."""

from vidrec.serve.app import ServeConfig, create_app
from vidrec.serve.inputs import Limits

__all__ = ["Limits", "ServeConfig", "create_app"]
