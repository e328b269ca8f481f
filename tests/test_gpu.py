"""The CUDA paths, on a real GPU (every test is marked ``gpu``: skipped where there is no CUDA).

Tolerances against the CPU in float32: 2e-2 for float16 and for bfloat16 (largest absolute
difference, images in [0, 1]), with the shipped weights, whose fused tail is where float16
loses precision; float32 paths compare with TF32 off to 1e-4. bfloat16 keeps 8 bits of
mantissa: the same images and weights in bfloat16 on a CPU with native bf16 (oneDNN, fp32
accumulation as cuDNN's) stray at most 8.3e-3 (2 levels), so 2e-2 (5 levels) is 2.4 times that;
the former 5e-2 (13 levels) would have let a wrong rounding pass.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib._device import full_float32
from edsr_lib.cli import main
from edsr_lib.inference import auto_tile_size
from edsr_lib.io import read_image, write_image
from edsr_lib.train import CHECKPOINT_NAME, PatchSampler, TrainConfig, Trainer, make_lr_images

pytestmark = pytest.mark.gpu

HALF_TOLERANCE = {"fp16": 2e-2, "bf16": 2e-2}
TINY = {"n_resblocks": 2, "n_feats": 16}


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random picture (bilinear upsampling of noise), 1 x 3 x h x w in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 6 + 2, w // 6 + 2, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", **TINY).eval()


@pytest.fixture(scope="module")
def tiny_mdsr() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("mdsr_baseline", **TINY).eval()


# ------------------------------------------------------------------ inference
@pytest.mark.parametrize("name", ["edsr_baseline_x2", "mdsr_baseline"])
@pytest.mark.parametrize("half", ["fp16", "bf16"])
def test_half_precision_is_close_to_the_cpu_in_float32(name: str, half: str) -> None:
    model = edsr_lib.create_model(name, pretrained=True).eval()
    x = _image(64, 80)
    for scale in model.scales:
        reference = edsr_lib.upscale(model, x, scale, device="cpu")
        out = edsr_lib.upscale(model, x, scale, device="cuda", half=half)
        assert out.device.type == "cpu" and out.dtype == torch.float32
        error = (out - reference).abs().max().item()
        assert error < HALF_TOLERANCE[half], f"{name} x{scale} {half}: {error}"


def test_cuda_tensors_in_and_out(tiny: edsr_lib.SRModel) -> None:
    x = _image(30, 34)
    reference = edsr_lib.upscale(tiny, x, device="cpu")
    with full_float32():
        out = edsr_lib.upscale(tiny, x.cuda())  # the device follows the tensor's, or is the default: CUDA
    assert out.device.type == "cuda" and out.shape == reference.shape
    torch.testing.assert_close(out.cpu(), reference, rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images(tiny: edsr_lib.SRModel, dtype: type) -> None:
    top = np.iinfo(dtype).max
    image = (_image(20, 26)[0].permute(1, 2, 0).numpy() * top).round().astype(dtype)
    reference = edsr_lib.upscale(tiny, image, device="cpu")
    with full_float32():
        out = edsr_lib.upscale(tiny, image, device="cuda")
    assert out.dtype == dtype and out.shape == reference.shape
    assert np.abs(out.astype(np.int64) - reference.astype(np.int64)).max() <= 1  # rounding at a level's edge


def test_self_ensemble(tiny: edsr_lib.SRModel) -> None:
    x = _image(22, 18)
    reference = edsr_lib.upscale(tiny, x, self_ensemble=True, device="cpu")
    with full_float32():
        out = edsr_lib.upscale(tiny, x, self_ensemble=True, device="cuda")
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-4)


def test_mdsr_switches_scales_on_cuda(tiny_mdsr: edsr_lib.SRModel) -> None:
    x = _image(20, 24)
    with full_float32():
        for scale in (2, 4, 3, 2, 4):
            out = edsr_lib.upscale(tiny_mdsr, x, scale, device="cuda")
            assert out.shape[-2:] == (20 * scale, 24 * scale)
            torch.testing.assert_close(out, edsr_lib.upscale(tiny_mdsr, x, scale, device="cpu"), rtol=0, atol=1e-4)


def test_out_of_memory_halves_the_tile() -> None:
    """A real CUDA out-of-memory error: the process may use only a little more than it holds."""
    model = edsr_lib.create_model("edsr_baseline_x2").eval()
    x = _image(600, 600)
    with full_float32():
        reference = edsr_lib.upscale(model, x, tile=150, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(0).total_memory
        # one pass over 600x600 needs several GB of activations; 300 MB more than what is held is not enough
        fraction = (torch.cuda.memory_reserved() + 300 * 2**20) / total
        torch.cuda.set_per_process_memory_fraction(fraction)
        try:
            with pytest.warns(UserWarning, match="out of memory"):
                out = edsr_lib.upscale(model, x, tile=None, device="cuda")
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-4)


def test_auto_tile_follows_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2").eval()
    torch.cuda.empty_cache()  # what the caching allocator holds counts as free too
    roomy = auto_tile_size(model, device="cuda")
    _, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (64 * 2**20, total))
    tight = auto_tile_size(model, device="cuda")
    assert 16 <= tight < roomy, (tight, roomy)
    x = _image(200, 180)
    with full_float32(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small tile warns of its overlap cost
        tiled = edsr_lib.upscale(model, x, tile="auto", device="cuda")
        whole = edsr_lib.upscale(model, x, tile=None, device="cuda")
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-4)


def test_cli_on_cuda(tiny: edsr_lib.SRModel, tmp_path: Path) -> None:
    folder = tiny.save_pretrained(tmp_path / "tiny")
    image = (_image(24, 20)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    write_image(tmp_path / "in.png", image)
    for device in ("cuda", "cpu"):
        args = ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / device), "--model", str(folder)]
        assert main([*args, "--device", device]) == 0
    cuda, cpu = (read_image(tmp_path / d / "in_x2.png").astype(int) for d in ("cuda", "cpu"))
    assert np.abs(cuda - cpu).max() <= 1  # TF32 on CUDA: a level at most


def test_onnx_export_of_a_cuda_model_checks_in_full_float32(tiny: edsr_lib.SRModel, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from edsr_lib.export import export_onnx, max_onnx_error

    on_gpu = copy.deepcopy(tiny).cuda()
    path = export_onnx(on_gpu, tmp_path / "tiny.onnx")  # its own check: within 1e-4, which TF32 would miss
    assert max_onnx_error(path, on_gpu, 2) < 1e-4


# ------------------------------------------------------------------- training
def _sampler(device: str) -> PatchSampler:
    rng = np.random.default_rng(0)
    hr = [rng.integers(0, 256, size=(64, 72, 3), dtype=np.uint8) for _ in range(3)]
    return PatchSampler(hr, {2: make_lr_images(hr, 2)}, 12, device=device)


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "model": "edsr_baseline_x2",
        "model_kwargs": dict(TINY),
        "batch_size": 4,
        "lr_patch_size": 12,
        "steps": 6,
        "save_every": 3,
        "log_every": 3,
        "progress": False,
        "cache_dir": "",
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    return TrainConfig(**settings)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_in_half_precision_saves_and_resumes_on_cuda(tmp_path: Path, amp: str) -> None:
    cfg = _config(tmp_path, amp=amp, device="cuda")
    trainer = Trainer(cfg, sampler=_sampler("cuda"))
    assert trainer.amp == amp and (trainer.grad_scaler is not None) == (amp == "fp16")
    summary = trainer.train(until=3)
    assert np.isfinite(summary["loss"]) and trainer.step == 3
    state = torch.load(Path(cfg.output_dir) / CHECKPOINT_NAME, weights_only=True)
    assert state["rng"]["data_device"] == "cuda" and state["rng"]["cuda"] is not None
    if amp == "fp16":
        assert state["grad_scaler"]["scale"] > 0

    resumed = Trainer(cfg, sampler=_sampler("cuda"), resume=True)
    assert resumed.step == 3
    assert torch.equal(resumed.data_generator.get_state(), trainer.data_generator.get_state())
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert all(s["exp_avg"].is_cuda for s in resumed.optimizer.state.values())
    end = resumed.train()
    assert resumed.step == 6 and np.isfinite(end["loss"])
    assert (Path(cfg.output_dir) / "final" / "model.safetensors").is_file()


def test_a_cpu_run_resumes_on_cuda_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Trainer(_config(tmp_path, device="cpu", amp="none"), sampler=_sampler("cpu")).train(until=2)
    on_gpu = Trainer(_config(tmp_path, device="cuda", amp="bf16"), sampler=_sampler("cuda"), resume=True)
    assert "drew on cpu: the patch stream starts afresh" in capsys.readouterr().err
    on_gpu.train(until=4)
    assert next(on_gpu.model.parameters()).is_cuda and on_gpu.step == 4
    back = Trainer(_config(tmp_path, device="cpu", amp="none"), sampler=_sampler("cpu"), resume=True)
    assert "drew on cuda" in capsys.readouterr().err
    back.train()
    assert back.step == 6


def test_training_turns_cudnn_benchmark_on_for_its_fixed_shapes(tmp_path: Path) -> None:
    trainer = Trainer(_config(tmp_path, device="cuda", steps=2), sampler=_sampler("cuda"))
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda: seen.append(torch.backends.cudnn.benchmark) or step()
    before = torch.backends.cudnn.benchmark
    trainer.train()
    assert seen == [True, True] and torch.backends.cudnn.benchmark == before
