"""Sub-pixel convolution upsampler."""

from __future__ import annotations

import math

from torch import nn

from .registry import register_block
from .resblock import default_conv


def is_supported_scale(scale: int) -> bool:
    """True for the scales a sub-pixel upsampler can make: 3 and powers of two from 2."""
    return isinstance(scale, int) and scale >= 2 and (scale == 3 or (scale & (scale - 1)) == 0)


@register_block("upsampler")
class Upsampler(nn.Sequential):
    """Sub-pixel convolution: ``n`` times [conv(F -> 4F), PixelShuffle(2)] for scale ``2**n``,
    [conv(F -> 9F), PixelShuffle(3)] for scale 3. No activation inside.

    Args:
        scale: Upscaling factor (2, 3, 4, 8, ...).
        n_feats: Number of feature channels in and out.
        kernel_size: Size of the convolutions.

    Raises:
        ValueError: If ``scale`` is neither 3 nor a power of two.
    """

    def __init__(self, scale: int, n_feats: int, kernel_size: int = 3) -> None:
        if not is_supported_scale(scale):
            raise ValueError(
                f"scale {scale!r} is not supported by the sub-pixel upsampler; use 3 or a power of two (2, 4, 8, ...)"
            )
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [default_conv(n_feats, 9 * n_feats, kernel_size), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [default_conv(n_feats, 4 * n_feats, kernel_size), nn.PixelShuffle(2)]
        super().__init__(*layers)
        self.scale = scale

    def conv_path(self) -> list[tuple[nn.Conv2d, float]]:
        """The convolutions in order, each with the size of its pixels in input pixels."""
        path: list[tuple[nn.Conv2d, float]] = []
        size = 1.0
        for module in self:
            if isinstance(module, nn.Conv2d):
                path.append((module, size))
            else:
                size /= module.upscale_factor
        return path
