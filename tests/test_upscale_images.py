"""``upscale`` on real-world inputs: PIL in and out, bit depths, memory bounds, OOM retry, non-finite values,
any output factor, devices and the bf16 CPU path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib import _device, inference, memory
from edsr_lib.inference import NonFiniteError, plan_passes, resolve_device, resolve_half, upscale
from edsr_lib.io import Image16, ImageReadError, image_to_array
from edsr_lib.ops import imresize


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).eval()


def _pixels(shape: tuple[int, ...], seed: int = 0, high: int = 256, dtype: type = np.uint8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


# ------------------------------------------------------------------ PIL in, PIL out
@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_pil_in_pil_out_keeps_the_mode(tiny: edsr_lib.SRModel, mode: str, channels: int) -> None:
    pixels = _pixels((6, 7, channels))
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)
    out = upscale(tiny, image)
    assert isinstance(out, Image.Image) and out.mode == mode and out.size == (14, 12)
    expected = upscale(tiny, pixels)
    np.testing.assert_array_equal(image_to_array(out), expected)


def test_sixteen_bit_gray_stays_sixteen_bit(tiny: edsr_lib.SRModel) -> None:
    levels = _pixels((6, 5), high=65536, dtype=np.uint16)
    out = upscale(tiny, Image.fromarray(levels))
    assert out.mode == "I;16"
    result = np.asarray(out)
    x = torch.from_numpy(levels.astype(np.float32) / 65535.0)[None, None]
    reference = upscale(tiny, x)[0].mean(0).clamp(0, 1).mul(65535).round().numpy()
    np.testing.assert_allclose(result, reference, atol=1)
    assert (result % 257 != 0).any()  # not 8-bit levels scaled up


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_stays_sixteen_bit(tiny: edsr_lib.SRModel, channels: int) -> None:
    levels = _pixels((6, 5, channels), high=65536, dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down: turned as a PIL image is
    image = Image16(levels, {"icc_profile": b"profile", "dpi": (72.0, 72.0), "exif": exif.tobytes()})
    out = upscale(tiny, image)
    assert isinstance(out, Image16) and out.mode == image.mode and out.size == (10, 12)
    np.testing.assert_array_equal(out.pixels, upscale(tiny, np.ascontiguousarray(levels[::-1, ::-1])))
    assert out.info["icc_profile"] == b"profile" and out.info["dpi"] == (144.0, 144.0)
    assert out.getexif().get(0x0112, 1) == 1  # upright, as for a PIL image
    pair = upscale(tiny, [image, image], outscale=1.5)  # a batch, and any factor
    assert [type(o) for o in pair] == [Image16, Image16] and pair[0].size == (8, 9)


def test_float_images_by_value_range(tiny: edsr_lib.SRModel) -> None:
    unit = np.random.default_rng(1).random((6, 5), dtype=np.float32)
    out = upscale(tiny, Image.fromarray(unit, mode="F"))
    assert out.mode == "F"
    reference = upscale(tiny, torch.from_numpy(unit)[None, None])[0].mean(0).clamp(0, 1).numpy()
    np.testing.assert_allclose(np.asarray(out), reference, atol=1e-6)
    # the same data in 0..255 is read as 0..255 and comes back in 0..255
    out255 = upscale(tiny, Image.fromarray(unit * 255, mode="F"))
    np.testing.assert_allclose(np.asarray(out255), reference * 255, atol=1e-3)
    with pytest.raises(ImageReadError, match="values in"):
        upscale(tiny, Image.fromarray(unit - 0.5, mode="F"))
    with pytest.raises(ImageReadError, match="NaN"):
        upscale(tiny, Image.fromarray(np.full((4, 4), np.nan, np.float32), mode="F"))


def test_int32_images_by_value_range(tiny: edsr_lib.SRModel) -> None:
    eight = _pixels((6, 5))
    out = upscale(tiny, Image.fromarray(eight.astype(np.int32), mode="I"))
    assert out.mode == "I"
    np.testing.assert_array_equal(np.asarray(out), upscale(tiny, eight))  # not 257 times darker
    with pytest.raises(ImageReadError, match="32-bit integer"):
        upscale(tiny, Image.fromarray(eight.astype(np.int32) - 100, mode="I"))


def test_metadata_is_carried_over(tiny: edsr_lib.SRModel) -> None:
    image = Image.fromarray(_pixels((6, 5, 3)))
    image.info["icc_profile"] = b"fake icc"
    image.info["dpi"] = (72.0, 96.0)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "edsr-lib camera"
    image.info["exif"] = exif.tobytes()
    out = upscale(tiny, image)
    assert out.info["icc_profile"] == b"fake icc"
    assert out.info["dpi"] == (144.0, 192.0)
    kept = out.getexif()
    assert kept[0x010F] == "edsr-lib camera" and kept[0x0112] == 1


def test_a_list_of_images_runs_as_one_batch(tiny: edsr_lib.SRModel, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [Image.fromarray(_pixels((6, 5, 3), seed=s)) for s in range(3)]
    batches: list[int] = []
    real = inference.tiled_apply
    monkeypatch.setattr(inference, "tiled_apply", lambda fn, x, *a, **k: batches.append(len(x)) or real(fn, x, *a, **k))
    outs = upscale(tiny, images)
    assert batches == [3]
    for image, out in zip(images, outs, strict=True):
        np.testing.assert_array_equal(np.asarray(out), upscale(tiny, np.asarray(image)))
    with pytest.raises(ValueError, match="one size and mode"):
        upscale(tiny, [images[0], images[0].convert("L")])


# ------------------------------------------------------------------ no silent wrong output
def test_non_finite_weights_are_refused_by_name(tiny: edsr_lib.SRModel) -> None:
    broken = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).eval()
    broken.load_state_dict(tiny.state_dict())
    name = next(n for n, _ in broken.named_parameters() if n.endswith("weight"))
    with torch.no_grad():
        broken.get_parameter(name)[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=name.replace(".", r"\.")):
        upscale(broken, _pixels((6, 6, 3)))


def test_non_finite_output_is_an_error(tiny: edsr_lib.SRModel) -> None:
    huge = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).eval()
    huge.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        for p in huge.parameters():
            p.mul_(1e30)  # finite weights whose activations overflow float32
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        upscale(huge, _pixels((6, 6, 3)))


def test_tensors_outside_zero_one_are_refused(tiny: edsr_lib.SRModel) -> None:
    with pytest.raises(ValueError, match=r"divide 0\.\.255 data by 255"):
        upscale(tiny, torch.rand(1, 3, 4, 4) * 255)
    with pytest.raises(ValueError, match="NaN"):
        upscale(tiny, torch.full((1, 3, 4, 4), float("nan")))
    upscale(tiny, torch.rand(1, 3, 4, 4) * 1.05)  # a model output a little above 1 is fine


# ------------------------------------------------------------------ memory
def test_the_default_tiles_an_image_over_the_budget(tiny: edsr_lib.SRModel, monkeypatch: pytest.MonkeyPatch) -> None:
    per_px = inference.activation_bytes_per_pixel(tiny)
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 2 * per_px * 40**2)
    tiles: list[int | None] = []
    real = inference.tiled_apply

    def spy(fn, x, scale, tile, overlap, **kwargs):
        tiles.append(tile)
        return real(fn, x, scale, tile, overlap, **kwargs)

    monkeypatch.setattr(inference, "tiled_apply", spy)
    x = torch.rand(1, 3, 70, 60)
    tiled = upscale(tiny, x)
    whole = upscale(tiny, x, tile=None)  # the explicit one pass
    radius = tiny.receptive_radius()
    assert isinstance(tiles[0], tuple) and tiles[1] is None
    window = [min(size, t + 2 * radius) for t, size in zip(tiles[0], (70, 60), strict=True)]
    assert window[0] * window[1] <= 40**2  # the windows fit the budget
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


_PEAK_PROBE = """
import torch, edsr_lib
from edsr_lib import inference, memory

def peak_mb(**kwargs):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _kib("VmRSS")
    inference.upscale(model, image, **kwargs)
    return (_kib("VmHWM") - base) / 1024

def _kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

torch.set_num_threads(1)
model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
image = torch.rand(1, 3, 700, 700)
memory._CPU_BUDGET_CAP = 16 << 20  # the real cap is 1.5 GiB; a small one keeps the test small
memory._MAX_WASTE = 100.0  # and windows do not grow past it
inference.upscale(model, image[..., :64, :64])  # warm up: fused copy, kernels
print(peak_mb(tile=None), peak_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
@pytest.mark.slow
def test_default_peak_memory_follows_the_budget_not_the_image() -> None:
    result = subprocess.run([sys.executable, "-c", _PEAK_PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one_pass, default = map(float, result.stdout.split())
    # one pass holds ~ 700**2 * (2*4+1)*8 floats of activations (~ 140 MB); the default a 16 MB budget's windows
    # and the output (700*2)**2 * 3 floats (~ 24 MB)
    assert one_pass > 100, one_pass
    assert default < one_pass / 2, (default, one_pass)


def test_out_of_memory_halves_the_tile_and_retries(tiny: edsr_lib.SRModel, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 50, 50)
    expected = upscale(tiny, x, tile=None)
    real = edsr_lib.backends.pytorch.fast_model
    windows: list[int] = []

    def fragile(*args, **kwargs):
        net = real(*args, **kwargs)

        def forward(batch, scale):
            windows.append(batch.shape[-1] * batch.shape[-2] * batch.shape[0])
            if batch.shape[0] * batch.shape[-1] * batch.shape[-2] > 40 * 40:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return net(batch, scale=scale)

        return forward

    monkeypatch.setattr(edsr_lib.backends.pytorch, "fast_model", fragile)
    with pytest.warns(UserWarning, match="out of memory"):
        result = upscale(tiny, x, tile=None)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)
    assert windows[0] == 50 * 50 and windows[-1] <= 40 * 40  # one pass, then halved until it fits
    assert windows.count(50 * 50) == 1  # the failed pass is not tried again as it was

    def hopeless(*args, **kwargs):
        def forward(batch, scale):
            raise torch.OutOfMemoryError("CUDA out of memory")

        return forward

    monkeypatch.setattr(edsr_lib.backends.pytorch, "fast_model", hopeless)
    with pytest.warns(UserWarning), pytest.raises(MemoryError, match="even with 16-pixel tiles"):
        upscale(tiny, x, tile=None)


def test_a_tile_much_smaller_than_the_overlap_warns_of_the_cost(tiny: edsr_lib.SRModel) -> None:
    overlap = tiny.receptive_radius()
    with pytest.warns(UserWarning, match=r"smaller than the overlap .* times the pixels it keeps"):
        upscale(tiny, torch.rand(1, 3, 40, 40), tile=overlap // 2)


# ------------------------------------------------------------------ devices and precision
def test_devices_are_checked() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(ValueError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_bf16_on_a_cpu_follows_what_torch_reports(tiny: edsr_lib.SRModel, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="bf16"):
        resolve_half("fp16", cpu)
    monkeypatch.setattr(_device, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ValueError, match="native bf16"):
        upscale(tiny, torch.rand(1, 3, 8, 8), half="bf16")
    monkeypatch.undo()
    if not inference.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    x = torch.rand(1, 3, 24, 24)
    fast = upscale(tiny, x, half="bf16")
    assert fast.dtype == torch.float32
    mse = (fast - upscale(tiny, x)).pow(2).mean().item()
    assert 0 < mse < 2e-6  # rounded to bf16 (not silently float32), yet close: 6.1e-7 measured (Zen 4, three seeds)


# ------------------------------------------------------------------ any output factor
@pytest.mark.parametrize(
    ("scales", "outscale", "passes"),
    [((2,), 1.5, (2,)), ((2,), 8, (2, 2, 2)), ((2, 3, 4), 8, (4, 2)), ((2, 3, 4), 6, (3, 2)), ((4,), 2.5, (4,))],
)
def test_plan_passes(scales: tuple[int, ...], outscale: float, passes: tuple[int, ...]) -> None:
    assert plan_passes(scales, outscale) == passes


def test_outscale_runs_the_model_then_matlab_bicubic(tiny: edsr_lib.SRModel) -> None:
    image = _pixels((10, 7, 3))
    out = upscale(tiny, image, outscale=1.5)
    assert out.shape == (15, 11, 3)
    np.testing.assert_array_equal(out, imresize(upscale(tiny, image), size=(15, 11)))
    eight = upscale(tiny, image, outscale=8)
    np.testing.assert_array_equal(eight, upscale(tiny, upscale(tiny, upscale(tiny, image))))
    pil = upscale(tiny, Image.fromarray(image), outscale=1.5)
    assert pil.size == (11, 15)
    with pytest.raises(ValueError, match="above 1"):
        upscale(tiny, image, outscale=0.5)
    with pytest.raises(ValueError, match="not both"):
        upscale(tiny, image, 2, outscale=1.5)
