"""Degradations of uint8 images: Gaussian noise seeded per image, and a JPEG round trip through Pillow.

:class:`LRDegradation` is the evaluation protocol for degraded input (``edsr-lib make-lr``
and ``edsr-lib evaluate`` with ``--noise`` and ``--jpeg``): it is applied to the
MATLAB-bicubic LR image, in this order:

1. additive Gaussian noise of standard deviation ``noise`` (in 0..255 levels), drawn by
   ``numpy.random.default_rng([seed, zlib.crc32(stem.encode())]).standard_normal(lr.shape)``
   for the image whose file stem is ``stem`` (the same noise for the same image on every
   machine), added in float64, rounded to the nearest level and clipped to 0..255;
2. a JPEG round trip at ``quality`` through Pillow (``Image.save(format="JPEG",
   quality=Q)``, Pillow's defaults otherwise: 4:2:0 chroma subsampling for colour, the
   standard quantisation tables), decoded back to uint8.

:func:`jpeg_roundtrip` is also the codec of the training chain (:mod:`edsr_lib.train.degrade`).
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["LRDegradation", "add_gaussian_noise", "jpeg_roundtrip", "split_metric_key"]

#: ``<set>_noise<SIGMA>_jpeg<Q>`` (either part optional): a set's scores on degraded LR.
_KEY = re.compile(r"(?P<set>.+?)(?:_noise(?P<noise>\d+(?:p\d+)?))?(?:_jpeg(?P<jpeg>\d+))?")


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 image as JPEG at ``quality`` with Pillow and decode it back.

    Args:
        image: uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
        quality: JPEG quality, 1..95 (Pillow's scale; 95 is its highest useful setting).

    Returns:
        The decoded uint8 image, of the same shape.

    Raises:
        ValueError: For a quality outside 1..95 or an image that is not uint8 gray or RGB.
    """
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be an integer from 1 to 95, got {quality!r}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"a JPEG round trip takes a uint8 gray or RGB image, got {image.dtype} {image.shape}")
    plane = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("L" if plane.ndim == 2 else "RGB"))
    return out.reshape(image.shape)


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian noise of standard deviation ``sigma`` levels, rounded and clipped to uint8.

    One independent draw per pixel and channel (``rng.standard_normal(image.shape)``), in float64.
    """
    noisy = image.astype(np.float64) + sigma * rng.standard_normal(image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class LRDegradation:
    """Noise, then JPEG, applied to a benchmark LR image: the protocol for scores on degraded input.

    Attributes:
        noise: Standard deviation of the additive Gaussian noise in 0..255 levels (0: none).
        jpeg: JPEG quality 1..95 of the round trip after the noise (``None``: none).
        seed: Seed of the noise; each image's stream is ``[seed, crc32(stem)]``.
    """

    noise: float = 0.0
    jpeg: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be a standard deviation >= 0 in 0..255 levels, got {self.noise!r}")
        if self.jpeg is not None and (
            isinstance(self.jpeg, bool) or not isinstance(self.jpeg, int | np.integer) or not 1 <= self.jpeg <= 95
        ):
            raise ValueError(f"jpeg must be a quality from 1 to 95, got {self.jpeg!r}")

    @property
    def active(self) -> bool:
        """Whether this changes anything (noise or JPEG set)."""
        return self.noise > 0 or self.jpeg is not None

    def describe(self) -> str:
        """A short name for tables and logs: ``"noise 15 + jpeg 50"``, ``"jpeg 30"`` or ``"clean"``."""
        parts = ([f"noise {self.noise:g}"] if self.noise > 0 else []) + ([f"jpeg {self.jpeg}"] if self.jpeg else [])
        return " + ".join(parts) or "clean"

    @property
    def key(self) -> str:
        """The name of these settings in metric keys: ``"jpeg50"``, ``"noise15"``, ``"noise5_jpeg50"``, ``"clean"``.

        A fractional sigma is written with ``p`` for the point (``noise2p5``); the seed is
        not part of it (scores are published with the default seed 0).
        """
        parts = ([f"noise{self.noise:g}".replace(".", "p")] if self.noise > 0 else []) + (
            [f"jpeg{self.jpeg}"] if self.jpeg is not None else []
        )
        return "_".join(parts) or "clean"

    def apply(self, lr: np.ndarray, stem: str) -> np.ndarray:
        """The degraded copy of a uint8 HWC LR image whose file stem is ``stem`` (which seeds its noise)."""
        out = lr
        if self.noise > 0:
            rng = np.random.default_rng([int(self.seed), zlib.crc32(stem.encode())])
            out = add_gaussian_noise(out, float(self.noise), rng)
        if self.jpeg is not None:
            out = jpeg_roundtrip(out, int(self.jpeg))
        return out


def split_metric_key(key: str) -> tuple[str, LRDegradation | None]:
    """A metrics key as its set name and degradation: ``"Set5_noise5_jpeg50"`` -> ``("Set5", noise 5 + jpeg 50)``.

    ``"Set5"`` (clean LR) gives ``("Set5", None)``; a self-ensemble ``+`` stays on the set name.
    """
    plus = "+" if key.endswith("+") else ""
    match = _KEY.fullmatch(key.removesuffix("+"))
    if match is None or (match["noise"] is None and match["jpeg"] is None):
        return key, None
    noise = float(match["noise"].replace("p", ".")) if match["noise"] else 0.0
    return match["set"] + plus, LRDegradation(noise=noise, jpeg=int(match["jpeg"]) if match["jpeg"] else None)
