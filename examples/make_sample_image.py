"""Draw the small test image the README's first command upscales (``examples/data/sample.png``).

The picture is made from formulas, not taken from any dataset: a sky gradient, a sun,
a zone plate (rings that get finer outwards), stripes and a checkerboard, drawn at four
times the size and box-filtered down so that edges are anti-aliased like a real photo's.

Usage::

    python examples/make_sample_image.py [OUTPUT.png]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

#: Size of the written image in pixels (height, width).
SIZE = (96, 96)
#: Supersampling factor used for anti-aliasing.
SUPERSAMPLE = 4
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "sample.png"


def draw(size: tuple[int, int] = SIZE, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Render the test picture.

    Args:
        size: Height and width of the result in pixels.
        supersample: Each pixel is the mean of ``supersample**2`` samples.

    Returns:
        A ``(height, width, 3)`` uint8 RGB array.
    """
    h, w = size[0] * supersample, size[1] * supersample
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = (y + 0.5) / h, (x + 0.5) / w  # pixel centres in [0, 1]

    sky = np.stack([0.35 + 0.4 * y, 0.55 + 0.3 * y, 0.95 - 0.2 * y], axis=-1)
    img = sky

    # zone plate: concentric rings whose frequency rises with the radius
    r2 = (x - 0.68) ** 2 + (y - 0.32) ** 2
    rings = 0.5 + 0.5 * np.cos(2 * np.pi * 90.0 * r2)
    inside = r2 < 0.26**2
    img = np.where(inside[..., None], np.stack([rings, rings, rings * 0.9], axis=-1), img)

    sun = (x - 0.2) ** 2 + (y - 0.22) ** 2 < 0.13**2
    img = np.where(sun[..., None], np.array([0.95, 0.75, 0.2]), img)

    ground = y > 0.62
    stripes = (np.floor((x + 0.6 * y) * 14.0) % 2).astype(np.float64)
    img = np.where(ground[..., None], np.stack([0.25 + 0.5 * stripes, 0.5 + 0.2 * stripes, 0.2 + 0.0 * x], -1), img)

    board = (x > 0.62) & (x < 0.92) & (y > 0.7) & (y < 0.95)
    checks = ((np.floor(x * 24.0) + np.floor(y * 24.0)) % 2).astype(np.float64)
    img = np.where(board[..., None], np.stack([checks, 0.1 + 0.8 * checks, 0.9 - 0.8 * checks], -1), img)

    img = img.reshape(size[0], supersample, size[1], supersample, 3).mean(axis=(1, 3))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write ``array`` (HWC uint8) as PNG atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main() -> None:
    """Write the picture to the path given on the command line (default: ``examples/data/sample.png``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    path = parser.parse_args().output
    save_png(draw(), path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
