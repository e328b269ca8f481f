"""Memory planning for upscaling: what a window costs, what a device can spare, the windows ``"auto"`` plans.

:class:`edsr_lib.Upscaler` asks :func:`plan_tiles` for its windows and batch size when
``tile="auto"``; the parts are public so that a user can see (and a benchmark check)
the choice: :func:`activation_bytes_per_pixel` (the estimate), :func:`available_memory`
(the device), :func:`memory_budget` (the share of it a run plans for), :func:`plan_windows`
(the windows that compute the fewest pixels within it) and :func:`auto_tile_size` (the
largest square tile within it). :func:`is_out_of_memory` tells the errors that the
tile-halving retry catches.
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
    "plan_windows",
    "release_cached_memory",
]

#: Measured peak activation memory of EDSR-baseline windows on CPU (x2, x3, x4) is
#: 1.02-1.17 times the live-tensor count of :func:`activation_bytes_per_pixel`; the factor
#: covers that, allocator fragmentation and convolution workspaces.
_SAFETY_FACTOR = 1.5
#: What "auto" plans for activations on a CPU at most, however much is free (see
#: :func:`memory_budget`). Windows are planned to compute the fewest pixels
#: (:func:`plan_windows`), so with this budget a photo of up to 2 megapixels costs at most
#: 1.13x (fp32) or 1.09x (bf16) the pixels of one pass of EDSR-baseline x2, and
#: ``edsr-lib upscale`` with the defaults on a 1400x1000 photo stays under 2.5 GB of RSS;
#: more would buy little speed for much memory (a whole x2 pass needs about 2.4 GB per input
#: megapixel in fp32). Pass ``tile=None`` (one pass) or a larger ``tile`` to trade memory for speed.
_CPU_BUDGET_CAP = 3 << 29
#: On a CPU, "auto" lets windows grow past :data:`_CPU_BUDGET_CAP` (up to half the free
#: memory) while they would compute more than this many times the image's pixels.
_MAX_WASTE = 1.15
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

    On an accelerator (CUDA, XPU, MPS), half of :func:`available_memory`. On a CPU, half of
    the available memory, but at most 1.5 GiB, or what a window with a tile of four times
    the overlap needs if that is more (the large EDSR: a smaller tile would spend most of
    the time recomputing overlap). The 1.5 GiB keeps a photo of up to 2 megapixels within
    1.15x the work of one pass (:func:`plan_windows`) and the command line's peak memory
    under 2.5 GB; where less is free, the budget shrinks with it.

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


def _axis_window(size: int, count: int, overlap: int) -> int:
    """The shortest window with which ``count`` windows cover an axis of ``size`` (cores meeting with ``overlap``)."""
    return size if count == 1 else -(-(size + 2 * overlap * (count - 1)) // count)


def _windows_along(size: int, window: int, overlap: int) -> int:
    """How many windows of ``window`` pixels cover an axis of ``size`` (as :func:`~edsr_lib.ops.tiling.tile_spans`)."""
    return 1 if window >= size else 1 + -(-(size - window) // (window - 2 * overlap))


def _waste(window: tuple[int, int], height: int, width: int, overlap: int) -> float:
    """The pixels that ``window``'s tiling computes, over the image's."""
    rows, cols = _windows_along(height, window[0], overlap), _windows_along(width, window[1], overlap)
    return rows * window[0] * cols * window[1] / (height * width)


def plan_windows(height: int, width: int, overlap: int, max_pixels: int) -> tuple[int, int] | None:
    """The window ``(rows, cols)`` in LR pixels that computes the fewest pixels, or ``None`` for one pass.

    ``None`` when the whole image fits ``max_pixels``. Otherwise every split into ``r x c``
    windows is considered, each window as short as covers its axis with ``r`` (``c``)
    windows (:func:`~edsr_lib.ops.tiling.tile_spans` spreads them evenly), holding at most
    ``max_pixels``; the one whose windows hold the fewest pixels together wins (fewer
    windows on a tie). Full-width strips, columns and grids are all among them; square
    windows as large as fit are not the best in general (a 640x600 image under a budget of
    557x557 pixels ran as four of them, 3.2 times its pixels; two strips of 640x336 hold
    1.12 times). If no window fits, the smallest (16-pixel cores) is returned.

    Args:
        height: LR image height.
        width: LR image width.
        overlap: Context on each side of a core.
        max_pixels: The most pixels a window may hold.

    Returns:
        The window's height and width (each at most the image's), or ``None``.
    """
    if height * width <= max_pixels:
        return None
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    for rows in range(1, height + 1):
        window_h = _axis_window(height, rows, overlap)
        if rows > 1 and window_h - 2 * overlap < MIN_AUTO_TILE:
            break
        widest = max_pixels // window_h
        if widest < width and widest - 2 * overlap < MIN_AUTO_TILE:
            continue
        window_w = _axis_window(width, _windows_along(width, widest, overlap), overlap)
        cols = _windows_along(width, window_w, overlap)
        key = (rows * window_h * cols * window_w, rows * cols)
        if best is None or key < best[0]:
            best = (key, (window_h, window_w))
    if best is None:
        smallest = MIN_AUTO_TILE + 2 * overlap
        return min(height, smallest), min(width, smallest)
    return best[1]


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
) -> tuple[tuple[int, int] | None, int]:
    """The tiles and the windows per batch that ``tile="auto"`` runs an image of ``height x width`` with.

    The windows are :func:`plan_windows`'s within :func:`memory_budget` (and on CUDA
    :func:`max_window_pixels`): one pass when the image fits, else the windows that compute
    the fewest pixels. On a CPU, where those would still compute more than 1.15 times the
    image's pixels (x3 and x4 on photos of a few megapixels), the windows may grow past the
    budget's 1.5 GiB cap, up to half the available memory, until they do not. The batch is
    ``batch_size``, or fewer if that many windows would not fit the memory planned together
    (or the CUDA cap); at least one.

    Args:
        model: The model.
        scale: A scale the model serves (not checked again).
        height: LR image height.
        width: LR image width.
        device: Where the model runs.
        dtype: Activation dtype.
        overlap: Context around each tile.
        batch_size: The most windows per batch the caller allows.

    Returns:
        ``(tile, batch)``: ``tile`` is ``None`` for one pass, else the core size ``(rows, cols)``
        that :func:`~edsr_lib.ops.tiling.tiled_apply` takes; ``batch`` the windows per call.
    """
    budget = _budget(model, scale, device, dtype, overlap)
    per_pixel = _bytes_per_pixel(model, scale, dtype)
    most = max(budget, 0) // per_pixel
    cap = max_window_pixels(model, scale, device)
    if cap is not None:
        most = min(most, cap)
    window = plan_windows(height, width, overlap, most)
    if torch.device(device).type == "cpu":
        # past the CPU cap, a window grows with what is free while it would waste more than _MAX_WASTE
        roomy = int(_MEMORY_FRACTION * available_memory(device)) // per_pixel
        while window is not None and _waste(window, height, width, overlap) > _MAX_WASTE and most < roomy:
            most = min(roomy, most * 5 // 4)
            window = plan_windows(height, width, overlap, most)
    if window is None:
        tile, pixels = None, height * width
    else:
        # an axis in one window gets its whole length as the core (tile_spans then makes one window of it)
        tile = tuple(size if w >= size else w - 2 * overlap for w, size in zip(window, (height, width), strict=True))
        pixels = window[0] * window[1]
    return tile, max(1, min(batch_size, most // pixels))


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
