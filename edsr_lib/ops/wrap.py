"""Periodic images (seamless textures): wrap an image around its borders, and crop the wrapped border off again.

A network whose output pixels see ``r`` input pixels around them computes, on an image
padded periodically by at least ``r`` pixels, exactly what it would compute inside an
infinite tiling of the image; cropping the padding off the output leaves an output that
tiles seamlessly, with no blending. :class:`edsr_lib.Upscaler` does that with ``wrap=True``.

Images here are the library's pixel kinds: tensors ``(..., H, W)`` and NumPy arrays
``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``. The padding may exceed the image (a 4-pixel
texture padded by 10 repeats itself as often as needed).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MIN_MARGIN", "crop", "margin", "pad"]

#: The least wrap-around border: MATLAB bicubic (the alpha channel's resize) reads 2 pixels on each side.
MIN_MARGIN = 2


def margin(receptive_radius: int) -> int:
    """The border to wrap around an image for a network of this receptive radius (and the bicubic alpha)."""
    return max(MIN_MARGIN, receptive_radius)


def _axes(image: torch.Tensor | np.ndarray) -> tuple[int, int]:
    if isinstance(image, torch.Tensor):
        return image.dim() - 2, image.dim() - 1
    return (1, 2) if image.ndim == 4 else (0, 1)


def pad(image: torch.Tensor | np.ndarray, border: int) -> torch.Tensor | np.ndarray:
    """``image`` with ``border`` pixels of itself wrapped around on every side (periodic padding)."""
    rows, cols = _axes(image)
    for axis in (rows, cols):
        size = image.shape[axis]
        index = np.arange(-border, size + border) % size
        if isinstance(image, torch.Tensor):
            image = image.index_select(axis, torch.from_numpy(index).to(image.device))
        else:
            image = np.take(image, index, axis=axis)
    return image


def crop(image: torch.Tensor | np.ndarray, border: int) -> torch.Tensor | np.ndarray:
    """``image`` without ``border`` pixels on every side (a contiguous copy, as an upscaler returns)."""
    rows, cols = _axes(image)
    index = [slice(None)] * image.ndim
    index[rows] = slice(border, image.shape[rows] - border)
    index[cols] = slice(border, image.shape[cols] - border)
    cropped = image[tuple(index)]
    return cropped.contiguous() if isinstance(cropped, torch.Tensor) else np.ascontiguousarray(cropped)
