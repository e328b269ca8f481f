"""upscale() in parts: models loaded by name kept between calls, the scale checked once, the runner seam."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edsr_lib
from edsr_lib import inference
from edsr_lib.inference import upscale
from edsr_lib.ops import imresize, to_levels


def _pixels(shape: tuple[int, ...], seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    high = np.iinfo(dtype).max + 1
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int64).astype(dtype)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often weights are hashed, loaded into a model and fused."""
    seen = {"sha256": 0, "load_state_dict": 0, "fuse": 0}

    def counting(name: str, real):
        def wrapper(*args, **kwargs):
            seen[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(hashlib, "sha256", counting("sha256", hashlib.sha256))
    load = torch.nn.Module.load_state_dict
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", counting("load_state_dict", load))
    monkeypatch.setattr(edsr_lib.SRModel, "fuse", counting("fuse", edsr_lib.SRModel.fuse))
    monkeypatch.setattr(inference, "_models", type(inference._models)())  # start from an empty cache
    return seen


def test_a_model_by_name_is_loaded_hashed_and_fused_once(counts: dict[str, int]) -> None:
    image = _pixels((12, 10, 3))
    first = upscale("edsr_baseline_x2", image)
    assert counts == {"sha256": 1, "load_state_dict": 1, "fuse": 1}
    second = upscale("edsr_baseline_x2", image)
    np.testing.assert_array_equal(first, second)
    assert counts == {"sha256": 1, "load_state_dict": 1, "fuse": 1}
    # evaluate's loader and a tag naming the same weights share the entry; the public default gives a fresh model
    assert inference.load_model("edsr_baseline_x2", cache=True) is inference.load_model("edsr_baseline_x2", cache=True)
    assert inference.load_model("edsr_baseline_x2") is not inference.load_model("edsr_baseline_x2", cache=True)


def test_a_folder_is_kept_until_its_files_change(counts: dict[str, int], tmp_path: Path) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    model.save_pretrained(tmp_path / "m")
    image = _pixels((9, 9, 3))
    upscale(tmp_path / "m", image)
    upscale(str(tmp_path / "m"), image)
    assert counts["load_state_dict"] == 1 and counts["fuse"] == 1
    with torch.no_grad():
        model.tail.bias.add_(0.5)
    model.save_pretrained(tmp_path / "m")  # new weights in the same folder
    brighter = upscale(tmp_path / "m", image)
    assert counts["load_state_dict"] == 2 and counts["fuse"] == 2
    np.testing.assert_array_equal(brighter, upscale(model, image))


def test_the_scale_is_checked_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    model = edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8).eval()
    outside: list[str] = []
    real = edsr_lib.SRModel.resolve_scale

    def spy(self, scale):
        caller = sys._getframe(1).f_globals["__name__"]
        if not caller.startswith("edsr_lib.models"):  # a model's own methods check what they are given
            outside.append(caller)
        return real(self, scale)

    monkeypatch.setattr(edsr_lib.SRModel, "resolve_scale", spy)
    image = _pixels((20, 17, 3))
    for kwargs in ({}, {"tile": None}, {"tile": 8}, {"self_ensemble": True}, {"half": False, "batch_size": 1}):
        outside.clear()
        upscale(model, image, 3, **kwargs)
        assert len(outside) == 1, (kwargs, outside)
    outside.clear()
    upscale(model, image, outscale=5)  # two passes, scales planned from model.scales
    assert outside == []


def test_another_runner_plugs_in_with_tiling_alpha_and_16_bits_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam a backend replaces: tiling, 16-bit levels and the alpha channel stay upscale's."""
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    windows: list[tuple[int, ...]] = []

    def nearest_runner(model, scale, **kwargs):
        def run(batch: torch.Tensor) -> torch.Tensor:
            windows.append(tuple(batch.shape))
            return F.interpolate(batch.float(), scale_factor=scale, mode="nearest")

        return run

    monkeypatch.setattr(edsr_lib.backends.pytorch, "torch_runner", nearest_runner)
    image = _pixels((40, 30, 4), dtype=np.uint16)
    out = upscale(model, image, tile=8, tile_overlap=0, batch_size=2)
    assert out.dtype == np.uint16 and out.shape == (80, 60, 4)
    assert len(windows) > 1 and all(w[0] <= 2 and w[1] == 3 for w in windows)
    np.testing.assert_array_equal(out[:, :, :3], image[:, :, :3].repeat(2, axis=0).repeat(2, axis=1))
    alpha = imresize(torch.from_numpy(image[:, :, 3].astype(np.float32) / 65535)[None, None], 2).clamp(0, 1)
    np.testing.assert_array_equal(out[:, :, 3], to_levels(alpha, 65535)[0, 0].numpy().astype(np.uint16))


# ------------------------------------------------------------------ the device, CUDA and half precision
class _Chosen(Exception):
    """Raised by a runner that only records where it was asked to run."""


def test_a_model_by_name_runs_on_the_accelerator(
    fake_cuda: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    devices: list[torch.device] = []

    def recording_runner(model, scale, *, device, **kwargs):
        devices.append(device)
        raise _Chosen

    monkeypatch.setattr(edsr_lib.backends.pytorch, "torch_runner", recording_runner)
    image = _pixels((12, 12, 3))
    with pytest.raises(_Chosen):
        upscale("edsr_baseline_x2", image, tile=None)
    assert devices[-1].type == "cuda"
    with pytest.raises(_Chosen):  # a model object stays where its weights are
        upscale(inference.load_model("edsr_baseline_x2"), image, tile=None)
    assert devices[-1].type == "cpu"
    (tmp_path / "set" / "HR").mkdir(parents=True)
    edsr_lib.io.write_image(tmp_path / "set" / "HR" / "a.png", _pixels((40, 40, 3)))
    with pytest.raises(_Chosen):
        edsr_lib.evaluate("edsr_baseline_x2", tmp_path / "set", 2, tile=None)
    assert devices[-1].type == "cuda"


def test_cuda_windows_stay_below_2_31_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    from edsr_lib import memory

    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 140 << 30)  # an H200
    cuda = torch.device("cuda", 0)
    binding = 0
    for name in edsr_lib.list_models():
        with torch.device("meta"):
            model = edsr_lib.create_model(name)
        n_feats = model.config["n_feats"]
        for scale in model.scales:
            overlap = model.receptive_radius(scale)
            tile, batch = memory.plan_tiles(
                model, scale, 20000, 20000, device=cuda, dtype=torch.float16, overlap=overlap, batch_size=64
            )
            window = [min(20000, t + 2 * overlap) for t in tile]
            widest = batch * window[0] * window[1] * scale * scale * n_feats
            assert widest < 2**31, (name, scale, tile, batch)
            square = memory.auto_tile_size(model, scale, device=cuda)
            assert (square + 2 * overlap) ** 2 * scale * scale * n_feats < 2**31
            cpu_tile = memory.auto_tile_size(model, scale, device="cpu", budget=70 << 30)
            binding += cpu_tile > square  # the cap, not the budget, set the CUDA tile
    assert binding  # the rule is seen at work for the large models


def test_fp16_keeps_the_fused_tail_in_float32() -> None:
    """The fused tail's weights carry 1/255: 39% of them are below float16's smallest normal number."""
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True).eval()
    cpu = torch.device("cpu")
    fast = edsr_lib.backends.pytorch.fast_model(model, cpu, False, False, torch.float32, torch.float16)
    exact = edsr_lib.backends.pytorch.fast_model(model, cpu, False, False)
    assert (exact.tail.weight.abs() < 2**-14).float().mean() > 0.3
    features = torch.rand(1, model.config["n_feats"], 6, 6, generator=torch.Generator().manual_seed(1)).half()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        out = fast.tail(features)
    assert out.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(out, exact.tail(features.float()), rtol=0, atol=1e-6)
    # the rest of the network does run in float16
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        assert fast.upsampler(features.float()).dtype == torch.float16


def test_integer_outputs_need_no_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """MPS has no float64: rounding to 8 or 16-bit levels stays in float32."""
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    images = [_pixels((10, 9, 3)), _pixels((10, 9, 3), dtype=np.uint16), _pixels((10, 9, 1))]
    expected = [upscale(model, image) for image in images]
    real_to = torch.Tensor.to

    def no_float64(self, *args, **kwargs):
        if torch.float64 in args or kwargs.get("dtype") == torch.float64:
            raise AssertionError("float64 on the device")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", no_float64)
    monkeypatch.setattr(torch.Tensor, "double", lambda self: pytest.fail("float64 on the device"))
    for image, before in zip(images, expected, strict=True):
        np.testing.assert_array_equal(upscale(model, image), before)
