"""Seamless tiling: run an upscaling function tile by tile with the same result as one pass.

A convolutional network is translation-equivariant, and each output pixel depends only on
the input pixels within its receptive radius ``r``. So an image can be cut into *cores* of
``tile`` pixels, each run inside a *window* that adds ``r`` pixels of real context on every
side, and the cores of the outputs stitched together: every output pixel then sees exactly
what it sees in one pass. Two details make this exact rather than approximately seamless
(EDSR-PyTorch's ``forward_chop`` overlaps less than the receptive field and leaves seams):

* the overlap is the whole receptive radius, computed from the architecture
  (:meth:`edsr_lib.SRModel.receptive_radius`);
* a window is never padded beyond the image: at an image border the window is shifted
  inwards, so the only zero padding any window sees is the network's own, at the true
  image border, where the one-pass run sees it too.

Every window has the same size, ``min(size, tile + 2 * overlap)`` per axis, so windows
can be stacked into batches (and a compiled model sees one shape); along each axis they
are as few as cover the image, spread evenly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = ["Progress", "Span", "tile_spans", "tiled_apply"]

#: A progress hook: called with (windows done, windows in all) before the first batch and after each one.
#: What it raises stops the run and comes out of it unchanged, so it can also cancel (ComfyUI's node does).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in input pixels (half-open intervals).

    Attributes:
        start: First pixel of the window the function runs on.
        stop: One past the last pixel of the window.
        core_start: First pixel of the core whose output this window provides.
        core_stop: One past the last pixel of the core.
    """

    start: int
    stop: int
    core_start: int
    core_stop: int


def tile_spans(size: int, tile: int, overlap: int) -> list[Span]:
    """Cut an axis of ``size`` pixels into windows of ``tile + 2 * overlap`` pixels and their cores.

    Every window has the same length, ``min(size, tile + 2 * overlap)``, and lies inside
    ``[0, size)``. The windows are as few as can cover the axis and are spread evenly;
    each core keeps at least ``overlap`` pixels of window on both sides, except where it
    touches the image border, so interior cores are at most ``tile`` pixels and the two
    border cores at most ``tile + overlap``.

    Args:
        size: Length of the axis (positive).
        tile: Core length of interior windows (positive).
        overlap: Context on each side of a core (non-negative).

    Returns:
        The spans in order; their cores partition ``[0, size)``.

    Raises:
        ValueError: If an argument is out of range.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative number of pixels, got {overlap!r}")
    window = tile + 2 * overlap
    if size <= window:
        return [Span(0, size, 0, size)]
    # Consecutive windows may start at most `tile` apart, so that the cut between their
    # cores can leave `overlap` pixels of context on both sides.
    gaps = -(-(size - window) // tile)
    starts = [(i * (size - window) + gaps // 2) // gaps for i in range(gaps + 1)]
    cuts = [0, *((a + b + window) // 2 for a, b in itertools.pairwise(starts)), size]
    return [Span(start, start + window, cuts[i], cuts[i + 1]) for i, start in enumerate(starts)]


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int | tuple[int, int] | None,
    overlap: int,
    *,
    batch_size: int = 1,
    out: torch.Tensor | None = None,
    convert: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool | Progress = False,
) -> torch.Tensor:
    """Apply an upscaling function to ``x`` window by window and stitch the cores.

    Args:
        fn: Maps a batch ``(B, C, h, w)`` to ``(B, C', scale * h, scale * w)``; it must be
            translation-equivariant with a receptive radius of at most ``overlap`` input
            pixels for the result to equal ``fn(x)``.
        x: Input ``(N, C, H, W)``.
        scale: Upscaling factor of ``fn``.
        tile: Core size in input pixels, one for both axes or ``(rows, cols)`` (the rectangular
            windows of :func:`edsr_lib.memory.plan_windows`); ``None`` runs each image in one window.
        overlap: Context in input pixels around each core.
        batch_size: Most windows per call of ``fn`` (windows of all ``N`` images are mixed).
        out: Tensor ``(N, C'', scale * H, scale * W)`` to write into, of any dtype, device or
            strides (a permuted view of a NumPy array works); allocated like ``fn``'s output
            if ``None``.
        convert: Applied to each output core ``(C', h, w)`` before it is written (e.g. to
            quantise to uint8, or to change the channels).
        progress: ``True`` shows a progress bar over windows when there is more than one
            batch; a :data:`Progress` function is called with the windows done and their
            number, before the first batch and after each, and what it raises stops the run.

    Returns:
        ``out``, filled.

    Raises:
        ValueError: If ``x`` is not 4-D, or an argument is out of range.
        RuntimeError: If ``fn`` does not return ``scale`` times the window size.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_images, _, height, width = x.shape
    if tile is None:
        tile, overlap = max(height, width), 0
    tile_h, tile_w = tile if isinstance(tile, tuple) else (tile, tile)
    rows, cols = tile_spans(height, tile_h, overlap), tile_spans(width, tile_w, overlap)
    jobs = [(n, r, c) for n in range(n_images) for r in rows for c in cols]

    bar = report = None
    if callable(progress):
        report = progress
        report(0, len(jobs))
    elif progress and len(jobs) > batch_size:
        bar = tqdm(total=len(jobs), unit="tile", leave=False, desc="tiles")
    try:
        for first in range(0, len(jobs), batch_size):
            chunk = jobs[first : first + batch_size]
            batch = torch.stack([x[n, :, r.start : r.stop, c.start : c.stop] for n, r, c in chunk])
            y = fn(batch)
            expected = (scale * batch.shape[-2], scale * batch.shape[-1])
            if tuple(y.shape[-2:]) != expected:
                raise RuntimeError(
                    f"the function returned {tuple(y.shape[-2:])} pixels for a {tuple(batch.shape[-2:])} window; "
                    f"expected {expected} at scale {scale}"
                )
            if out is None:
                probe = y[0, :, :1, :1] if convert is None else convert(y[0, :, :1, :1])
                out = torch.empty(
                    (n_images, probe.shape[0], scale * height, scale * width), dtype=probe.dtype, device=x.device
                )
            for (n, r, c), y_n in zip(chunk, y, strict=True):
                core = y_n[
                    :,
                    scale * (r.core_start - r.start) : scale * (r.core_stop - r.start),
                    scale * (c.core_start - c.start) : scale * (c.core_stop - c.start),
                ]
                out[
                    n,
                    :,
                    scale * r.core_start : scale * r.core_stop,
                    scale * c.core_start : scale * c.core_stop,
                ] = core if convert is None else convert(core)
            if bar is not None:
                bar.update(len(chunk))
            if report is not None:
                report(first + len(chunk), len(jobs))
    finally:
        if bar is not None:
            bar.close()
    return out
