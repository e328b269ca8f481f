"""Image operations: MATLAB-exact bicubic resize, pixel-value conversions, tiling, self-ensemble, periodic borders."""

from .color import quantize, rgb_to_y, rgb_to_ycbcr, round_half_away, to_levels
from .ensemble import self_ensemble
from .imresize import bicubic_lr, imresize, lr_file_name, modcrop
from .tiling import tile_spans, tiled_apply

__all__ = [
    "bicubic_lr",
    "imresize",
    "lr_file_name",
    "modcrop",
    "quantize",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "round_half_away",
    "self_ensemble",
    "tile_spans",
    "tiled_apply",
    "to_levels",
]
