"""The model families; importing this package registers every variant."""

from .base import SRModel, architectures
from .edsr import EDSR
from .mdsr import MDSR

__all__ = ["EDSR", "MDSR", "SRModel", "architectures"]
