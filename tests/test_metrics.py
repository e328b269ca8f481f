"""PSNR/SSIM against a float64 NumPy reference; the colour conversions and rounding they rely on."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from edsr_lib import metrics as metrics_module
from edsr_lib.io import read_image, to_tensor
from edsr_lib.metrics import format_score, psnr, ssim
from edsr_lib.ops import imresize, modcrop, quantize, rgb_to_y, rgb_to_ycbcr, round_half_away, to_levels


# ------------------------------------------------------------------ reference
def _ref_levels(img: np.ndarray, crop: int, y_channel: bool, quant: bool) -> np.ndarray:
    """One CHW image in [0, 1] -> float64 255-scale channels, as the benchmark scores them."""
    x = img.astype(np.float64)
    x = np.floor(np.clip(x, 0, 1) * 255 + 0.5) if quant else x * 255
    if y_channel and x.shape[0] == 3:
        x = (16 + (65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]) / 255)[None]
    if crop:
        x = x[:, crop:-crop, crop:-crop]
    return x


def ref_psnr(sr: np.ndarray, hr: np.ndarray, crop: int, y_channel: bool = True, quant: bool = True) -> np.ndarray:
    out = []
    for a, b in zip(sr, hr, strict=True):
        a, b = _ref_levels(a, crop, y_channel, quant), _ref_levels(b, crop, y_channel, quant)
        mse = np.mean((a - b) ** 2)
        out.append(math.inf if mse == 0 else 10 * math.log10(255**2 / mse))
    return np.array(out)


def _ref_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s ssim_index.m: fspecial('gaussian', 11, 1.5), filter2(..., 'valid')."""
    r = np.arange(11) - 5
    window = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(x, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt(a), filt(b)
    s1 = filt(a * a) - mu1**2
    s2 = filt(b * b) - mu2**2
    s12 = filt(a * b) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ref_ssim(sr: np.ndarray, hr: np.ndarray, crop: int, y_channel: bool = True, quant: bool = True) -> np.ndarray:
    out = []
    for a, b in zip(sr, hr, strict=True):
        a, b = _ref_levels(a, crop, y_channel, quant), _ref_levels(b, crop, y_channel, quant)
        out.append(np.mean([_ref_ssim_channel(ca, cb) for ca, cb in zip(a, b, strict=True)]))
    return np.array(out)


def _noisy_pair(shape: tuple[int, ...], noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    hr = torch.rand(shape)
    sr = (hr + noise * torch.randn(shape)).clamp(-0.1, 1.1)  # some values outside [0, 1]
    return sr, hr


# -------------------------------------------------------- against reference
@pytest.mark.parametrize("y_channel", [True, False])
@pytest.mark.parametrize("crop", [0, 3])
@pytest.mark.parametrize("quant", [True, False])
def test_random_images_match_reference(y_channel, crop, quant):
    sr, hr = _noisy_pair((3, 3, 37, 41))
    kwargs = {"crop_border": crop, "test_y_channel": y_channel, "quantize": quant}
    p, s = psnr(sr, hr, **kwargs), ssim(sr, hr, **kwargs)
    assert p.shape == s.shape == (3,)
    assert p.dtype == s.dtype == torch.float64
    np.testing.assert_allclose(p.numpy(), ref_psnr(sr.numpy(), hr.numpy(), crop, y_channel, quant), rtol=1e-8)
    np.testing.assert_allclose(s.numpy(), ref_ssim(sr.numpy(), hr.numpy(), crop, y_channel, quant), rtol=1e-8)


@pytest.mark.parametrize("y_channel", [True, False])
def test_gray_images_match_reference(y_channel):
    sr, hr = _noisy_pair((2, 1, 30, 25))
    kwargs = {"crop_border": 2, "test_y_channel": y_channel}
    np.testing.assert_allclose(psnr(sr, hr, **kwargs).numpy(), ref_psnr(sr.numpy(), hr.numpy(), 2), rtol=1e-8)
    np.testing.assert_allclose(ssim(sr, hr, **kwargs).numpy(), ref_ssim(sr.numpy(), hr.numpy(), 2), rtol=1e-8)


@pytest.mark.parametrize("y_channel", [True, False])
def test_real_images_match_reference(datasets_dir, y_channel):
    """Set5 at x4: bicubic upsampling of the official LR files against HR."""
    for name in ("bird", "woman"):
        hr = to_tensor(modcrop(read_image(datasets_dir / "Set5" / "HR" / f"{name}.png"), 4))
        lr = read_image(datasets_dir / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
        sr = imresize(to_tensor(lr), 4)
        kwargs = {"crop_border": 4, "test_y_channel": y_channel}
        np.testing.assert_allclose(
            psnr(sr, hr, **kwargs).numpy(), ref_psnr(sr.numpy(), hr.numpy(), 4, y_channel), rtol=1e-8
        )
        np.testing.assert_allclose(
            ssim(sr, hr, **kwargs).numpy(), ref_ssim(sr.numpy(), hr.numpy(), 4, y_channel), rtol=1e-8
        )


# ------------------------------------------------------------ known values
def test_identical_images_give_inf_psnr_and_unit_ssim():
    hr = torch.rand(2, 3, 20, 20)
    assert torch.isinf(psnr(hr, hr.clone(), crop_border=0)).all()
    torch.testing.assert_close(ssim(hr, hr.clone(), crop_border=0), torch.ones(2, dtype=torch.float64))


def test_known_psnr_values():
    hr = torch.full((1, 3, 16, 16), 100 / 255)
    sr = hr + 1 / 255  # one level brighter everywhere
    expected_rgb = 10 * math.log10(255**2)  # MSE = 1
    assert psnr(sr, hr, crop_border=0, test_y_channel=False).item() == pytest.approx(expected_rgb, abs=1e-9)
    # In Y, one level in every channel is 219/255 of a level.
    expected_y = expected_rgb + 20 * math.log10(255 / 219)
    assert psnr(sr, hr, crop_border=0).item() == pytest.approx(expected_y, abs=1e-9)


def test_rgb_mode_averages_mse_over_channels():
    hr = torch.full((1, 3, 12, 12), 100 / 255, dtype=torch.float64)
    sr = hr.clone()
    sr[:, 2] += 3 / 255  # blue off by 3 levels: MSE 9 in one channel of three
    assert psnr(sr, hr, crop_border=0, test_y_channel=False).item() == pytest.approx(10 * math.log10(255**2 / 3))
    # Y weights blue by 24.966 / 255.
    assert psnr(sr, hr, crop_border=0).item() == pytest.approx(10 * math.log10(255**2 / (3 * 24.966 / 255) ** 2))


def test_crop_border_ignores_the_border():
    hr = torch.rand(1, 3, 30, 30)
    sr = hr.clone()
    sr[..., :4, :] = 0.0
    sr[..., :, -4:] = 1.0
    assert math.isfinite(psnr(sr, hr, crop_border=3).item())
    assert torch.isinf(psnr(sr, hr, crop_border=4)).all()
    assert ssim(sr, hr, crop_border=4).item() == pytest.approx(1.0)


def test_quantization_before_scoring():
    hr = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    hr = quantize(hr) / 255
    sr = hr + 0.4 / 255  # rounds back to hr
    assert torch.isinf(psnr(sr, hr, crop_border=0)).all()
    assert math.isfinite(psnr(sr, hr, crop_border=0, quantize=False).item())
    # Out-of-range values are clamped before scoring, as saving to 8 bits does.
    assert torch.isinf(psnr(torch.ones_like(hr) * 1.2, torch.ones_like(hr), crop_border=0)).all()


def test_gray_is_scored_on_its_gray_values():
    sr, hr = _noisy_pair((2, 1, 20, 20))
    torch.testing.assert_close(psnr(sr, hr, crop_border=1), psnr(sr, hr, crop_border=1, test_y_channel=False))


def test_per_image_values_in_a_batch():
    sr, hr = _noisy_pair((3, 3, 24, 24))
    batched = psnr(sr, hr, crop_border=2)
    for n in range(3):
        assert batched[n] == psnr(sr[n : n + 1], hr[n : n + 1], crop_border=2)[0]


def test_ssim_decreases_with_noise():
    hr = torch.rand(1, 3, 32, 32)
    values = [ssim((hr + s * torch.randn_like(hr)), hr, crop_border=0).item() for s in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("metric", [psnr, ssim])
def test_errors(metric):
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="same shape"):
        metric(x, torch.rand(1, 3, 20, 21), crop_border=0)
    with pytest.raises(ValueError, match="NCHW"):
        metric(x[0], x[0], crop_border=0)
    with pytest.raises(TypeError, match="float tensor"):
        metric(x, (x * 255).to(torch.uint8), crop_border=0)
    with pytest.raises(ValueError, match="non-negative integer"):
        metric(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="leaves nothing"):
        metric(x, x, crop_border=10)
    with pytest.raises(ValueError, match="3 channels"):
        metric(torch.rand(1, 4, 20, 20), torch.rand(1, 4, 20, 20), crop_border=0)


def test_ssim_needs_a_full_window():
    x = torch.rand(1, 1, 20, 20)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x, x, crop_border=5)


# -------------------------------------------------------------- colour/rounding
def test_round_half_away_from_zero():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.2], dtype=torch.float64)
    expected = torch.tensor([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 0.0, -0.0], dtype=torch.float64)
    assert torch.equal(round_half_away(x), expected)


def test_quantize_matches_im2uint8():
    k = torch.arange(255, dtype=torch.float64)
    assert torch.equal(quantize((k + 0.5) / 255), k + 1)  # halves go up
    assert torch.equal(quantize((k / 255).float()), k)  # float32 k/255 comes back exactly
    assert quantize(torch.tensor([-0.5, 1.5])).tolist() == [0.0, 255.0]


def test_rgb_to_ycbcr_matches_matlab_bt601():
    gray = torch.full((1, 3, 2, 2), 0.5, dtype=torch.float64)
    ycc = rgb_to_ycbcr(gray)
    torch.testing.assert_close(ycc[0, :, 0, 0], torch.tensor([(16 + 219 * 0.5) / 255, 128 / 255, 128 / 255]).double())
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    # MATLAB: rgb2ycbcr([1 0 0]) = [0.3195 0.3537 0.9412]
    torch.testing.assert_close(rgb_to_ycbcr(red).flatten(), torch.tensor([0.3195, 0.3537, 0.9412]), atol=1e-4, rtol=0)
    torch.testing.assert_close(rgb_to_y(red), rgb_to_ycbcr(red)[:1])
    assert rgb_to_y(torch.ones(2, 3, 4, 4)).shape == (2, 1, 4, 4)
    assert rgb_to_y(torch.ones(3, 1, 1)).item() == pytest.approx(235 / 255)
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_y(torch.ones(1, 1, 4, 4))


def test_format_score_is_the_tables_cell() -> None:
    assert format_score(37.6049, 0.95871) == "37.60 / 0.9587"
    assert format_score(31.2) == "31.20"
    assert format_score(None, 0.9) == "- / 0.9000"


# ------------------------------------------------------------------ integer levels
@pytest.mark.parametrize("peak", [255, 65535])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_to_levels_is_exact_without_float64(peak: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    halves = ((torch.randint(0, peak, (200_000,), generator=g).double() + 0.5) / peak).float()
    up, down = torch.nextafter(halves, torch.tensor(2.0)), torch.nextafter(halves, torch.tensor(-1.0))
    x = torch.cat([halves, up, down, torch.rand(200_000, generator=g), torch.tensor([0.0, 1.0, 0.5, -0.25, 1.5])])
    x = x.to(dtype)
    expected = round_half_away(x.double().clamp(0, 1) * peak)  # the exact product, rounded
    real_to = torch.Tensor.to

    def no_float64(self, *args, **kwargs):
        assert torch.float64 not in args and kwargs.get("dtype") != torch.float64, "float64 on the device"
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", no_float64)
    levels = to_levels(x, peak)
    monkeypatch.undo()
    assert levels.dtype == torch.float32
    assert torch.equal(levels.double(), expected)
    assert torch.equal(to_levels(x.double(), peak), expected)  # float64 input: computed in float64


def test_to_levels_rejects_what_it_cannot_round() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        to_levels(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="peak"):
        to_levels(torch.zeros(3), 70000)


# ------------------------------------------------------------------ strips
def _whole_image_reference(sr: torch.Tensor, hr: torch.Tensor, crop: int, y: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR and SSIM over the whole image at once, written out plainly (no strips)."""
    a, b = quantize(sr), quantize(hr)
    if y:
        a, b = rgb_to_y(a / 255) * 255, rgb_to_y(b / 255) * 255
    a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    mse = (a - b).square().mean(dim=(1, 2, 3))
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    w2 = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    n, c, h, w = a.shape

    def filt(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t.reshape(n * c, 1, h, w), w2[None, None]).reshape(n, c, h - 10, w - 10)

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b, cov = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return 10 * torch.log10(255**2 / mse), ssim_map.mean(dim=(1, 2, 3))


@pytest.mark.parametrize("strip_pixels", [1, 300, 1 << 30])
@pytest.mark.parametrize("y", [True, False])
def test_metrics_in_strips_equal_the_whole_image(strip_pixels: int, y: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "_STRIP_PIXELS", strip_pixels)  # one row per strip, a few rows, all at once
    g = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 45, 38, generator=g)
    sr = (hr + 0.05 * torch.randn(2, 3, 45, 38, generator=g)).clamp(0, 1)
    want_psnr, want_ssim = _whole_image_reference(sr, hr, 3, y)
    torch.testing.assert_close(psnr(sr, hr, crop_border=3, test_y_channel=y), want_psnr, rtol=1e-12, atol=0)
    torch.testing.assert_close(ssim(sr, hr, crop_border=3, test_y_channel=y), want_ssim, rtol=1e-12, atol=0)


_METRIC_PEAK_PROBE = """
import torch
from edsr_lib.metrics import psnr, ssim

def _kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

torch.set_num_threads(1)
hr = torch.rand(1, 3, 1200, 1000)
sr = (hr + 0.01).clamp(0, 1)
ssim(sr[..., :64, :64], hr[..., :64, :64], crop_border=2)  # warm up
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = _kib("VmRSS")
psnr(sr, hr, crop_border=2)
ssim(sr, hr, crop_border=2)
print((_kib("VmHWM") - base) / 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
@pytest.mark.slow
def test_scoring_a_large_image_needs_little_memory_beside_it() -> None:
    result = subprocess.run([sys.executable, "-c", _METRIC_PEAK_PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    peak_mb = float(result.stdout)
    # the two images are 1.2 megapixels, 14 MB each in float32; the whole-image SSIM took ~440 bytes a pixel (500 MB)
    assert peak_mb < 120, peak_mb
