"""Tensors: an image array as the float NCHW tensor in [0, 1] the library computes on, and back to uint8."""

from __future__ import annotations

import numpy as np
import torch

from ..ops.color import to_levels

_PEAKS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Turn a uint8 or uint16 image array into a float32 ``1 x C x H x W`` tensor in [0, 1].

    Args:
        image: uint8 or uint16 array ``(H, W)`` or ``(H, W, C)``.

    Returns:
        A float32 tensor ``(1, C, H, W)`` equal to ``image / 255`` (``/ 65535`` for uint16).

    Raises:
        TypeError: If ``image`` is not a uint8 or uint16 NumPy array.
        ValueError: If it is not 2-D or 3-D.
    """
    if not isinstance(image, np.ndarray) or image.dtype not in _PEAKS:
        kind = f"dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"expected a uint8 NumPy array (H, W, C) as read_image() returns, got {kind}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {image.shape}")
    peak = _PEAKS[image.dtype]
    if image.dtype == np.uint16:
        image = image.astype(np.int32)  # torch has no arithmetic on uint16
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    if not chw.flags.writeable:  # a view of a PIL image; torch wants writable memory even to read it
        chw = chw.copy()
    return torch.from_numpy(chw).unsqueeze(0).to(torch.float32).div_(peak)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """Quantise a float image tensor in [0, 1] to a uint8 ``H x W x C`` array.

    Values are clamped to [0, 1] and ``x * 255`` is rounded half away from zero, as
    MATLAB's ``im2uint8`` does; :func:`edsr_lib.metrics.psnr` quantises the same way, so
    scoring a saved file and scoring the tensor agree.

    Args:
        tensor: Float tensor ``(C, H, W)`` or ``(1, C, H, W)``, on any device.

    Returns:
        A uint8 array ``(H, W, C)``.

    Raises:
        TypeError: If ``tensor`` is not a floating-point tensor.
        ValueError: If it is not ``(C, H, W)`` or a batch of one.
    """
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        kind = f"dtype {tensor.dtype}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise TypeError(f"expected a floating-point tensor in [0, 1], got {kind}")
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W), got shape {tuple(tensor.shape)}")
    levels = to_levels(tensor.detach(), 255).to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).cpu().numpy())
