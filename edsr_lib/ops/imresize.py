"""MATLAB-exact bicubic ``imresize``, batched in torch, and ``modcrop``.

Benchmark LR images are made with MATLAB's ``imresize(img, 1/s, 'bicubic')``; PIL's and
OpenCV's bicubic differ from it and move PSNR by tenths of a dB. This module follows
MATLAB's algorithm step by step:

* the cubic convolution kernel with ``a = -0.5``, widened by ``1/scale`` when shrinking
  (antialiasing) and normalised per output pixel;
* output pixel ``x`` (1-based) samples input position ``x / scale + 0.5 * (1 - 1 / scale)``;
* symmetric padding at the borders (out-of-range taps read the mirrored pixel);
* one pass per axis, the axis with the smaller scale first (height first when equal);
* for uint8 images, the result of each pass is rounded (halves away from zero) and
  clamped to 0..255, as ``imresizemex`` does.

The taps of each pass are accumulated in MATLAB's order, so uint8 results reproduce
MATLAB's byte for byte (every official LR file of Set5, Set14 and DIV2K).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import TypeVar

import numpy as np
import torch

from .color import round_half_away

ImageT = TypeVar("ImageT", np.ndarray, torch.Tensor)

# A product ``in_len * scale`` this close to an integer is that integer: 300 * 0.1 is
# 30.000000000000004 in floating point, and 31 output rows would be a surprise.
_SIZE_TOLERANCE = 1e-9


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def _contributions(in_len: int, out_len: int, scale: float, antialiasing: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (float64) and 0-based input indices ``(taps, out_len)`` of one axis (MATLAB's ``contributions``)."""
    kernel_width = 4.0
    shrink = scale < 1 and antialiasing
    if shrink:
        kernel_width /= scale

    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Symmetric padding: 1-based index i maps into [1..n, n..1] periodically.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]

    keep = np.any(weights != 0, axis=0)
    return torch.from_numpy(weights[:, keep].T.copy()), torch.from_numpy(indices[:, keep].T.copy())


def _resize_axis(x: torch.Tensor, dim: int, out_len: int, scale: float, antialiasing: bool) -> torch.Tensor:
    """Resize float tensor ``x`` along ``dim`` (-2 or -1), summing taps in MATLAB's order."""
    weights, indices = _contributions(x.shape[dim], out_len, scale, antialiasing)
    w = weights.to(device=x.device, dtype=x.dtype)
    idx = indices.to(device=x.device)
    out_shape = list(x.shape)
    out_shape[dim] = out_len
    if dim == -2:
        w, idx = w[:, :, None], idx[:, :, None]  # (taps, out, 1): broadcasts over the width
    # A loop over the few taps (6 to 18 for scales down to 1/4) adds in MATLAB's order,
    # which uint8 exactness needs. Reusing one buffer for the taps is several times faster
    # on large images, but out= does not support autograd.
    needs_grad = x.requires_grad and torch.is_grad_enabled()
    tap = None if needs_grad else torch.empty(out_shape, dtype=x.dtype, device=x.device)
    out = torch.gather(x, dim, idx[0].expand(out_shape)).mul_(w[0])
    for k in range(1, idx.shape[0]):
        out.add_(torch.gather(x, dim, idx[k].expand(out_shape), out=tap).mul_(w[k]))
    return out


def _output_size(in_len: int, scale: float) -> int:
    product = in_len * scale
    nearest = round(product)
    if abs(product - nearest) <= _SIZE_TOLERANCE * max(1.0, product):
        return max(1, int(nearest))
    return max(1, math.ceil(product))


def _resize_tensor(
    x: torch.Tensor, scale: float | None, size: tuple[int, int] | None, antialiasing: bool
) -> torch.Tensor:
    if x.dim() < 2:
        raise ValueError(f"expected an image tensor (..., H, W), got shape {tuple(x.shape)}")
    in_h, in_w = x.shape[-2], x.shape[-1]
    if in_h == 0 or in_w == 0 or x.numel() == 0:
        raise ValueError(f"cannot resize an empty image: shape {tuple(x.shape)}")

    if size is not None:
        out_h, out_w = size
        scales = (out_h / in_h, out_w / in_w)
    else:
        assert scale is not None
        out_h, out_w = _output_size(in_h, scale), _output_size(in_w, scale)
        scales = (scale, scale)

    is_uint8 = x.dtype == torch.uint8
    if is_uint8 or x.dtype == torch.float64:
        work_dtype = torch.float64  # MATLAB computes in double; uint8 exactness needs it
    elif x.is_floating_point():
        work_dtype = torch.float32
    else:
        raise TypeError(f"expected a floating-point or uint8 tensor, got dtype {x.dtype}")

    y = x.to(work_dtype)
    # MATLAB resizes the axis with the smaller scale first; sorted() is stable, so height
    # goes first when both scales are equal.
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        dim = axis - 2
        y = _resize_axis(y, dim, (out_h, out_w)[axis], scales[axis], antialiasing)
        if is_uint8:
            y = round_half_away(y.clamp(0.0, 255.0))
    return y.to(x.dtype)


def imresize(
    x: ImageT,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> ImageT:
    """Resize an image exactly as MATLAB ``imresize(x, scale, 'bicubic')`` does.

    Give either ``scale`` (the same factor for both axes; the output is
    ``ceil(in * scale)`` pixels, as in MATLAB) or ``size``. Any factor works, shrinking or
    enlarging, integer or not.

    Args:
        x: The image(s). Torch tensors are ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``
            (any leading dimensions), on any device. NumPy arrays are ``(H, W)`` or
            ``(H, W, C)``. Floating-point images are resized in float32 (float64 for
            float64 input) and returned in their dtype, not clamped. uint8 images follow
            MATLAB's uint8 semantics: computed in double, rounded (halves away from zero)
            and clamped to 0..255 after each of the two passes, and returned as uint8.
        scale: Resize factor, e.g. ``1 / 4`` to shrink by 4 or ``2`` to enlarge by 2.
        size: Output ``(height, width)``, instead of ``scale``; each axis then uses the
            factor ``out / in``.
        antialiasing: Widen the kernel by ``1 / scale`` when shrinking (MATLAB's default).

    Returns:
        The resized image, of the same type, layout and dtype as ``x``.

    Raises:
        ValueError: If neither or both of ``scale`` and ``size`` are given, if they are
            not positive, or if the image is empty or has the wrong number of dimensions.
        TypeError: If ``x`` is not a tensor or array of a floating-point or uint8 dtype.

    Example:
        >>> lr = imresize(modcrop(hr, 4), 1 / 4)  # the benchmark's LR images
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale (a factor such as 1/4) or size=(height, width)")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number (e.g. 0.25 to shrink by 4), got {scale!r}")
        scale = float(scale)
    if size is not None:
        if len(size) != 2 or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size):
            raise ValueError(f"size must be (height, width) as two integers, got {size!r}")
        if min(size) <= 0:
            raise ValueError(f"size must be positive, got {tuple(size)}")
        size = (int(size[0]), int(size[1]))

    if isinstance(x, torch.Tensor):
        return _resize_tensor(x, scale, size, antialiasing)
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3):
            raise ValueError(f"expected a NumPy image (H, W) or (H, W, C), got shape {x.shape}")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"expected a uint8 or floating-point array, got dtype {x.dtype}")
        # a read-only array (NumPy's view of a bilevel PIL image) is copied: torch warns on one it cannot write
        chw = torch.from_numpy(np.require(x if x.ndim == 2 else x.transpose(2, 0, 1), requirements=("C", "W")))
        out = _resize_tensor(chw, scale, size, antialiasing).numpy()
        return out if x.ndim == 2 else np.ascontiguousarray(out.transpose(1, 2, 0))
    raise TypeError(f"expected a torch.Tensor or numpy.ndarray image, got {type(x).__name__}")


def modcrop(img: ImageT, scale: int) -> ImageT:
    """Crop height and width down to multiples of ``scale`` (keeps the top-left corner).

    The benchmark crops HR images this way before making LR, so that LR times ``scale``
    is exactly HR's size.

    Args:
        img: A NumPy array ``(H, W)`` or ``(H, W, C)``, or a tensor ``(..., H, W)``.
        scale: The integer scale factor.

    Returns:
        A view of ``img`` with height and width multiples of ``scale``.

    Raises:
        ValueError: If ``scale`` is not a positive integer, or the image is smaller than
            ``scale`` along an axis.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"expected a NumPy image (H, W) or (H, W, C), got shape {img.shape}")
        h, w = img.shape[0], img.shape[1]
    elif isinstance(img, torch.Tensor):
        if img.dim() < 2:
            raise ValueError(f"expected an image tensor (..., H, W), got shape {tuple(img.shape)}")
        h, w = img.shape[-2], img.shape[-1]
    else:
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray image, got {type(img).__name__}")
    if h < scale or w < scale:
        raise ValueError(f"the image ({h}x{w}) is smaller than the scale {scale}")
    h, w = h - h % scale, w - w % scale
    return img[:h, :w] if isinstance(img, np.ndarray) else img[..., :h, :w]


def bicubic_lr(hr: ImageT, scale: int) -> ImageT:
    """The benchmark's LR image of ``hr``: MATLAB ``imresize(modcrop(hr, scale), 1 / scale, 'bicubic')``.

    The one rule that makes LR images (``edsr-lib make-lr``, ``evaluate`` without LR files,
    the trainer's LR cache): on a uint8 image it reproduces the official ``LR_bicubic`` files
    of Set5, Set14 and DIV2K byte for byte (uint8 rounding after each pass, as MATLAB does).

    Raises:
        ValueError: If the image is smaller than the scale.
    """
    return imresize(modcrop(hr, scale), 1 / scale)


def lr_file_name(stem: str, scale: int) -> str:
    """The name of an HR image's LR file at ``scale``: ``<stem>x<scale>.png``, as the benchmark sets name them
    (``LR_bicubic/X2/babyx2.png``) and ``edsr-lib make-lr`` writes them."""
    return f"{stem}x{scale}.png"
