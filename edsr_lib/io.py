"""Image files <-> arrays <-> tensors: the only place where uint8 lives.

Data flows one way: :func:`read_image` gives a uint8 ``H x W x C`` array,
:func:`to_tensor` turns it into the float NCHW tensor in [0, 1] that the rest of the
library uses, :func:`to_uint8` quantises a result back, and :func:`write_image` saves it
atomically.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .ops.color import quantize

#: File suffixes that :func:`list_images` picks up in folders and globs (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

PathLike = str | os.PathLike[str]


class ImageReadError(ValueError):
    """An image file is missing, truncated or not an image; the message names the file."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The image file does not exist (both an :class:`ImageReadError` and a ``FileNotFoundError``)."""


def _to_supported_mode(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to L, RGB or RGBA, keeping grayscale gray and alpha alpha."""
    if img.mode in ("L", "RGB", "RGBA"):
        return img
    if img.mode.startswith("I"):
        # 16-bit grayscale ("I;16", or "I" from a 16-bit PNG): scale 0..65535 to 0..255;
        # PIL's convert("L") would clip instead of scaling.
        levels = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.floor(levels + 0.5), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("LA", "La", "PA", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert("RGB")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as a uint8 ``H x W x C`` array.

    Grayscale stays one channel, RGB three, RGBA four; palette, LA, 16-bit, CMYK and other
    modes are converted to the nearest of those. The EXIF orientation is applied, so the
    array is upright as a viewer shows it.

    Args:
        path: The image file (any format Pillow reads).

    Returns:
        A uint8 array of shape ``(H, W, C)`` with ``C`` in {1, 3, 4}.

    Raises:
        ImageNotFoundError: If the file does not exist.
        ImageReadError: If it is truncated, corrupt or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file must fail here, not later
            img = ImageOps.exif_transpose(img)
            img = _to_supported_mode(img)
            array = np.array(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return array[:, :, None] if array.ndim == 2 else array


def write_image(path: PathLike, image: np.ndarray, **save_kwargs: Any) -> None:
    """Write a uint8 ``H x W x C`` (or ``H x W``) array to an image file, atomically.

    The format follows the suffix: ``.png``, ``.jpg``/``.jpeg`` or ``.webp``. Parent
    folders are created. The image is written to a temporary file in the same folder and
    moved into place, so a reader never sees a half-written file.

    Args:
        path: Where to write.
        image: uint8 array ``(H, W)``, or ``(H, W, C)`` with ``C`` in {1, 3, 4}
            (JPEG takes 1 or 3). Use :func:`to_uint8` to get one from a tensor.
        **save_kwargs: Passed to ``PIL.Image.save`` (e.g. ``quality=95`` for JPEG).

    Raises:
        TypeError: If ``image`` is not a uint8 NumPy array.
        ValueError: If the suffix or the shape is not supported.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path}: the suffix must be one of {', '.join(_WRITE_FORMATS)}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = f"dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"expected a uint8 NumPy array (H, W, C), got {kind}; to_uint8() converts a tensor")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"expected an image (H, W) or (H, W, C) with C in 1, 3, 4, got shape {image.shape}")
    if fmt == "JPEG" and image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"cannot write {path}: JPEG has no alpha channel; drop it or use .png")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot write an empty image of shape {image.shape}")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(np.ascontiguousarray(image)).save(f, format=fmt, **save_kwargs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Turn a uint8 image array into a float32 ``1 x C x H x W`` tensor in [0, 1].

    Args:
        image: uint8 array ``(H, W)`` or ``(H, W, C)``.

    Returns:
        A float32 tensor ``(1, C, H, W)`` equal to ``image / 255``.

    Raises:
        TypeError: If ``image`` is not a uint8 NumPy array.
        ValueError: If it is not 2-D or 3-D.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = f"dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"expected a uint8 NumPy array (H, W, C) as read_image() returns, got {kind}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {image.shape}")
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return chw.unsqueeze(0).to(torch.float32).div_(255.0)


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
    levels = quantize(tensor.detach()).to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).cpu().numpy())


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(sources: PathLike | Iterable[PathLike]) -> list[Path]:
    """Expand files, folders and glob patterns into a list of image files.

    A file is taken as given; a folder contributes its image files (by suffix, not
    recursive), sorted by name; a glob pattern (``*``, ``?``, ``[``; ``**`` recurses)
    contributes its matching image files, sorted. Duplicates are dropped, order kept.

    Args:
        sources: One path or pattern, or several.

    Returns:
        The image files, in order.

    Raises:
        FileNotFoundError: If a path does not exist (and is not a pattern).
        ValueError: If nothing at all matches.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if _is_image_file(p))
        elif path.is_file():
            matches = [path]
        elif any(c in source for c in "*?["):
            matches = sorted(p for p in map(Path, glob.glob(source, recursive=True)) if _is_image_file(p))
        else:
            raise FileNotFoundError(f"no such file or folder: {source}")
        found.update(dict.fromkeys(matches))
    if not found:
        where = ", ".join(sources) or "an empty list"
        raise ValueError(f"no images found in {where} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return list(found)
