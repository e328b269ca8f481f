"""``upscale(backend=...)``: OpenVINO and ONNX Runtime under the same tiling, channels and file handling as PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from runtimes import RUNTIMES, private_cache

import edsr_lib
from edsr_lib import backends
from edsr_lib.cli import main
from edsr_lib.inference import cpu_has_native_bf16
from edsr_lib.io import read_image, write_image

cache = pytest.fixture(scope="module", name="cache", autouse=True)(private_cache)


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.MDSR:
    torch.manual_seed(0)
    return edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8).eval()


def _differing_levels(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Largest difference in levels, and the fraction of values that differ at all."""
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int(diff.max()), float((diff > 0).mean())


@pytest.mark.parametrize("backend", RUNTIMES)
def test_fp32_equals_torch_and_tiling_stays_exact(backend: str, tiny: edsr_lib.MDSR) -> None:
    x = torch.rand(2, 3, 45, 38)
    for scale in (2, 3):
        expected = edsr_lib.upscale(tiny, x, scale, tile=None)
        whole = edsr_lib.upscale(tiny, x, scale, tile=None, backend=backend)
        tiled = edsr_lib.upscale(tiny, x, scale, tile=20, batch_size=3, backend=backend)
        assert whole.shape == expected.shape and whole.dtype == x.dtype
        assert (whole - expected).abs().max().item() <= 1e-5
        assert (tiled - whole).abs().max().item() <= 1e-5  # windows overlap by the receptive radius
    assert not tiny.fused


@pytest.mark.parametrize("backend", RUNTIMES)
def test_gray_alpha_and_16_bit_go_through_the_runtime(backend: str, tiny: edsr_lib.MDSR) -> None:
    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 256, (20, 17, 4), dtype=np.uint8),  # RGBA
        rng.integers(0, 256, (20, 17), dtype=np.uint8),  # gray
        rng.integers(0, 65536, (20, 17, 3), dtype=np.uint16),  # 16-bit
    ):
        ours = edsr_lib.upscale(tiny, image, 2, backend=backend)
        reference = edsr_lib.upscale(tiny, image, 2)
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        worst, fraction = _differing_levels(ours, reference)
        # noise through a random model rounds near a half level more often than photographs do
        # (the 0.1% rule is checked on real images below)
        assert worst <= 1 and fraction <= 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("backend", RUNTIMES)
def test_written_files_match_torch_on_real_images(backend: str, datasets_dir: Path, tmp_path: Path) -> None:
    """The shipped x2 weights on Set5's LR images: 8-bit results within one level in at most 0.1% of values."""
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True).eval()
    for path in sorted((datasets_dir / "Set5" / "LR_bicubic" / "X2").glob("*.png"))[:3]:
        image = read_image(path)
        reference = edsr_lib.upscale(model, image)
        ours = edsr_lib.upscale(model, image, backend=backend)
        edsr_lib.io.write_image(tmp_path / f"{path.stem}.png", ours)
        worst, fraction = _differing_levels(read_image(tmp_path / f"{path.stem}.png"), reference)
        assert worst <= 1 and fraction <= 1e-3, (path.name, worst, fraction)


def test_auto_runs_the_fastest_and_matches_torch(tiny: edsr_lib.MDSR, cache: Path) -> None:
    x = torch.rand(1, 3, 30, 26)
    got = edsr_lib.upscale(tiny, x, 4, backend="auto")
    assert (got - edsr_lib.upscale(tiny, x, 4)).abs().max().item() <= 1e-5
    if backends.installed_runtimes():
        assert (cache / "auto.json").is_file()


def test_what_a_runtime_cannot_do_is_refused(tiny: edsr_lib.MDSR, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="backend must be one of"):
        edsr_lib.upscale(tiny, x, 2, backend="tensorrt")


@pytest.mark.skipif("openvino" not in backends.installed_runtimes(), reason="OpenVINO is not installed")
def test_what_openvino_cannot_do_is_refused(tiny: edsr_lib.MDSR, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="compile=True"):
        edsr_lib.upscale(tiny, x, 2, backend="openvino", compile=True)
    monkeypatch.setattr(backends.openvino, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(edsr_lib.inference, "resolve_half", lambda half, device: torch.bfloat16)
    with pytest.raises(ValueError, match="native bf16"):
        edsr_lib.upscale(tiny, x, 2, backend="openvino", half="bf16")


def test_bf16_through_openvino_on_a_cpu_that_has_it(tiny: edsr_lib.MDSR) -> None:
    if "openvino" not in backends.installed_runtimes() or not cpu_has_native_bf16():
        pytest.skip("needs OpenVINO and a CPU with native bf16")
    x = torch.rand(1, 3, 24, 24)
    fp32 = edsr_lib.upscale(tiny, x, 2)
    ours = edsr_lib.upscale(tiny, x, 2, backend="openvino", half="bf16")
    assert 0 < (ours - fp32).abs().max().item() < 7e-3  # 3.2e-3 to 3.6e-3 measured (Zen 4, four seeds)


def test_a_weight_change_reaches_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    if not backends.installed_runtimes():
        pytest.skip("needs a runtime")
    backend = backends.installed_runtimes()[0]
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    x = torch.rand(1, 3, 16, 16)
    before = edsr_lib.upscale(model, x, backend=backend)
    with torch.no_grad():
        model.tail.bias.add_(0.5)
    after = edsr_lib.upscale(model, x, backend=backend)
    assert (after - edsr_lib.upscale(model, x)).abs().max().item() <= 1e-5
    assert (after - before).abs().max().item() > 1e-3


def test_one_list_of_backends_for_the_table_the_options_and_the_command_line() -> None:
    import argparse

    from edsr_lib import options
    from edsr_lib.cli import upscale as cli_upscale

    assert backends.BACKENDS is options.BACKENDS and backends.BACKENDS[-1] == "auto"
    assert [backends.get_backend(name).name for name in backends.BACKENDS[:-1]] == list(backends.BACKENDS[:-1])
    runtimes = [n for n in backends.BACKENDS[:-1] if isinstance(backends.get_backend(n), backends.FileBackend)]
    assert runtimes == list(options.RUNTIMES)
    with pytest.raises(backends.BackendError, match="backend must be one of"):
        backends.get_backend("auto")
    parser = cli_upscale.add_parser(argparse.ArgumentParser().add_subparsers())
    (backend,) = [a for a in parser._actions if a.dest == "backend"]
    assert tuple(backend.choices) == options.BACKENDS


def _folder_job(folder: Path, out: Path, model: str, backend: str) -> dict[str, np.ndarray]:
    """Run ``edsr-lib upscale`` on a folder with one broken file: it fails alone, the others are written."""
    assert main(["upscale", str(folder), "-o", str(out), "--model", model, "--backend", backend, "--fp32"]) == 1
    return {p.name: read_image(p) for p in sorted(out.iterdir())}


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_folder_job_writes_the_torch_files(backend: str, tmp_path: Path) -> None:
    """``edsr-lib upscale --backend`` against the torch files: RGBA, gray and 16-bit PNGs, and a bad file."""
    torch.manual_seed(0)
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).save_pretrained(tmp_path / "m")
    photos = tmp_path / "photos"
    photos.mkdir()
    ramp = np.linspace(0, 1, 33 * 41).reshape(33, 41)
    rgba = np.stack([ramp, ramp[::-1], ramp[:, ::-1], 1 - ramp], -1)
    write_image(photos / "rgba.png", (rgba * 255).round().astype(np.uint8))
    write_image(photos / "gray.png", (ramp * 255).round().astype(np.uint8))
    write_image(photos / "deep.png", (ramp[::-1] * 65535).round().astype(np.uint16))  # 16-bit gray
    (photos / "broken.png").write_bytes(b"not a png")
    reference = _folder_job(photos, tmp_path / "torch", str(tmp_path / "m"), "torch")
    ours = _folder_job(photos, tmp_path / backend, str(tmp_path / "m"), backend)
    assert sorted(ours) == sorted(reference) == ["deep_x2.png", "gray_x2.png", "rgba_x2.png"]
    for name, image in ours.items():
        assert image.dtype == reference[name].dtype and image.shape == reference[name].shape
        worst, fraction = _differing_levels(image, reference[name])
        assert worst <= 1 and fraction <= 1e-3, (name, worst, fraction)


def test_a_job_with_a_runtime_that_is_missing_fails_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(backends.machine.importlib.util, "find_spec", lambda name: None)
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--backend", "openvino"]) == 2
    err = capsys.readouterr().err
    assert err.count("needs the openvino package") == 1 and not (tmp_path / "out" / "a_x2.png").exists()
