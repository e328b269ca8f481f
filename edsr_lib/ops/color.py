"""Pixel-value conversions: MATLAB's rounding, integer levels and BT.601 YCbCr.

Published super-resolution numbers are computed in MATLAB, so these follow MATLAB exactly:
``round`` sends halves away from zero (``torch.round`` sends them to even), and
``rgb2ycbcr`` uses the ITU-R BT.601 studio-swing matrix.

:func:`to_levels` is the one owner of "a float in [0, 1] to integer levels, halves away
from zero": 8-bit and 16-bit outputs of :func:`edsr_lib.upscale`, :func:`quantize` (the
metrics), :func:`edsr_lib.io.to_uint8` and the 16-to-8-bit reduction of
:func:`edsr_lib.io.read_image` all go through it.
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


def _veltkamp_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x == hi + lo`` exactly, each with at most 12 significant bits (float32)."""
    t = x * 4097.0  # 2**12 + 1
    hi = t - (t - x)
    return hi, x - hi


def to_levels(x: torch.Tensor, peak: int = 255) -> torch.Tensor:
    """Integer levels of an image in [0, 1]: clamp, multiply by ``peak``, round halves away from zero.

    This is MATLAB's ``im2uint8`` (``peak=255``) and ``im2uint16`` (``peak=65535``). The
    result is exact for every input, whatever its precision or device: a float64 tensor is
    computed in float64; float32, float16 and bfloat16 are computed in float32 with an
    error-free product (Dekker's), so no float64 is ever needed on the device (MPS has
    none) and the levels equal those of the product taken in exact arithmetic.

    Args:
        x: A floating-point tensor with values nominally in [0, 1] (NaN is not allowed).
        peak: The top level, at most 65535 (255 for 8 bits, 65535 for 16).

    Returns:
        A tensor of the same shape and device holding integers in ``0..peak``: float64 for a
        float64 input, else float32 (exact up to 2**24). Cast it to the integer type you need.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor.
        ValueError: If ``peak`` is not an integer in 1..65535.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"expected a floating-point tensor in [0, 1], got {kind}")
    if isinstance(peak, bool) or not isinstance(peak, int) or not 1 <= peak <= 65535:
        raise ValueError(f"peak must be an integer level in 1..65535, got {peak!r}")
    if x.dtype == torch.float64:
        return round_half_away(x.clamp(0.0, 1.0) * float(peak))
    x = x.to(torch.float32).clamp(0.0, 1.0)
    scale = torch.tensor(float(peak), dtype=torch.float32, device=x.device)
    product = x * scale
    # The exact product is product + error: Dekker's TwoProduct, both factors split into 12-bit halves.
    x_hi, x_lo = _veltkamp_split(x)
    p_hi, p_lo = _veltkamp_split(scale)
    error = ((x_hi * p_hi - product) + x_hi * p_lo + x_lo * p_hi) + x_lo * p_lo
    whole = torch.floor(product)
    fraction = product - whole  # exact: both share the binade's spacing
    # fraction is a multiple of the product's spacing and |error| is at most half of it, so only an exact
    # half needs the error's sign to decide.
    return whole + ((fraction > 0.5) | ((fraction == 0.5) & (error >= 0))).to(torch.float32)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Quantise an image in [0, 1] to 8-bit levels, as saving it to a PNG does.

    Clamps to [0, 1] and rounds ``x * 255`` half away from zero (MATLAB's ``im2uint8``),
    exactly, through :func:`to_levels`, so the result never depends on the input's
    precision. The metrics compute in float64, so the levels come back in float64.

    Args:
        x: A floating-point tensor with values nominally in [0, 1].

    Returns:
        A float64 tensor of the same shape with integer values in 0..255.
    """
    return to_levels(x, 255).to(torch.float64)


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
