"""Image files <-> PIL images <-> arrays <-> tensors: the only place where integer pixels live.

Data flows one way: :func:`load_image` decodes a file into an upright PIL image (what
the command line upscales, metadata and bit depth kept), :func:`image_to_array` gives its
pixels as a uint8, uint16 or float32 ``H x W x C`` array and :func:`array_to_image` turns
a result back into an image of the same mode; :func:`read_image` is the short way to an
8-bit array. :func:`to_tensor` turns an array into the float NCHW tensor in [0, 1] that
the rest of the library uses, :func:`to_uint8` quantises a result back, and
:func:`write_image` saves an array or an image atomically (:func:`fit_format` first
converts an image to what an asked-for format holds). :func:`list_images` says which
files a folder or a glob pattern holds.

Pillow holds every image the library reads but one kind: colour (and gray with alpha)
with 16 bits per channel, which it decodes to 8 bits. Such a PNG or TIFF is read, and
written, by pypng and tifffile into an :class:`Image16` (the pixels as a uint16 array and
the metadata Pillow would keep), which :func:`edsr_lib.upscale` takes and returns as it
does a PIL image; :func:`array_to_image` is the one place that decides which of the two
an array becomes.
"""

from __future__ import annotations

import glob
import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import png
import tifffile
import torch
from PIL import Image, ImageOps

from ._files import atomic_path
from .ops.color import to_levels

#: File suffixes that :func:`list_images` picks up in folders and globs (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

#: Suffix -> Pillow format that :func:`write_image` writes.
WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
#: The output formats, by their usual suffix (``edsr-lib upscale --format``): one per format of :data:`WRITE_FORMATS`.
OUTPUT_FORMATS: tuple[str, ...] = tuple(
    next(suffix[1:] for suffix, f in WRITE_FORMATS.items() if f == fmt) for fmt in dict.fromkeys(WRITE_FORMATS.values())
)
#: Modes each format stores as they are (anything else is refused, never converted in silence).
_FORMAT_MODES = {
    "PNG": {"L", "LA", "RGB", "RGBA", "I;16", "LA;16", "RGB;16", "RGBA;16"},
    "JPEG": {"L", "RGB"},
    "WEBP": {"RGB", "RGBA"},
    "TIFF": {"L", "LA", "RGB", "RGBA", "I;16", "RGB;16", "RGBA;16", "I", "F"},  # 16-bit LA: Pillow reads none
}
_EXIF_ORIENTATION = 0x0112
#: The modes of :class:`Image16` by channel count: 16 bits per channel, which Pillow cannot hold.
_MODES_16 = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}
#: The metadata an image carries from file to file (``info`` keys, as Pillow names them).
_METADATA = ("icc_profile", "exif", "dpi")

PathLike = str | os.PathLike[str]


class ImageReadError(ValueError):
    """An image file is missing, truncated, too large, animated or not an image; the message names the file."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The image file does not exist (both an :class:`ImageReadError` and a ``FileNotFoundError``)."""


@dataclass(eq=False)
class Image16:
    """An image with 16 bits per channel and 2 to 4 channels (gray + alpha, RGB, RGBA), which Pillow cannot hold.

    :func:`load_image` returns one for such a PNG or TIFF, :func:`edsr_lib.upscale` returns
    one for one, and :func:`write_image` writes it to PNG or TIFF with 16 bits per
    channel (:func:`fit_format` converts it to 8 bits for JPEG and WebP). It has the few
    attributes of a PIL image that the library reads (``mode``, ``size``, ``info``,
    :meth:`getexif`), so that code carrying images from file to file passes it along.

    Attributes:
        pixels: The pixels, a uint16 ``H x W x C`` array with ``C`` in 2, 3, 4 (alpha last,
            not premultiplied).
        info: The metadata as PIL names it in ``Image.info``: ``icc_profile`` (bytes),
            ``exif`` (bytes) and ``dpi`` (a pair of floats), each when present.
        format: The file format it was read from (``"PNG"``, ``"TIFF"``), or ``None``.
    """

    pixels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    format: str | None = None

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not (
            isinstance(pixels, np.ndarray)
            and pixels.dtype == np.uint16
            and pixels.ndim == 3
            and pixels.shape[2] in _MODES_16
        ):
            kind = f"{pixels.dtype} array of shape {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels)
            raise ValueError(f"an Image16 holds a uint16 H x W x C array with C in 2, 3, 4, got a {kind}")

    @property
    def mode(self) -> str:
        """``"LA;16"``, ``"RGB;16"`` or ``"RGBA;16"``, by the channels (the name :func:`check_writable` takes)."""
        return _MODES_16[self.pixels.shape[2]]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as PIL gives it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def width(self) -> int:
        """The width in pixels."""
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        """The height in pixels."""
        return self.pixels.shape[0]

    def getexif(self) -> Image.Exif:
        """The EXIF data (empty when there is none), as ``PIL.Image.Image.getexif`` gives it."""
        exif = Image.Exif()
        if self.info.get("exif"):
            exif.load(self.info["exif"])
        return exif


#: What :func:`load_image` returns and :func:`write_image` writes: a PIL image, or an :class:`Image16`.
AnyImage = Image.Image | Image16


# ---------------------------------------------------------------------------- reading
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
            image, over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``),
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
                    f"{path} is animated ({frames} frames); only still images are upscaled (extract the frames first)"
                )
            if ";16" in _raw_mode(img) and img.mode in ("LA", "RGB", "RGBA"):  # before load(), which drops the tile
                lacking = _cannot_read_16(path, img)
                if not lacking:
                    return upright(_read_16(path, img))
                warnings.warn(f"{path} has 16 bits per channel, read as 8 bits: {lacking}", stacklevel=2)
            img.load()  # decode now: a truncated file must fail here, not later
            image = upright(img)
            if image is img:  # a copy that outlives the file
                image = img.copy()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"{path} is too large to decode safely ({exc}); raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from exc
    except MemoryError as exc:
        raise ImageReadError(f"cannot read image {path}: out of memory while decoding") from exc
    except Exception as exc:  # whatever a decoder raises, it is this file that cannot be read
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return image


def _cannot_read_16(path: Path, img: Image.Image) -> str:
    """Why :func:`_read_16` cannot read this 16-bit colour file (``""`` when it can)."""
    if img.format == "PNG":
        return ""
    if img.format != "TIFF":
        return f"Pillow decodes {img.format} {img.mode} images to 8 bits"
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if page.compression not in tifffile.TIFF.DECOMPRESSORS or page.predictor not in tifffile.TIFF.UNPREDICTORS:
            name = getattr(page.compression, "name", page.compression)
            return f"its {name} compression needs the imagecodecs package (pip install imagecodecs)"
    return ""


def _read_16(path: Path, img: Image.Image) -> Image16:
    """The pixels of a 16-bit colour PNG or TIFF by pypng or tifffile, the metadata as Pillow read it."""
    if img.format == "PNG":
        with open(path, "rb") as f:
            width, height, rows, meta = png.Reader(file=f).asDirect()
            pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        pixels = pixels.reshape(height, width, meta["planes"])
    else:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                pixels = np.moveaxis(pixels, 0, -1)
        pixels = pixels.astype(np.uint16)  # native byte order
    if pixels.ndim != 3 or pixels.shape[2] not in _MODES_16:  # Pillow opens 16-bit gray + alpha PNG as RGBA
        raise ImageReadError(f"{path}: expected 2 to 4 channels of 16 bits, decoded an array of shape {pixels.shape}")
    info = {key: img.info[key] for key in ("icc_profile", "dpi") if img.info.get(key)}
    exif = img.getexif()
    if len(exif):
        info["exif"] = exif.tobytes()
    return Image16(np.ascontiguousarray(pixels), info, img.format)


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
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    if orientation in (None, 1):
        return image
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    del exif[_EXIF_ORIENTATION]
    turn = _UPRIGHT.get(orientation, lambda a: a)
    return Image16(np.ascontiguousarray(turn(image.pixels)), {**image.info, "exif": exif.tobytes()}, image.format)


def _raw_mode(img: Image.Image) -> str:
    tile = getattr(img, "tile", None) or []
    args = tile[0].args if tile else None
    return str(args[0] if isinstance(args, tuple) and args else args or "")


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
        peak = _integer_peak(values)
        array = values.astype(np.uint8 if peak == 255 else np.uint16)
    elif mode == "F":
        values = np.asarray(image, dtype=np.float32)
        array = values / np.float32(_float_peak(values))
    elif mode == "1":
        array = np.asarray(image.convert("L"))
    elif mode == "La":  # gray with premultiplied alpha: Pillow converts it to LA only
        array = np.asarray(image.convert("LA"))
    elif mode == "PA" or (mode == "P" and "transparency" in image.info) or mode == "RGBa":
        array = np.asarray(image.convert("RGBA"))
    else:
        array = np.asarray(image.convert("RGB"))
    return array[:, :, None] if array.ndim == 2 else array


def _integer_peak(values: np.ndarray) -> int:
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > 65535:
        raise ImageReadError(
            f"a 32-bit integer image with values in {low}..{high}: only 0..255 (8-bit) or 0..65535 (16-bit) "
            "data can be read without guessing its meaning"
        )
    return 255 if high <= 255 else 65535


def _float_peak(values: np.ndarray) -> float:
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
    if array.dtype == np.uint16 and array.ndim == 3 and array.shape[2] in _MODES_16:
        return Image16(array)
    if like is not None and like.mode == "I":
        return Image.fromarray(array.astype(np.int32), mode="I")
    if like is not None and like.mode == "F":
        peak = _float_peak(np.asarray(like, dtype=np.float32))
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
        exif[_EXIF_ORIENTATION] = 1  # the pixels are upright (load_image and upscale turn them)
        result.info["exif"] = exif.tobytes()
    if "dpi" in source.info:
        result.info["dpi"] = tuple(float(d) * factor for d in source.info["dpi"])
    return result


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


# ---------------------------------------------------------------------------- writing
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
            (_write_png_16 if fmt == "PNG" else _write_tiff_16)(f, image.pixels, **save_kwargs)
        else:
            image.save(f, format=fmt, **save_kwargs)


def _write_png_16(
    f: IO[bytes],
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    compress_level: int | None = None,
) -> None:
    """A 16-bit PNG by pypng, with the ICC profile (iCCP), EXIF (eXIf) and DPI (pHYs) chunks Pillow writes."""
    height, width, channels = pixels.shape
    writer = png.Writer(
        width, height, greyscale=channels < 3, alpha=channels % 2 == 0, bitdepth=16, compression=compress_level
    )
    rows = pixels.astype(">u2").reshape(height, width * channels)  # PNG samples are big-endian
    encoded = io.BytesIO()
    writer.write_packed(encoded, (bytearray(row.tobytes()) for row in rows))
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    extra = []
    if icc_profile:
        extra.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    if exif:
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    if dpi:
        extra.append((b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in dpi), 1)))
    png.write_chunks(f, chunks[:1] + extra + chunks[1:])  # after IHDR, before IDAT


def _write_tiff_16(
    f: IO[bytes],
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    dpi: tuple[float, float] | None = None,
) -> None:
    """A 16-bit TIFF by tifffile (uncompressed, as Pillow writes), with the ICC profile (tag 34675), EXIF and DPI.

    Of the EXIF, the tags of the image's own directory (camera, date, author: :data:`_TIFF_EXIF_TAGS`)
    are written; tifffile writes no EXIF sub-directory (exposure, GPS).
    """
    channels = pixels.shape[2]
    tags = []
    for code, value in _exif_items(exif) if exif else []:
        tags.append((code, "s", 0, value, True) if isinstance(value, str) else (code, "H", 1, int(value), True))
    tifffile.imwrite(
        f,
        pixels,
        photometric="rgb" if channels >= 3 else "minisblack",
        planarconfig="contig",
        extrasamples=("unassalpha",) if channels % 2 == 0 else None,
        iccprofile=icc_profile,
        resolution=tuple(dpi) if dpi else None,
        resolutionunit="INCH" if dpi else None,
        extratags=tags,
        metadata=None,
    )


#: The EXIF tags of a TIFF's own directory that a 16-bit TIFF keeps: description, make, model, orientation,
#: software, date, artist, copyright.
_TIFF_EXIF_TAGS = (270, 271, 272, _EXIF_ORIENTATION, 305, 306, 315, 33432)


def _exif_items(exif: bytes) -> list[tuple[int, str | int]]:
    loaded = Image.Exif()
    loaded.load(exif)
    return [(code, loaded[code]) for code in _TIFF_EXIF_TAGS if isinstance(loaded.get(code), str | int)]


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
        peak = float(_integer_peak(like) if mode == "I" else _float_peak(like.astype(np.float32)))
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


# ---------------------------------------------------------------------------- tensors
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


# ---------------------------------------------------------------------------- listing
class SkippedInputWarning(UserWarning):
    """A path a folder walk or a glob found but passed over: a broken link, a folder named like an image."""


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def _take(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Whether a path found by a walk or a glob is an input; a near miss is reported, never dropped in silence."""
    if path.suffix.lower() not in suffixes:
        return False
    if path.is_file():
        return True
    if path.is_symlink() and not path.exists():
        warnings.warn(f"{path} is a broken link (to {os.readlink(path)}): passed over", SkippedInputWarning, 3)
    elif path.is_dir():
        warnings.warn(f"{path} is a folder, not an image: passed over", SkippedInputWarning, 3)
    else:
        warnings.warn(f"{path} is not a regular file: passed over", SkippedInputWarning, 3)
    return False


def list_images(
    sources: PathLike | Iterable[PathLike], *, recursive: bool = False, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """Expand files, folders and glob patterns into a list of image files.

    A file is taken as given; a folder contributes its image files (by suffix), sorted by
    name, and with ``recursive`` those of its subfolders too; a glob pattern (``*``, ``?``,
    ``[``; ``**`` recurses) contributes its matching image files, sorted. Duplicates are
    dropped, order kept. Folder walks and globs follow one rule for hidden names: files and
    folders whose name starts with ``.`` are passed over (name them, or a pattern starting
    with ``.``, to take them). A broken link or a folder with an image suffix that a walk or
    a glob finds is passed over with a :class:`SkippedInputWarning`.

    Args:
        sources: One path or pattern, or several.
        recursive: Walk folders into their subfolders.
        suffixes: The file suffixes to take, lower case (default :data:`IMAGE_SUFFIXES`).

    Returns:
        The image files, in order.

    Raises:
        FileNotFoundError: If a path does not exist (and is not a pattern), or is a broken link.
        ValueError: If nothing at all matches.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            matches = sorted(p for p in walk if not _hidden(p, path) and _take(p, suffixes))
        elif path.is_file():
            matches = [path]
        elif path.is_symlink():
            raise FileNotFoundError(f"{source} is a broken link (to {os.readlink(path)})")
        elif any(c in source for c in "*?["):
            matches = sorted(p for p in map(Path, glob.glob(source, recursive=True)) if _take(p, suffixes))
        else:
            raise FileNotFoundError(f"no such file or folder: {source}")
        found.update(dict.fromkeys(matches))
    if not found:
        where = ", ".join(sources) or "an empty list"
        raise ValueError(f"no images found in {where} (looked for {', '.join(suffixes)})")
    return list(found)
