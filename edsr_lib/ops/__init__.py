"""Image operations: MATLAB-exact bicubic resize and pixel-value conversions."""

from .color import quantize, rgb_to_y, rgb_to_ycbcr, round_half_away
from .imresize import imresize, modcrop

__all__ = ["imresize", "modcrop", "quantize", "rgb_to_y", "rgb_to_ycbcr", "round_half_away"]
