"""Building blocks of the EDSR family, each usable alone and registered by name."""

from .mean_shift import DIV2K_RGB_MEAN, MeanShift
from .registry import create_block, get_block, list_blocks, register_block
from .resblock import ResBlock, default_conv
from .scale_branch import ScalePreprocess
from .upsampler import Upsampler, is_supported_scale

__all__ = [
    "DIV2K_RGB_MEAN",
    "MeanShift",
    "ResBlock",
    "ScalePreprocess",
    "Upsampler",
    "create_block",
    "default_conv",
    "get_block",
    "is_supported_scale",
    "list_blocks",
    "register_block",
]
