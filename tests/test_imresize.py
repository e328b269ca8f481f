"""MATLAB-exact bicubic imresize: the official LR files, a float64 reference, layouts, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edsr_lib.io import read_image
from edsr_lib.ops import imresize, modcrop

SET5 = ("baby", "bird", "butterfly", "head", "woman")
SET14 = (
    "baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers",
    "foreman", "lenna", "man", "monarch", "pepper", "ppt3", "zebra",
)  # fmt: skip


# ------------------------------------------------------------------ reference
def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_mirror(i: int, n: int) -> int:
    """1-based index reflected into 1..n the way MATLAB's symmetric padding does."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i


def _ref_resize_rows(img: np.ndarray, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """Resize axis 0 of a float64 (H, W) array, one output row at a time."""
    in_len = img.shape[0]
    shrink = scale < 1 and antialiasing
    width = 4 / scale if shrink else 4
    out = np.zeros((out_len, img.shape[1]))
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + j for j in range(math.ceil(width) + 2)]
        w = [scale * _ref_cubic(scale * (u - t)) if shrink else _ref_cubic(u - t) for t in taps]
        total = sum(w)
        for t, wt in zip(taps, w, strict=True):
            out[x - 1] += (wt / total) * img[_ref_mirror(t, in_len) - 1]
    return out


def reference_imresize(
    img: np.ndarray, out_hw: tuple[int, int], scales: tuple[float, float], uint8: bool, antialiasing: bool = True
) -> np.ndarray:
    """MATLAB imresize(img, 'bicubic') on a 2-D image, straight from the algorithm's description."""
    y = img.astype(np.float64)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        y = np.swapaxes(_ref_resize_rows(np.swapaxes(y, 0, axis), out_hw[axis], scales[axis], antialiasing), 0, axis)
        if uint8:
            y = np.clip(y, 0, 255)
            y = np.floor(y + 0.5)  # non-negative: halves go up, i.e. away from zero
    return y


def _random_uint8(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


SCALES = (1 / 2, 1 / 3, 1 / 4, 0.37, 2, 3, 1.5)


# ------------------------------------------------------------ official files
def _check_official(hr_path, lr_path, scale: int) -> None:
    lr = imresize(modcrop(read_image(hr_path), scale), 1 / scale)
    official = read_image(lr_path)
    assert lr.dtype == np.uint8
    assert lr.shape == official.shape
    assert np.array_equal(lr, official), f"{lr_path.name}: {np.count_nonzero(lr != official)} pixels differ"


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SET5)
def test_reproduces_official_set5_lr(datasets_dir, name, scale):
    root = datasets_dir / "Set5"
    _check_official(root / "HR" / f"{name}.png", root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SET14)
def test_reproduces_official_set14_lr(datasets_dir, name, scale):
    root = datasets_dir / "Set14"
    _check_official(root / "HR" / f"{name}.png", root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", scale)


def test_set14_bridge_is_grayscale(datasets_dir):
    assert read_image(datasets_dir / "Set14" / "HR" / "bridge.png").shape[2] == 1


@pytest.mark.parametrize("name", ["0004", "0006"])
def test_reproduces_official_div2k_lr(datasets_dir, name):
    root = datasets_dir / "DIV2K_train_partial"
    _check_official(root / "HR" / f"{name}.png", root / "LR_bicubic" / "X4" / f"{name}x4.png", 4)


# -------------------------------------------------------- float64 reference
@pytest.mark.parametrize("scale", SCALES)
def test_uint8_matches_reference(scale):
    img = _random_uint8((13, 17), seed=1)
    out_hw = (math.ceil(13 * scale - 1e-9), math.ceil(17 * scale - 1e-9))
    expected = reference_imresize(img, out_hw, (scale, scale), uint8=True)
    out = imresize(img, scale)
    assert out.dtype == np.uint8
    assert out.shape == out_hw
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


@pytest.mark.parametrize("scale", SCALES)
def test_float64_matches_reference(scale):
    img = np.random.default_rng(2).random((14, 11))
    out_hw = (math.ceil(14 * scale - 1e-9), math.ceil(11 * scale - 1e-9))
    expected = reference_imresize(img, out_hw, (scale, scale), uint8=False)
    out = imresize(torch.from_numpy(img), scale)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 3, 2.5])
def test_float32_matches_reference(scale):
    img = np.random.default_rng(3).random((3, 12, 10)).astype(np.float32)
    out = imresize(torch.from_numpy(img), scale)
    assert out.dtype == torch.float32
    for c in range(3):
        expected = reference_imresize(img[c], tuple(out.shape[-2:]), (scale, scale), uint8=False)
        np.testing.assert_allclose(out[c].numpy(), expected, rtol=0, atol=1e-5)


def test_without_antialiasing_matches_reference():
    img = np.random.default_rng(4).random((16, 12))
    expected = reference_imresize(img, (4, 3), (0.25, 0.25), uint8=False, antialiasing=False)
    out = imresize(torch.from_numpy(img), 0.25, antialiasing=False)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("out_hw", "note"), [((7, 30), "height shrinks more: first"), ((20, 5), "width first")])
def test_size_uses_per_axis_scales_and_matlab_axis_order(out_hw, note):
    img = _random_uint8((13, 17), seed=5)
    scales = (out_hw[0] / 13, out_hw[1] / 17)
    expected = reference_imresize(img, out_hw, scales, uint8=True)
    np.testing.assert_array_equal(imresize(img, size=out_hw), expected.astype(np.uint8), err_msg=note)


def test_uint8_rounds_between_passes():
    """Rounding after each pass (MATLAB) differs from rounding once at the end."""
    img = _random_uint8((40, 40), seed=6)
    per_pass = imresize(img, 1 / 3)
    once = np.floor(np.clip(imresize(img.astype(np.float64), 1 / 3), 0, 255) + 0.5).astype(np.uint8)
    assert not np.array_equal(per_pass, once)
    assert np.abs(per_pass.astype(int) - once).max() == 1


# ------------------------------------------------------------------ layouts
def test_output_size_is_ceil_of_scaled_size():
    x = torch.rand(1, 1, 13, 10)
    assert imresize(x, 1.5).shape[-2:] == (20, 15)
    assert imresize(x, 0.37).shape[-2:] == (5, 4)
    # 30 * 0.1 is 3.0000000000000004 in floating point: still 3.
    assert imresize(torch.rand(30, 30), 0.1).shape == (3, 3)


def test_batched_equals_per_image_and_layouts_agree():
    x = torch.rand(3, 2, 15, 12)
    batched = imresize(x, 0.5)
    assert batched.shape == (3, 2, 8, 6)
    for n in range(3):
        torch.testing.assert_close(imresize(x[n], 0.5), batched[n], rtol=0, atol=0)
        torch.testing.assert_close(imresize(x[n, 1], 0.5), batched[n, 1], rtol=0, atol=0)
    hwc = x[0].permute(1, 2, 0).numpy()
    out = imresize(hwc, 0.5)
    assert out.shape == (8, 6, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out, batched[0].permute(1, 2, 0).numpy())


def test_uint8_tensor_equals_uint8_array():
    img = _random_uint8((21, 18, 3), seed=7)
    from_array = imresize(img, 1 / 3)
    from_tensor = imresize(torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0), 1 / 3)
    assert from_tensor.dtype == torch.uint8 and from_tensor.shape == (1, 3, 7, 6)
    np.testing.assert_array_equal(from_tensor[0].permute(1, 2, 0).numpy(), from_array)


def test_float_output_is_not_clamped_and_keeps_dtype():
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    up = imresize(step, 2)
    assert up.min() < 0 and up.max() > 1
    assert imresize(step.to(torch.bfloat16), 2).dtype == torch.bfloat16


def test_identity_scale_returns_input():
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, 1), x, rtol=0, atol=1e-15)


def test_is_differentiable():
    x = torch.rand(1, 1, 9, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.6), (x,))


@pytest.mark.gpu  # run by the GPU window (pytest -m gpu); skipped where there is no CUDA
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 33, 47)
    torch.testing.assert_close(imresize(x.cuda(), 1 / 3).cpu(), imresize(x, 1 / 3), rtol=1e-5, atol=1e-6)
    u = torch.randint(0, 256, (2, 3, 33, 47), dtype=torch.uint8)
    assert torch.equal(imresize(u.cuda(), 1 / 3).cpu(), imresize(u, 1 / 3))


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of scale"),
        ({"scale": 0.5, "size": (4, 4)}, "exactly one of scale"),
        ({"scale": 0}, "positive number"),
        ({"scale": -2.0}, "positive number"),
        ({"scale": float("nan")}, "positive number"),
        ({"size": (4, 0)}, "positive"),
        ({"size": (4,)}, r"\(height, width\)"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(torch.rand(1, 1, 8, 8), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="floating-point or uint8"):
        imresize(torch.ones(1, 1, 8, 8, dtype=torch.int32), 0.5)
    with pytest.raises(TypeError, match="uint8 or floating-point"):
        imresize(np.ones((8, 8), dtype=np.int16), 0.5)
    with pytest.raises(ValueError, match="empty"):
        imresize(torch.rand(1, 1, 0, 8), 0.5)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        imresize(np.zeros((1, 8, 8, 3), dtype=np.uint8), 0.5)
    with pytest.raises(TypeError, match=r"torch\.Tensor or numpy\.ndarray"):
        imresize([[0.0, 1.0]], 0.5)


# ------------------------------------------------------------------- modcrop
def test_modcrop_arrays_and_tensors():
    img = np.zeros((13, 10, 3), dtype=np.uint8)
    assert modcrop(img, 4).shape == (12, 8, 3)
    assert modcrop(img[:, :, 0], 3).shape == (12, 9)
    t = torch.rand(2, 3, 13, 10)
    cropped = modcrop(t, 4)
    assert cropped.shape == (2, 3, 12, 8)
    assert torch.equal(cropped, t[..., :12, :8])


def test_modcrop_errors():
    with pytest.raises(ValueError, match="smaller than the scale 4"):
        modcrop(np.zeros((3, 10), dtype=np.uint8), 4)
    with pytest.raises(ValueError, match="positive integer"):
        modcrop(np.zeros((8, 8), dtype=np.uint8), 2.0)
