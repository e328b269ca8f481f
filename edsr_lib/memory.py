"""Memory planning for upscaling: what a window costs, what a device can spare, the tile ``"auto"`` picks.

:func:`edsr_lib.upscale` asks :func:`plan_tiles` for its tile and batch size when
``tile="auto"``; the parts are public so that a user can see (and a benchmark check)
the choice: :func:`activation_bytes_per_pixel` (the estimate), :func:`available_memory`
(the device), :func:`memory_budget` (the share of it a run plans for) and
:func:`auto_tile_size`. :func:`is_out_of_memory` tells the errors that the tile-halving
retry catches.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .models import SRModel

__all__ = [
    "MIN_AUTO_TILE",
    "activation_bytes_per_pixel",
    "auto_tile_size",
    "available_memory",
    "is_out_of_memory",
    "max_window_pixels",
    "memory_budget",
    "plan_tiles",
    "release_cached_memory",
]

#: Measured peak activation memory of EDSR-baseline windows on CPU (x2, x3, x4) is
#: 1.02-1.17 times the live-tensor count of :func:`activation_bytes_per_pixel`; the factor
#: covers that, allocator fragmentation and convolution workspaces.
_SAFETY_FACTOR = 1.5
#: What "auto" plans for activations on a CPU, whatever the machine has free (see
#: :func:`memory_budget`). EDSR-baseline tiles are then 485 (x2), 311 (x3) and 219 (x4) LR
#: pixels; a 2000x2000 image costs 1.24x (x2) to 1.8x (x3) the one-pass work in recomputed
#: overlap, and x4 peaks at 1.9 GB RSS through the command line (the whole pass would need
#: about 50 GB). Pass a larger ``tile`` to trade memory for speed.
_CPU_BUDGET_CAP = 1 << 30
#: Fraction of the available memory that "auto" plans to use.
_MEMORY_FRACTION = 0.5
#: The smallest tile "auto" picks and the out-of-memory retry halves down to, in LR pixels.
MIN_AUTO_TILE = 16
#: CUDA kernels index a tensor with 32-bit integers in places (cuDNN among them): one tensor
#: must hold fewer elements than this.
_CUDA_MAX_ELEMENTS = 1 << 31


def _bytes_per_pixel(model: SRModel, scale: int, dtype: torch.dtype) -> int:
    """:func:`activation_bytes_per_pixel` for a scale already checked."""
    values = max(4, 2 * scale * scale + 1) * model.feature_channels(scale)
    return math.ceil(_SAFETY_FACTOR * values * torch.empty((), dtype=dtype).element_size())


def activation_bytes_per_pixel(model: SRModel, scale: int | None = None, dtype: torch.dtype = torch.float32) -> int:
    """Estimated peak memory of a forward pass, in bytes per input (LR) pixel.

    The largest set of live activations is in the upsampler: its input and the
    global-residual features (``F`` channels), a convolution's output (``scale**2 * F``
    channels per LR pixel at the last stage) and the pixel-shuffled copy of it, about
    ``(2 * scale**2 + 1) * F`` values per LR pixel (the body holds ``4 * F``). This is
    multiplied by a safety factor of 1.5, which covers the measured peak of windows on CPU
    (1.02 to 1.17 times the count) plus workspaces.

    Args:
        model: The model (:meth:`~edsr_lib.SRModel.feature_channels` gives ``F``).
        scale: The scale to run.
        dtype: Activation dtype.
    """
    return _bytes_per_pixel(model, model.resolve_scale(scale), dtype)


def max_window_pixels(model: SRModel, scale: int, device: torch.device | str = "cpu") -> int | None:
    """The most LR pixels one batch of windows may hold on ``device``, or ``None`` for no limit.

    On CUDA, the widest activation (the upsampler's last convolution output, ``scale**2 * F``
    values per LR pixel) must stay below 2**31 elements; elsewhere there is no such limit.

    Args:
        model: The model (:meth:`~edsr_lib.SRModel.feature_channels` gives ``F``).
        scale: A scale the model serves (not checked again).
        device: Where the model runs.
    """
    if torch.device(device).type != "cuda":
        return None
    return (_CUDA_MAX_ELEMENTS - 1) // (scale * scale * model.feature_channels(scale))


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes that a computation on ``device`` can still allocate.

    CUDA and XPU: the free device memory (``mem_get_info``) plus what PyTorch's caching
    allocator holds unused. MPS: Metal's recommended working set less what it holds. CPU:
    ``MemAvailable`` from ``/proc/meminfo``, or the
    available physical pages where that file does not exist.
    """
    device = torch.device(device)
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(backend, "mem_get_info"):  # cuda, xpu
        free, _ = backend.mem_get_info(device)
        return int(free + backend.memory_reserved(device) - backend.memory_allocated(device))
    if device.type == "mps":  # unified memory: what Metal recommends, less what it holds
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _budget(model: SRModel, scale: int, device: torch.device | str, dtype: torch.dtype, overlap: int) -> int:
    half = int(_MEMORY_FRACTION * available_memory(device))
    if torch.device(device).type != "cpu":
        return half
    useful_window = (6 * overlap) ** 2 * _bytes_per_pixel(model, scale, dtype)
    return min(half, max(_CPU_BUDGET_CAP, useful_window))


def memory_budget(
    model: SRModel,
    scale: int | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    overlap: int | None = None,
) -> int:
    """Bytes that ``tile="auto"`` plans to use for activations.

    On an accelerator (CUDA, XPU, MPS), half of :func:`available_memory`. On a CPU, 1 GiB, or what a window with a
    tile of four times the overlap needs if that is more (the large EDSR: a smaller tile
    would spend most of the time recomputing overlap), and never more than half of the
    available memory.

    Args:
        model: The model.
        scale: The scale to run.
        device: Where the model runs.
        dtype: Activation dtype.
        overlap: Context around each tile; default the receptive radius.
    """
    scale = model.resolve_scale(scale)
    overlap = model.receptive_radius(scale) if overlap is None else overlap
    return _budget(model, scale, device, dtype, overlap)


def _tile(model: SRModel, scale: int, device: torch.device | str, dtype: torch.dtype, budget: int, overlap: int) -> int:
    window = math.isqrt(max(budget, 0) // _bytes_per_pixel(model, scale, dtype))
    cap = max_window_pixels(model, scale, device)
    if cap is not None:
        window = min(window, math.isqrt(cap))
    return max(MIN_AUTO_TILE, window - 2 * overlap)


def auto_tile_size(
    model: SRModel,
    scale: int | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    budget: int | None = None,
    overlap: int | None = None,
) -> int:
    """The largest tile (in LR pixels) whose window fits a memory budget, for ``tile="auto"``.

    A window is the tile plus ``overlap`` on each side; the tile ``t`` is the largest with
    ``(t + 2 * overlap)**2 * activation_bytes_per_pixel(...) <= budget`` (and at least 16),
    and on CUDA with ``(t + 2 * overlap)**2 <= max_window_pixels(...)``.
    :func:`edsr_lib.upscale` then runs as many such windows per batch as the budget allows
    (one, unless the image is smaller than a window).

    Args:
        model: The model.
        scale: The scale to run.
        device: Where the model runs.
        dtype: Activation dtype (``float16`` halves the estimate).
        budget: Bytes a window may use; default :func:`memory_budget`.
        overlap: Context around each tile; default the receptive radius.
    """
    scale = model.resolve_scale(scale)
    overlap = model.receptive_radius(scale) if overlap is None else overlap
    if budget is None:
        budget = _budget(model, scale, device, dtype, overlap)
    return _tile(model, scale, device, dtype, budget, overlap)


def plan_tiles(
    model: SRModel,
    scale: int,
    height: int,
    width: int,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    overlap: int,
    batch_size: int,
) -> tuple[int, int]:
    """The tile and the windows per batch that ``tile="auto"`` runs an image of ``height x width`` with.

    The tile is :func:`auto_tile_size`; the batch is ``batch_size``, or fewer if the
    windows (as large as the image allows) would not fit :func:`memory_budget` together,
    or on CUDA :func:`max_window_pixels`; at least one.

    Args:
        model: The model.
        scale: A scale the model serves (not checked again).
        height: LR image height.
        width: LR image width.
        device: Where the model runs.
        dtype: Activation dtype.
        overlap: Context around each tile.
        batch_size: The most windows per batch the caller allows.
    """
    budget = _budget(model, scale, device, dtype, overlap)
    tile = _tile(model, scale, device, dtype, budget, overlap)
    window = min(height, tile + 2 * overlap) * min(width, tile + 2 * overlap)
    fits = budget // (window * _bytes_per_pixel(model, scale, dtype))
    cap = max_window_pixels(model, scale, device)
    if cap is not None:
        fits = min(fits, cap // window)
    return tile, max(1, min(batch_size, fits))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out: ``torch.OutOfMemoryError``, ``MemoryError``, an allocator message."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached_memory(device: torch.device | str) -> None:
    """Give the memory that PyTorch's caching allocator holds unused on ``device`` back (no-op on the CPU)."""
    device = torch.device(device)
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(backend, "empty_cache"):
        backend.empty_cache()
