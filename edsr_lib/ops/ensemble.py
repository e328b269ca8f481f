"""Test-time self-ensemble: average a model over the eight symmetries of the square.

EDSR's "+" results (about +0.1 dB) run the model on the eight dihedral transforms of the
input (identity, flips, 90-degree rotations and their combinations), undo each transform
on the output, and average. This is valid for symmetric degradations such as bicubic
downsampling. Transforms that keep the image's shape and those that swap height and
width are batched separately (together when the image is square).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["DIHEDRAL_TRANSFORMS", "Dihedral", "dihedral", "self_ensemble", "undo_dihedral"]

#: A symmetry of the square as ``(transpose, flip_rows, flip_columns)``, applied in that order.
Dihedral = tuple[bool, bool, bool]

#: The eight symmetries: the four that keep height and width first, then the four that swap them.
DIHEDRAL_TRANSFORMS: tuple[Dihedral, ...] = tuple(
    (transpose, flip_rows, flip_cols)
    for transpose in (False, True)
    for flip_rows in (False, True)
    for flip_cols in (False, True)
)


def _flip_dims(transform: Dihedral) -> list[int]:
    _, flip_rows, flip_cols = transform
    return [dim for dim, flip in ((-2, flip_rows), (-1, flip_cols)) if flip]


def dihedral(x: torch.Tensor, transform: Dihedral) -> torch.Tensor:
    """Apply a symmetry of :data:`DIHEDRAL_TRANSFORMS` to the last two (H, W) dimensions of ``x``."""
    if transform[0]:
        x = x.transpose(-2, -1)
    dims = _flip_dims(transform)
    return x.flip(dims) if dims else x


def undo_dihedral(y: torch.Tensor, transform: Dihedral) -> torch.Tensor:
    """Invert :func:`dihedral`: ``undo_dihedral(dihedral(x, t), t)`` equals ``x``."""
    dims = _flip_dims(transform)
    if dims:
        y = y.flip(dims)
    return y.transpose(-2, -1) if transform[0] else y


def self_ensemble(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Average ``fn`` over the eight dihedral transforms of ``x``.

    Computes ``mean_t undo_dihedral(fn(dihedral(x, t)), t)`` over
    :data:`DIHEDRAL_TRANSFORMS`, running ``fn`` on batches of transformed images and
    accumulating as it goes (only the running sum of outputs is kept).

    Args:
        fn: An image-to-image function on ``(B, C, H, W)`` batches that treats the images of
            a batch independently (an upscaling model).
        x: Input ``(N, C, H, W)``.
        batch_size: Most images per call of ``fn``; ``None`` runs each group of transforms
            that share a shape (all eight when ``H == W``) in one call.

    Returns:
        The average, shaped like ``fn(x)``, in the dtype of ``fn``'s output.

    Raises:
        ValueError: If ``x`` is not 4-D or ``batch_size`` is not positive.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    square = x.shape[-2] == x.shape[-1]
    groups = [DIHEDRAL_TRANSFORMS] if square else [DIHEDRAL_TRANSFORMS[:4], DIHEDRAL_TRANSFORMS[4:]]
    total: torch.Tensor | None = None
    for group in groups:
        jobs = [(transform, n) for transform in group for n in range(x.shape[0])]
        step = batch_size or len(jobs)
        for first in range(0, len(jobs), step):
            chunk = jobs[first : first + step]
            y = fn(torch.stack([dihedral(x[n], transform) for transform, n in chunk]))
            if total is None:
                total = torch.zeros(
                    (x.shape[0], *undo_dihedral(y[0], chunk[0][0]).shape), dtype=y.dtype, device=y.device
                )
            for (transform, n), y_n in zip(chunk, y, strict=True):
                total[n] += undo_dihedral(y_n, transform)
    assert total is not None  # eight transforms always run
    return total / len(DIHEDRAL_TRANSFORMS)
