"""Reading image files: :func:`load_image` (upright, bit depth and metadata kept) and :func:`read_image` (uint8)."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..ops.color import to_levels
from .base import EXIF_ORIENTATION, ImageNotFoundError, ImageReadError, PathLike
from .image16 import AnyImage, Image16, cannot_read_16, read_16
from .pixels import image_to_array


def load_image(path: PathLike) -> AnyImage:
    """Decode an image file into an upright image, keeping its bit depth and metadata.

    The EXIF orientation is applied and reset to "upright" in the image's EXIF, so the
    pixels are as a viewer shows them. ``info`` keeps the ICC profile, EXIF and DPI.
    A PNG or TIFF with 16 bits per channel in colour or gray with alpha, which Pillow
    would decode to 8 bits, is read into an :class:`Image16` (all 16 bits kept).

    Args:
        path: The image file (any format Pillow reads).

    Returns:
        The decoded image: a PIL image, or an :class:`Image16`.

    Raises:
        ImageNotFoundError: If the file does not exist.
        ImageReadError: If it cannot be decoded for any reason: truncated, corrupt, not an
            image, over Pillow's decompression-bomb limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``;
            set it for a block with :func:`pixel_limit`),
            animated (several frames), or out of memory while decoding.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise ImageReadError(
                    f"{path} is animated ({frames} frames); only still images are read (extract the frames first)"
                )
            if ";16" in _raw_mode(img) and img.mode in ("LA", "RGB", "RGBA"):  # before load(), which drops the tile
                lacking = cannot_read_16(path, img)
                if not lacking:
                    return upright(read_16(path, img))
                warnings.warn(f"{path} has 16 bits per channel, read as 8 bits: {lacking}", stacklevel=2)
            img.load()  # decode now: a truncated file must fail here, not later
            image = upright(img)
            if image is img:  # a copy that outlives the file
                image = img.copy()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(_too_large(path, exc)) from exc
    except MemoryError as exc:
        raise ImageReadError(f"cannot read image {path}: out of memory while decoding") from exc
    except Image.UnidentifiedImageError as exc:
        other = _media_kind(path)
        raise ImageReadError(f"{path} {other}" if other else f"cannot read image {path}: {exc}") from exc
    except Exception as exc:  # whatever a decoder raises, it is this file that cannot be read
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return image


#: File signatures of sound and video files -> what they are, and the suffix a video takes.
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_AUDIO_SUFFIXES = {".m4a", ".m4b", ".mka", ".oga", ".opus", ".mp3", ".wav", ".flac", ".aac", ".ogg", ".aif", ".aiff"}


def _media_kind(path: Path) -> str | None:
    """What a file Pillow cannot identify is, when its first bytes say it is sound or video (else ``None``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    audio_named = path.suffix.lower() in _AUDIO_SUFFIXES
    if head[4:8] == b"ftyp":
        if head[8:12] in _AUDIO_BRANDS or audio_named:
            return "is sound (MP4 audio), not an image or a video: there is no picture to upscale"
        return "is a video (MP4/QuickTime); name it .mp4 to upscale it as one"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "is sound (WAV), not an image or a video: there is no picture to upscale"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "is a video (AVI); name it .avi to upscale it as one"
    if head[:3] == b"ID3" or head[:4] in (b"fLaC", b"caff", b"#!AM") or (head[:4] == b"FORM" and head[8:11] == b"AIF"):
        return "is sound, not an image or a video: there is no picture to upscale"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG or AAC audio frames
        return "is sound (MPEG audio), not an image or a video: there is no picture to upscale"
    if head[:4] in (b"OggS", b"\x1aE\xdf\xa3"):
        if audio_named:
            return "is sound, not an image or a video: there is no picture to upscale"
        container = "Ogg" if head[:4] == b"OggS" else "Matroska/WebM"
        suffix = ".ogv" if head[:4] == b"OggS" else ".mkv"
        return f"is a {container} file (video or sound); name it {suffix} to upscale its video"
    return None


def _too_large(path: Path, exc: Image.DecompressionBombError) -> str:
    """The decompression-bomb refusal, with the way to allow a trusted file: an option, not a Pillow setting."""
    pixels = re.search(r"\((\d+) pixels\)", str(exc))
    limit = re.search(r"limit of (\d+) pixels", str(exc))
    if not pixels or not limit:
        return f"{path} is too large to decode safely ({exc}); if you trust it, raise the limit with --max-pixels"
    return (
        f"{path} is too large to decode safely: {int(pixels[1]):,} pixels, over the limit of {int(limit[1]):,} "
        f"(a guard against decompression bombs); if you trust it, allow it with --max-pixels {pixels[1]} "
        "(max_pixels= in Python)"
    )


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb limit set to ``max_pixels`` while the block runs (``--max-pixels``).

    Args:
        max_pixels: The most pixels an image may have (``0``: no limit; ``None``: Pillow's
            own, about 89 million).

    Raises:
        ValueError: For a negative number.
    """
    if max_pixels is not None and max_pixels < 0:
        raise ValueError(f"max_pixels must be positive (or 0 for no limit), got {max_pixels}")
    saved = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels or None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


#: EXIF orientation -> how to turn an ``H x W x C`` array upright (as ``PIL.ImageOps.exif_transpose`` turns an image).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def upright(image: AnyImage) -> AnyImage:
    """``image`` as a viewer shows it: turned by its EXIF orientation, the tag then reset.

    :func:`load_image` applies it to every file, and :func:`edsr_lib.upscale` to every PIL
    image it is given, so that a photo taken sideways comes out upright either way.

    Args:
        image: A PIL image or an :class:`Image16`.

    Returns:
        A turned copy with the orientation tag removed, or ``image`` itself when it is
        already upright.
    """
    exif = image.getexif()
    orientation = exif.get(EXIF_ORIENTATION, 1)
    if orientation in (None, 1):
        return image
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    del exif[EXIF_ORIENTATION]
    turn = _UPRIGHT.get(orientation, lambda a: a)
    return Image16(np.ascontiguousarray(turn(image.pixels)), {**image.info, "exif": exif.tobytes()}, image.format)


def _raw_mode(img: Image.Image) -> str:
    tile = getattr(img, "tile", None) or []
    args = tile[0].args if tile else None
    return str(args[0] if isinstance(args, tuple) and args else args or "")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as a uint8 ``H x W x C`` array.

    Grayscale stays one channel, gray with alpha two, RGB three, RGBA four; palette,
    CMYK and other modes are converted to the nearest of those, 16-bit images are rounded to
    8 bits (use :func:`load_image` to keep 16 bits), 32-bit and float images are read by
    their value range (:func:`image_to_array`). The EXIF orientation is applied, so the
    array is upright as a viewer shows it.

    Args:
        path: The image file (any format Pillow reads).

    Returns:
        A uint8 array of shape ``(H, W, C)`` with ``C`` in {1, 2, 3, 4}.

    Raises:
        ImageNotFoundError: If the file does not exist.
        ImageReadError: If it cannot be read (see :func:`load_image`).
    """
    img = load_image(path)
    try:
        array = image_to_array(img)
    except ImageReadError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    finally:
        if isinstance(img, Image.Image):
            img.close()
    if array.dtype == np.uint8:
        return array
    values = torch.from_numpy(array.astype(np.float32) / np.float32(65535 if array.dtype == np.uint16 else 1))
    return to_levels(values, 255).numpy().astype(np.uint8)
