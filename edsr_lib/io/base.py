"""What every part of :mod:`edsr_lib.io` shares: the path type, the read errors, the EXIF orientation tag."""

from __future__ import annotations

import os

EXIF_ORIENTATION = 0x0112


PathLike = str | os.PathLike[str]


class ImageReadError(ValueError):
    """An image file is missing, truncated, too large, animated or not an image; the message names the file."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """The image file does not exist (both an :class:`ImageReadError` and a ``FileNotFoundError``)."""
