"""PSNR and SSIM under the super-resolution benchmark's conventions, batched in torch.

In the style of BasicSR's ``psnr_ssim``: the conventions are explicit arguments, because
they are the whole difficulty of comparing numbers (SPEC, "Evaluation conventions"):

* ``quantize``: images are rounded to 8 bits first (clamp to [0, 1], ``round(x * 255)``
  halves away from zero), as saving them to PNG does;
* ``test_y_channel``: score the Y channel of MATLAB ``rgb2ycbcr`` (BT.601, in 255-scale
  units, not rounded to integers) rather than every channel;
* ``crop_border``: ignore that many pixels at every border (the benchmark ignores
  ``scale``; DIV2K validation ignores ``scale + 6``).

Grayscale images (one channel) are scored on their gray values in both modes, as the
benchmark's MATLAB scripts do (``rgb2ycbcr`` only for 3-channel images). Reading a gray
image as RGB with ``R = G = B`` instead (as some PyTorch code does) would give
``Y = 16 + 219 * gray / 255``, shrink every difference by 219/255 and raise its PSNR by
20 log10(255/219) = 1.32 dB: measured here, that moves bicubic Set14 x2 (whose ``bridge``
is gray) from 30.23 dB, the published 30.24, to 30.33 dB.

Both metrics return one value per image (shape ``(N,)``, float64); take ``.mean()`` for
the dataset figure, as published tables do. They run over the image in strips of rows,
so that scoring needs a few tens of MB beside the images whatever their size (a whole
3000x2000 SSIM in float64 would take about 440 bytes per pixel).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .ops.color import quantize as _quantize
from .ops.color import rgb_to_y

__all__ = ["format_score", "psnr", "ssim"]

_PEAK = 255.0
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * _PEAK) ** 2
_SSIM_C2 = (0.03 * _PEAK) ** 2


#: Pixels (images x rows x columns) in one strip: the metrics run over an image strip by strip, so that
#: scoring needs little memory beside the images whatever their size. SSIM of an RGB strip peaks at about
#: 800 bytes a pixel with its conversions (measured: 54 MB for a 1200x1000 image, against 735 MB at once).
_STRIP_PIXELS = 1 << 16


class _Pair:
    """Two images under the metric's conventions, converted strip by strip (float64 NCHW in 255-scale, cropped)."""

    def __init__(
        self, sr: torch.Tensor, hr: torch.Tensor, crop_border: int, test_y_channel: bool, quantize: bool, metric: str
    ) -> None:
        for name, x in (("sr", sr), ("hr", hr)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{metric}: {name} must be a torch.Tensor, got {type(x).__name__}")
            if not x.is_floating_point():
                raise TypeError(f"{metric}: {name} must be a float tensor in [0, 1], got dtype {x.dtype}")
            if x.dim() != 4:
                raise ValueError(f"{metric}: {name} must be NCHW (4-D), got shape {tuple(x.shape)}")
        if sr.shape != hr.shape:
            raise ValueError(
                f"{metric}: sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}"
            )
        if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
            raise ValueError(f"{metric}: crop_border must be a non-negative integer, got {crop_border!r}")
        n, channels, height, width = sr.shape
        if test_y_channel and channels not in (1, 3):
            raise ValueError(f"{metric}: test_y_channel needs RGB (3 channels) or gray (1), got {channels} channels")
        if min(height, width) - 2 * crop_border < 1:
            raise ValueError(f"{metric}: crop_border={crop_border} leaves nothing of a {height}x{width} image")
        self.sr, self.hr = sr, hr
        self.crop, self.y, self.quantize = crop_border, test_y_channel and channels == 3, quantize
        #: The shape of the converted, cropped images.
        self.shape = (n, 1 if self.y else channels, height - 2 * crop_border, width - 2 * crop_border)

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``start:stop`` of both converted images (row 0 is the first row kept by the crop)."""
        c = self.crop
        window = (..., slice(c + start, c + stop), slice(c, self.sr.shape[-1] - c))
        return self._convert(self.sr[window]), self._convert(self.hr[window].to(self.sr.device))

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        x = _quantize(x) if self.quantize else x.to(torch.float64) * _PEAK
        return rgb_to_y(x / _PEAK) * _PEAK if self.y else x

    def strips(self, rows: int, halo: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of strips covering ``rows`` rows (each with ``halo`` more rows), of about 64k pixels."""
        n, _, _, width = self.shape
        step = max(1, _STRIP_PIXELS // (n * width) - halo)
        for start in range(0, rows, step):
            yield start, min(rows, start + step)


def psnr(
    sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, test_y_channel: bool = True, quantize: bool = True
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image, with peak 255.

    In RGB mode (``test_y_channel=False``) the mean squared error is taken over all
    channels together, as BasicSR and the DIV2K protocol do.

    Args:
        sr: Super-resolved images, float ``(N, C, H, W)`` in [0, 1].
        hr: Ground truth, same shape.
        crop_border: Pixels to ignore at every border (the benchmark uses ``scale``).
        test_y_channel: Score the BT.601 Y channel of RGB images (benchmark) rather than
            every channel; gray images are scored on their gray values either way.
        quantize: Round both images to 8 bits first, as the benchmark does.

    Returns:
        Float64 tensor ``(N,)``; ``inf`` where the images are identical.

    Raises:
        TypeError: If the inputs are not float tensors.
        ValueError: If the shapes differ or are not NCHW, ``crop_border`` is negative or
            leaves no pixels, or ``test_y_channel`` meets an image that is neither RGB nor gray.
    """
    pair = _Pair(sr, hr, crop_border, test_y_channel, quantize, "psnr")
    n, channels, height, width = pair.shape
    total = torch.zeros(n, dtype=torch.float64, device=sr.device)
    for start, stop in pair.strips(height, 0):
        a, b = pair.rows(start, stop)
        total += (a - b).square().sum(dim=(1, 2, 3))
    mse = total / (channels * height * width)
    return 10.0 * torch.log10(_PEAK**2 / mse)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', 11, 1.5)``, which is separable."""
    x = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def ssim(
    sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, test_y_channel: bool = True, quantize: bool = True
) -> torch.Tensor:
    """Structural similarity, per image, as the standard MATLAB ``ssim_index`` computes it.

    Gaussian window 11x11 with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, dynamic range 255,
    local statistics over 'valid' windows only (no padding), mean of the SSIM map. In RGB
    mode each channel is scored and the channels are averaged (as BasicSR does).

    Args:
        sr: Super-resolved images, float ``(N, C, H, W)`` in [0, 1].
        hr: Ground truth, same shape.
        crop_border: Pixels to ignore at every border (the benchmark uses ``scale``).
        test_y_channel: Score the BT.601 Y channel of RGB images (benchmark) rather than
            every channel; gray images are scored on their gray values either way.
        quantize: Round both images to 8 bits first, as the benchmark does.

    Returns:
        Float64 tensor ``(N,)``; 1 where the images are identical.

    Raises:
        TypeError: If the inputs are not float tensors.
        ValueError: As :func:`psnr`, and if fewer than 11x11 pixels remain after cropping.
    """
    pair = _Pair(sr, hr, crop_border, test_y_channel, quantize, "ssim")
    n, channels, h, w = pair.shape
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim: needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, got {h}x{w} "
            f"(crop_border={crop_border})"
        )
    g = _gaussian_window(torch.float64, sr.device)
    halo = _SSIM_WINDOW - 1
    total = torch.zeros(n, dtype=torch.float64, device=sr.device)
    # Strips of the SSIM map: map rows start:stop need image rows start:stop + 10 ('valid' windows).
    for start, stop in pair.strips(h - halo, halo):
        a, b = pair.rows(start, stop + halo)
        total += _ssim_map(a, b, g).sum(dim=(1, 2, 3))
    return total / (channels * (h - halo) * (w - halo))


def _ssim_map(a: torch.Tensor, b: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The SSIM map of two float64 images in 255-scale, over 'valid' windows (no padding)."""
    n, c, h, w = a.shape
    # One pass for the five local statistics of every channel; the 2-D Gaussian is
    # separable, so a column filter then a row filter ('valid': no padding).
    stats = torch.stack((a, b, a * a, b * b, a * b), dim=2).reshape(n * c * 5, 1, h, w)
    stats = F.conv2d(stats, g.view(1, 1, -1, 1))
    stats = F.conv2d(stats, g.view(1, 1, 1, -1))
    mu_a, mu_b, e_aa, e_bb, e_ab = stats.reshape(n, c, 5, *stats.shape[-2:]).unbind(dim=2)
    var_a = e_aa - mu_a * mu_a
    var_b = e_bb - mu_b * mu_b
    cov = e_ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a * mu_a + mu_b * mu_b + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    )


def format_score(psnr: float | None, ssim: float | None = None) -> str:
    """A score as the tables of model cards and docs print it: ``"37.66 / 0.9596"`` (PSNR in dB, then SSIM).

    Args:
        psnr: PSNR in dB (two decimals), or ``None`` (printed ``-``).
        ssim: SSIM (four decimals), left out when ``None``.
    """
    text = "-" if psnr is None else f"{psnr:.2f}"
    return text if ssim is None else f"{text} / {ssim:.4f}"
