"""The model families; importing this package registers every variant."""

from .base import SRModel, TrunkModel, architectures
from .edsr import EDSR
from .mdsr import MDSR

__all__ = ["EDSR", "MDSR", "SRModel", "TrunkModel", "architectures"]
