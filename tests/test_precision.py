"""bf16 output is unbiased: on real images its mean level equals fp32's within 0.02 grey levels, in every runtime.

Rounding the input levels, the output mean held in the fused tail's bias, or the tail's
output to bfloat16 made bf16 output 0.05-0.17 levels brighter than fp32 on every image;
the ends of the network now run in float32 (``float32_ends`` in edsr_lib.backends.pytorch,
``keep_ends_float32`` in edsr_lib.backends.openvino). These tests measure the mean signed
difference of the written levels, image by image, so a constant offset of a tenth of a
level fails them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATASETS_DIR
from PIL import Image
from runtimes import private_cache

import edsr_lib
from edsr_lib import backends
from edsr_lib.inference import cpu_has_native_bf16
from edsr_lib.io import read_image

cache = pytest.fixture(scope="module", name="cache", autouse=True)(private_cache)

#: The largest mean signed difference, in 8-bit levels, between bf16 and fp32 output on one image.
MAX_MEAN_SHIFT = 0.02

pytestmark = pytest.mark.skipif(
    not cpu_has_native_bf16(),
    reason="bf16 runs on a CPU only with native bf16 (AVX-512 BF16 or AMX), which this CPU lacks",
)

BACKENDS = ["torch"] + [
    pytest.param(b, marks=pytest.mark.skipif(b not in backends.installed_runtimes(), reason=f"needs {b}"))
    for b in backends.RUNTIMES
    if "bf16" in backends.get_backend(b).precisions
]


def _shipped() -> list[str]:
    """The registered pretrained models whose weights ship in the package (offline), smallest first."""
    names = [n for n in edsr_lib.list_models(pretrained=True) if edsr_lib.get_pretrained_cfg(n).package_file]
    assert names, "no pretrained weights ship in the package"
    return sorted(names, key=lambda n: edsr_lib.create_model(n).num_parameters())


def _images(count: int) -> list[np.ndarray]:
    """Up to ``count`` Set5 images as uint8 arrays, or smooth synthetic photos where the image sets are absent."""
    files = sorted((DATASETS_DIR / "Set5" / "HR").glob("*.png"))[:count]
    if files:
        return [read_image(f)[:160, :160] for f in files]
    generator = torch.Generator().manual_seed(0)
    images = []
    for _ in range(count):
        coarse = torch.rand(1, 3, 12, 12, generator=generator)
        smooth = torch.nn.functional.interpolate(coarse, size=(160, 160), mode="bicubic", align_corners=False)
        noisy = smooth + 0.03 * torch.randn(smooth.shape, generator=generator)
        images.append((noisy.clamp(0, 1)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    return images


def _mean_shifts(name: str, backend: str, images: list[np.ndarray]) -> list[float]:
    model = edsr_lib.create_model(name, pretrained=True).eval()
    shifts = []
    for scale in model.scales:
        for image in images:
            exact = edsr_lib.upscale(model, image, scale, backend=backend, half=False)
            fast = edsr_lib.upscale(model, image, scale, backend=backend, half="bf16")
            shifts.append(float((fast.astype(np.int64) - exact.astype(np.int64)).mean()))
    return shifts


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_is_as_bright_as_fp32(backend: str) -> None:
    shifts = _mean_shifts(_shipped()[0], backend, _images(3))
    assert max(abs(s) for s in shifts) < MAX_MEAN_SHIFT, f"bf16 - fp32 mean levels per image: {shifts}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_shipped_model_is_as_bright_in_bf16(backend: str) -> None:
    for name in _shipped():
        shifts = _mean_shifts(name, backend, _images(5))
        assert max(abs(s) for s in shifts) < MAX_MEAN_SHIFT, f"{name}: bf16 - fp32 mean levels per image: {shifts}"


# ------------------------------------------------------------------ the fast path by default
def _tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).save_pretrained(folder)
    return str(folder)


def test_an_upscaler_runs_the_fastest_measured_path_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    up = edsr_lib.Upscaler(_tiny_folder(tmp_path_factory), device="cpu")
    assert up.precision == backends.default_precision(torch.device("cpu")) == "bf16"  # this CPU has native bf16
    measured = backends.auto_measurement(up.model, 2, up.precision)
    assert measured is not None and up.backend == measured["backend"]  # chosen by measurement, remembered
    x = torch.rand(1, 3, 20, 16)
    exact = edsr_lib.upscale(up.model, x)  # the one-call function stays exact: fp32 in PyTorch
    assert (exact - up.model(x, scale=2)).abs().max() < 1e-5
    assert 1e-5 < (up(x) - exact).abs().max() < 0.05
    assert edsr_lib.Upscaler(up.model, precision="fp32", backend="torch")(x).equal(exact)


def test_the_command_line_says_its_default_precision_once_and_fp32_is_exact(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edsr_lib.cli import main

    folder = _tiny_folder(tmp_path_factory)
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (14, 11, 3), dtype=np.uint8)).save(images / f"{name}.png")
    assert main(["upscale", str(images), "-o", str(tmp_path / "fast"), "--model", folder]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    measured = backends.auto_measurement(edsr_lib.from_pretrained(folder), 2, "bf16")
    assert measured is not None  # the line names the backend that ran, as measured
    assert said == [
        "edsr-lib upscale: precision bf16 (native on this CPU; --fp32 for the exact float32 result), "
        f"backend {measured['backend']} (the fastest installed here, measured once; --backend to choose)"
    ]
    assert main(["upscale", str(images), "-o", str(tmp_path / "exact"), "--model", folder, "--fp32"]) == 0
    assert "precision" not in capsys.readouterr().err
    exact = edsr_lib.upscale(folder, read_image(images / "a.png"))
    np.testing.assert_array_equal(read_image(tmp_path / "exact" / "a_x2.png"), exact)
    fast = read_image(tmp_path / "fast" / "a_x2.png").astype(int)
    assert 0 < np.abs(fast - exact).max() <= 3
