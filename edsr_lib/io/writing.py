"""Writing image files: the formats, what each holds, :func:`fit_format` and the atomic :func:`write_image`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .._files import atomic_path
from ..ops.color import to_levels
from ..options import OUTPUT_FORMATS, WRITE_FORMATS  # noqa: F401  (the names --format offers, owned where --help reads them)
from .base import PathLike
from .image16 import AnyImage, Image16, write_png_16, write_tiff_16
from .pixels import array_to_image, float_peak, integer_peak

#: Modes each format stores as they are (anything else is refused, never converted in silence).
_FORMAT_MODES = {
    "PNG": {"L", "LA", "RGB", "RGBA", "I;16", "LA;16", "RGB;16", "RGBA;16"},
    "JPEG": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
    "TIFF": {"L", "LA", "RGB", "RGBA", "I;16", "RGB;16", "RGBA;16", "I", "F"},  # 16-bit LA: Pillow reads none
}
#: The modes PNG cannot hold (32-bit integers, floats): written as TIFF where no output format was asked for.
TIFF_ONLY_MODES = ("I", "F")


def default_target(target: PathLike, mode: str) -> Path:
    """Where an image of ``mode`` is written when no output format was asked for: ``target`` (a PNG), or for the
    modes PNG cannot hold (:data:`TIFF_ONLY_MODES`) its ``.tif`` twin. The command line, folder jobs, Ray and the demo
    follow this one rule."""
    target = Path(target)
    return target.with_suffix(".tif") if mode in TIFF_ONLY_MODES else target


#: The metadata an image carries from file to file (``info`` keys, as Pillow names them).
_METADATA = ("icc_profile", "exif", "dpi")


def write_image(
    path: PathLike, image: np.ndarray | AnyImage, *, quality: int | None = None, **save_kwargs: Any
) -> None:
    """Write an array or an image to an image file, atomically.

    The format follows the suffix: ``.png``, ``.jpg``/``.jpeg``, ``.webp`` or
    ``.tif``/``.tiff``. Parent folders are created. The image is written to a temporary
    file in the same folder and moved into place, so a reader never sees a half-written
    file. An image is saved with its ICC profile, EXIF and DPI (see
    :func:`carry_metadata`). A mode the format cannot store (16-bit or float in JPEG, alpha
    in JPEG, ...) is refused, never converted in silence (:func:`fit_format` converts on
    purpose). An :class:`Image16` (a uint16 array of 2 to 4 channels) is written with 16
    bits per channel to PNG (by pypng) or TIFF (by tifffile).

    Args:
        path: Where to write.
        image: A PIL image, an :class:`Image16`, or an array: uint8 or uint16 ``(H, W)`` or
            ``(H, W, C)`` with ``C`` in {1, 2, 3, 4}. Use :func:`to_uint8` to get one from
            a tensor.
        quality: JPEG and WebP quality, an integer in 1..100 (as ``--quality``); default 95.
        **save_kwargs: Passed to ``PIL.Image.save``; for an :class:`Image16` only
            ``icc_profile``, ``exif``, ``dpi`` and (PNG) ``compress_level``.

    Raises:
        TypeError: If ``image`` is neither an image nor a uint8 or uint16 NumPy array.
        ValueError: If the suffix or the shape is not supported, the format cannot hold the
            mode, or ``quality`` is out of range.
    """
    path = Path(path)
    fmt = _write_format(path)
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100):
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(
                f"expected a uint8 NumPy array (H, W, C), got dtype {image.dtype}; to_uint8() converts a tensor "
                "(float pixels: write a PIL image of mode F)"
            )
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))):
            raise ValueError(f"expected an image (H, W) or (H, W, C) with C in 1, 2, 3, 4, got shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"cannot write an empty image of shape {image.shape}")
        image = array_to_image(image)
    elif not isinstance(image, Image.Image | Image16):
        raise TypeError(f"expected a uint8 NumPy array (H, W, C) or a PIL image, got {type(image).__name__}")
    _refuse_mode(path, fmt, image.mode, _FORMAT_MODES[fmt])
    if fmt in ("JPEG", "WEBP"):
        save_kwargs.setdefault("quality", 95 if quality is None else quality)
    for key in _METADATA:
        if key in image.info and key not in save_kwargs and not (fmt == "WEBP" and key == "dpi"):
            save_kwargs[key] = image.info[key]
    if isinstance(image, Image16):
        unknown = sorted(set(save_kwargs) - {*_METADATA, "compress_level"})
        if unknown:
            raise ValueError(f"cannot write {path}: {', '.join(unknown)} not supported for {image.mode} images")

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if isinstance(image, Image16):
            (write_png_16 if fmt == "PNG" else write_tiff_16)(f, image.pixels, **save_kwargs)
        else:
            image.save(f, format=fmt, **save_kwargs)


def _write_format(path: Path) -> str:
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path}: the suffix must be one of {', '.join(WRITE_FORMATS)}")
    return fmt


#: What an explicit format writes for a mode it does not hold, for :func:`fit_format`: format -> {mode: mode}.
#: ``I`` and ``F`` go to 8 bits, or to 16 bits where the format has them and the data needs them;
#: 16-bit colour goes to 8 bits; alpha is never dropped (JPEG has none: refused).
_NEAREST_MODES = {
    "PNG": {"I": "I;16", "F": "I;16"},
    "JPEG": {"I;16": "L", "I": "L", "F": "L", "RGB;16": "RGB"},
    "WEBP": {
        **{"L": "RGB", "LA": "RGBA", "I;16": "RGB", "I": "RGB", "F": "RGB"},
        **{"LA;16": "RGBA", "RGB;16": "RGB", "RGBA;16": "RGBA"},
    },
    "TIFF": {},
}


def _fitted_mode(mode: str, fmt: str) -> str | None:
    if mode in _FORMAT_MODES[fmt]:
        return mode
    return _NEAREST_MODES[fmt].get("I;16" if mode.startswith("I;16") else mode)


def check_writable(path: PathLike, mode: str) -> None:
    """Check, before computing it, that an image of PIL ``mode`` can be written to ``path`` (by :func:`fit_format`).

    Args:
        path: The file to write; its suffix gives the format.
        mode: The PIL mode of the image (``"RGBA"``, ``"I;16"``, ...).

    Raises:
        ValueError: If the suffix is not a format :func:`write_image` writes, or the format
            holds neither the mode nor a faithful conversion of it (alpha in JPEG).
    """
    path = Path(path)
    fmt = _write_format(path)
    _refuse_mode(path, fmt, mode, {mode} if _fitted_mode(mode, fmt) else set())


def _refuse_mode(path: Path, fmt: str, mode: str, allowed: set[str]) -> None:
    if mode in allowed:
        return
    has_alpha = any("A" in held for held in _FORMAT_MODES[fmt])
    what = "alpha channel" if "A" in mode and not has_alpha else f"{mode} pixels"
    hint = "; drop it or use .png or .webp" if fmt == "JPEG" and "A" in mode else ""
    if _fitted_mode(mode, fmt) is not None:
        hint = f"; fit_format() converts to {_fitted_mode(mode, fmt)}"
    raise ValueError(
        f"cannot write {path}: {fmt} has no {what}{hint} (it stores {', '.join(sorted(_FORMAT_MODES[fmt]))})"
    )


def fit_format(image: AnyImage, path: PathLike, source: AnyImage | None = None) -> tuple[AnyImage, str]:
    """Convert ``image`` to what the format of ``path`` holds, and say what changed.

    :func:`write_image` refuses a mode its format lacks; this is the explicit step before
    it, for a caller that asked for that format (``edsr-lib upscale --format jpg``) and
    tells the user. 16-bit (gray, colour, :class:`Image16`) and float pixels become 8-bit in JPEG and WebP, rounded as
    everywhere in the library (:func:`~edsr_lib.ops.color.to_levels`), or 16-bit in PNG; gray
    becomes RGB in WebP, gray with alpha RGBA. Metadata (``info``) is kept.

    Args:
        image: The image to write (an upscaled one).
        path: Where it goes; its suffix gives the format.
        source: The image ``image`` was upscaled from: a 32-bit or float result is read in
            the value range its source was read in (:func:`image_to_array`).

    Returns:
        The image to write (``image`` itself when nothing changes) and a note for the user,
        such as ``"I;16 images are written as 8-bit L in JPEG"`` (``""`` when nothing changes).

    Raises:
        ValueError: As :func:`check_writable`.
    """
    check_writable(path, image.mode)
    fmt = _write_format(Path(path))
    target = _fitted_mode(image.mode, fmt)
    if target == image.mode:
        return image, ""
    mode = image.mode
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        like = np.asarray(source if source is not None else image)
        peak = float(integer_peak(like) if mode == "I" else float_peak(like.astype(np.float32)))
        if target == "I;16" and peak == 255:
            target = "L"  # 8-bit data: a 16-bit file of levels 0..255 would look black
        unit = torch.from_numpy(values / peak)
    elif mode.startswith("I;16"):
        unit = torch.from_numpy(np.asarray(image).astype(np.float64) / 65535.0)
    elif isinstance(image, Image16):
        unit = torch.from_numpy(image.pixels / 65535.0)
    else:
        unit = None
    if unit is not None:
        if target == "I;16":
            levels = to_levels(unit, 65535).numpy().astype(np.uint16)
        else:
            levels = to_levels(unit, 255).numpy().astype(np.uint8)
        converted = Image.fromarray(levels)
        converted = converted.convert(target) if converted.mode != target else converted
    else:
        converted = image.convert(target)
    converted.info.update(image.info)
    bits = {"L": "8-bit L", "RGB": "8-bit RGB", "RGBA": "8-bit RGBA", "I;16": "16-bit I;16"}[target]
    return converted, f"{mode} images are written as {bits} in {fmt}"
