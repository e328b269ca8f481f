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

The package has one module per job: reading files (:mod:`~edsr_lib.io.reading`: :func:`load_image`,
:func:`pixel_limit`, :func:`upright`, :func:`read_image`), pixel types (:mod:`~edsr_lib.io.pixels`:
:func:`image_to_array`, :func:`array_to_image`, :func:`upscaled_mode`,
:func:`carry_metadata`), the 16-bit carrier and its pypng and tifffile files
(:mod:`~edsr_lib.io.image16`), writing files (:mod:`~edsr_lib.io.writing`: the formats,
:func:`check_writable`, :func:`fit_format`, :func:`write_image`), tensors
(:mod:`~edsr_lib.io.tensors`), listing (:mod:`~edsr_lib.io.listing`), and what they share
(:mod:`~edsr_lib.io.base`: the path type and the errors). Import the names below from
``edsr_lib.io``.
"""

from __future__ import annotations

from .base import ImageNotFoundError, ImageReadError, PathLike
from .image16 import AnyImage, Image16
from .listing import IMAGE_SUFFIXES, SkippedInputWarning, list_images
from .pixels import array_to_image, carry_metadata, image_to_array, upscaled_mode
from .reading import load_image, pixel_limit, read_image, upright
from .tensors import to_tensor, to_uint8
from .writing import (
    OUTPUT_FORMATS,
    TIFF_ONLY_MODES,
    WRITE_FORMATS,
    check_writable,
    default_target,
    fit_format,
    write_image,
)

# by job, in the order above: the API reference page (docs/api/io.md) shows them in this order
__all__ = [  # noqa: RUF022 (grouped by module, not alphabetical)
    "PathLike",
    "ImageReadError",
    "ImageNotFoundError",
    "Image16",
    "AnyImage",
    "load_image",
    "pixel_limit",
    "upright",
    "read_image",
    "image_to_array",
    "array_to_image",
    "upscaled_mode",
    "carry_metadata",
    "WRITE_FORMATS",
    "OUTPUT_FORMATS",
    "write_image",
    "TIFF_ONLY_MODES",
    "default_target",
    "check_writable",
    "fit_format",
    "to_tensor",
    "to_uint8",
    "IMAGE_SUFFIXES",
    "SkippedInputWarning",
    "list_images",
]
