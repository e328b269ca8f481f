"""The 16-bit carrier: :class:`Image16`, and its PNG and TIFF files read and written by pypng and tifffile.

Pillow decodes colour (and gray with alpha) with 16 bits per channel to 8 bits. Such a
file's pixels are read here into an :class:`Image16`, and an :class:`Image16` is written
here with 16 bits per channel and the metadata Pillow would write (ICC profile, EXIF, DPI).
:func:`~edsr_lib.io.load_image` and :func:`~edsr_lib.io.write_image` decide when.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import png
import tifffile
from PIL import Image

from .base import EXIF_ORIENTATION, ImageReadError

#: The modes of :class:`Image16` by channel count: 16 bits per channel, which Pillow cannot hold.
MODES_16 = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


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
            and pixels.shape[2] in MODES_16
        ):
            kind = f"{pixels.dtype} array of shape {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels)
            raise ValueError(f"an Image16 holds a uint16 H x W x C array with C in 2, 3, 4, got a {kind}")

    @property
    def mode(self) -> str:
        """``"LA;16"``, ``"RGB;16"`` or ``"RGBA;16"``, by the channels (the name :func:`check_writable` takes)."""
        return MODES_16[self.pixels.shape[2]]

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


def cannot_read_16(path: Path, img: Image.Image) -> str:
    """Why :func:`read_16` cannot read this 16-bit colour file (``""`` when it can)."""
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


def read_16(path: Path, img: Image.Image) -> Image16:
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
    if pixels.ndim != 3 or pixels.shape[2] not in MODES_16:  # Pillow opens 16-bit gray + alpha PNG as RGBA
        raise ImageReadError(f"{path}: expected 2 to 4 channels of 16 bits, decoded an array of shape {pixels.shape}")
    info = {key: img.info[key] for key in ("icc_profile", "dpi") if img.info.get(key)}
    exif = img.getexif()
    if len(exif):
        info["exif"] = exif.tobytes()
    return Image16(np.ascontiguousarray(pixels), info, img.format)


def write_png_16(
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


def write_tiff_16(
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
_TIFF_EXIF_TAGS = (270, 271, 272, EXIF_ORIENTATION, 305, 306, 315, 33432)


def _exif_items(exif: bytes) -> list[tuple[int, str | int]]:
    loaded = Image.Exif()
    loaded.load(exif)
    return [(code, loaded[code]) for code in _TIFF_EXIF_TAGS if isinstance(loaded.get(code), str | int)]
