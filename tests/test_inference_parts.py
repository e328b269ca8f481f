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

    monkeypatch.setattr(inference, "torch_runner", nearest_runner)
    image = _pixels((40, 30, 4), dtype=np.uint16)
    out = upscale(model, image, tile=8, tile_overlap=0, batch_size=2)
    assert out.dtype == np.uint16 and out.shape == (80, 60, 4)
    assert len(windows) > 1 and all(w[0] <= 2 and w[1] == 3 for w in windows)
    np.testing.assert_array_equal(out[:, :, :3], image[:, :, :3].repeat(2, axis=0).repeat(2, axis=1))
    alpha = imresize(torch.from_numpy(image[:, :, 3].astype(np.float32) / 65535)[None, None], 2).clamp(0, 1)
    np.testing.assert_array_equal(out[:, :, 3], to_levels(alpha, 65535)[0, 0].numpy().astype(np.uint16))
