"""Pixel-value conversions: MATLAB's rounding, 8-bit quantisation and BT.601 YCbCr.

Published super-resolution numbers are computed in MATLAB, so these follow MATLAB exactly:
``round`` sends halves away from zero (``torch.round`` sends them to even), and
``rgb2ycbcr`` uses the ITU-R BT.601 studio-swing matrix.
"""

from __future__ import annotations

import torch

# MATLAB rgb2ycbcr: rows give Y, Cb, Cr in 255-scale from R, G, B in [0, 1].
_YCBCR_MATRIX = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
_YCBCR_OFFSET = (16.0, 128.0, 128.0)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, halves away from zero (MATLAB's ``round``).

    Args:
        x: A floating-point tensor.

    Returns:
        A tensor of the same dtype holding integer values.
    """
    rounded = torch.round(x)
    truncated = torch.trunc(x)
    # torch.round sends exact halves to even; only those differ from MATLAB.
    is_half = (x - truncated).abs() == 0.5
    return torch.where(is_half, truncated + torch.sign(x), rounded)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Quantise an image in [0, 1] to 8-bit levels, as saving it to a PNG does.

    Clamps to [0, 1] and rounds ``x * 255`` half away from zero (MATLAB's ``im2uint8``).
    The product is taken in float64, where it is exact for float32 and float16 inputs, so
    the result never depends on the input's precision.

    Args:
        x: A floating-point tensor with values nominally in [0, 1].

    Returns:
        A float64 tensor of the same shape with integer values in 0..255.
    """
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor in [0, 1], got dtype {x.dtype}")
    return round_half_away(x.to(torch.float64).clamp(0.0, 1.0) * 255.0)


def _check_rgb(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected RGB in dimension -3 (CHW or NCHW with 3 channels), got shape {tuple(x.shape)}")


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Convert RGB to YCbCr exactly as MATLAB ``rgb2ycbcr`` does for images in [0, 1].

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` and likewise for Cb and Cr
    (ITU-R BT.601, studio swing: Y in [16/255, 235/255]).

    Args:
        x: Float tensor ``(..., 3, H, W)`` with RGB values in [0, 1].

    Returns:
        Tensor of the same shape and dtype with Y, Cb, Cr in dimension -3, in [0, 1].
    """
    _check_rgb(x)
    matrix = torch.tensor(_YCBCR_MATRIX, dtype=x.dtype, device=x.device) / 255.0
    offset = torch.tensor(_YCBCR_OFFSET, dtype=x.dtype, device=x.device) / 255.0
    return torch.einsum("dc,...chw->...dhw", matrix, x) + offset[:, None, None]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """The Y (luma) channel of MATLAB ``rgb2ycbcr`` for RGB images in [0, 1].

    Args:
        x: Float tensor ``(..., 3, H, W)`` with RGB values in [0, 1].

    Returns:
        Tensor ``(..., 1, H, W)`` of the same dtype: ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``.
    """
    _check_rgb(x)
    weights = torch.tensor(_YCBCR_MATRIX[0], dtype=x.dtype, device=x.device) / 255.0
    return torch.einsum("c,...chw->...hw", weights, x).unsqueeze(-3) + _YCBCR_OFFSET[0] / 255.0
