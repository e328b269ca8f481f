"""Pixel types: an image's pixels as a uint8, uint16 or float32 array, and an array back as an image.

:func:`image_to_array` reads the pixels of any mode, :func:`array_to_image` is the one place
that decides which image (a PIL image or an :class:`~edsr_lib.io.Image16`) an array
becomes, :func:`upscaled_mode` says which mode that will be before the work, and
:func:`carry_metadata` gives a result the metadata of its source.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import EXIF_ORIENTATION, ImageReadError
from .image16 import MODES_16, AnyImage, Image16


def image_to_array(image: AnyImage) -> np.ndarray:
    """The pixels of an image as an ``H x W x C`` array that :func:`edsr_lib.upscale` takes.

    * ``L``, ``LA``, ``RGB``, ``RGBA``: uint8 with 1, 2, 3 or 4 channels; palette, bilevel,
      CMYK and other 8-bit modes are converted to the nearest of those.
    * 16-bit gray (``I;16`` and its variants, as 16-bit PNG and TIFF open): uint16.
    * an :class:`Image16` (16-bit gray + alpha, RGB, RGBA): its uint16 pixels (a copy).
    * premultiplied alpha (``La``, ``RGBa``): un-premultiplied, as ``LA`` and ``RGBA``.
    * 32-bit integer (``I``): read by the values it holds: uint8 if they are all in
      0..255, uint16 if in 0..65535.
    * float (``F``): float32 in [0, 1], taken from values in [0, 1], or divided by 255 or
      65535 for values up to those.

    Args:
        image: A PIL image or an :class:`Image16`.

    Returns:
        The array (uint8, uint16 or float32).

    Raises:
        ImageReadError: If a 32-bit or float image holds negative, non-finite or too
            large values, whose meaning would be a guess.
    """
    if isinstance(image, Image16):
        return image.pixels.copy()
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        array = np.array(image)  # a writable copy, not a read-only view of the image
    elif mode.startswith("I;16"):
        array = np.asarray(image).astype(np.uint16)
    elif mode == "I":
        values = np.asarray(image)
        peak = integer_peak(values)
        array = values.astype(np.uint8 if peak == 255 else np.uint16)
    elif mode == "F":
        values = np.asarray(image, dtype=np.float32)
        array = values / np.float32(float_peak(values))
    elif mode == "1":
        array = np.asarray(image.convert("L"))
    elif mode == "La":  # gray with premultiplied alpha: Pillow converts it to LA only
        array = np.asarray(image.convert("LA"))
    elif mode == "PA" or (mode == "P" and "transparency" in image.info) or mode == "RGBa":
        array = np.asarray(image.convert("RGBA"))
    else:
        array = np.asarray(image.convert("RGB"))
    return array[:, :, None] if array.ndim == 2 else array


def integer_peak(values: np.ndarray) -> int:
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > 65535:
        raise ImageReadError(
            f"a 32-bit integer image with values in {low}..{high}: only 0..255 (8-bit) or 0..65535 (16-bit) "
            "data can be read without guessing its meaning"
        )
    return 255 if high <= 255 else 65535


def float_peak(values: np.ndarray) -> float:
    if not np.isfinite(values).all():
        raise ImageReadError("a float image holds NaN or infinite values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low < 0 or high > 65535:
        raise ImageReadError(
            f"a float image with values in [{low:g}, {high:g}]: expected [0, 1] (or data in 0..255 or 0..65535)"
        )
    return 1.0 if high <= 1 else 255.0 if high <= 255 else 65535.0


def array_to_image(array: np.ndarray, like: AnyImage | None = None) -> AnyImage:
    """Turn an upscaled array back into an image, of the mode of ``like`` when given.

    uint8 arrays give ``L``, ``LA``, ``RGB`` or ``RGBA`` by their channels; uint16 gray gives
    ``I;16``, uint16 with 2 to 4 channels (which Pillow cannot hold) an :class:`Image16`;
    float32 in [0, 1] gives ``F``. With ``like`` (the image that was upscaled),
    ``I`` and ``F`` come back in the value range they were read in
    (:func:`image_to_array`), and the metadata is not copied (see :func:`carry_metadata`).

    Args:
        array: ``H x W x C`` (or ``H x W``) uint8, uint16 or float32 array.
        like: The source image, whose mode the result takes.

    Raises:
        ValueError: For an array no image holds (float colour, more than 4 channels).
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 3 and array.shape[2] in MODES_16:
        return Image16(array)
    if like is not None and like.mode == "I":
        return Image.fromarray(array.astype(np.int32), mode="I")
    if like is not None and like.mode == "F":
        peak = float_peak(np.asarray(like, dtype=np.float32))
        return Image.fromarray((array.astype(np.float32) * np.float32(peak)), mode="F")
    if not (
        (array.dtype == np.uint8 and (array.ndim == 2 or array.shape[2] in (2, 3, 4)))
        or (array.dtype in (np.uint16, np.float32) and array.ndim == 2)
    ):
        raise ValueError(
            f"cannot make an image of a {array.dtype} array of shape {array.shape}: uint8 and uint16 take 1-4 "
            "channels, float32 one"
        )
    return Image.fromarray(array)


def upscaled_mode(image: AnyImage) -> str:
    """The mode that :func:`edsr_lib.upscale` returns ``image`` in (what :func:`check_writable` checks before the work).

    Args:
        image: A PIL image or an :class:`Image16`.

    Returns:
        The mode of ``array_to_image(image_to_array(image), like=image)``: ``"RGB"`` for a
        palette image, ``"I;16"`` for any 16-bit gray, ``"RGB;16"`` for an :class:`Image16`, ...
    """
    if isinstance(image, Image16):
        return image.mode
    return array_to_image(image_to_array(image.crop((0, 0, 1, 1))), like=image).mode


def carry_metadata(source: AnyImage, result: AnyImage, factor: float) -> AnyImage:
    """Copy the ICC profile, EXIF (orientation set to upright) and DPI (times ``factor``) to ``result``.

    Args:
        source: The image that was upscaled (a PIL image or an :class:`Image16`).
        result: The upscaled image; its ``info`` is updated in place.
        factor: The upscaling factor, by which the DPI grows (same physical size).

    Returns:
        ``result``.
    """
    if "icc_profile" in source.info:
        result.info["icc_profile"] = source.info["icc_profile"]
    exif = source.getexif()
    if len(exif):
        exif[EXIF_ORIENTATION] = 1  # the pixels are upright (load_image and upscale turn them)
        result.info["exif"] = exif.tobytes()
    if "dpi" in source.info:
        result.info["dpi"] = tuple(float(d) * factor for d in source.info["dpi"])
    return result
