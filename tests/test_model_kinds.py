"""Any model, however it was made: built or loaded under inference mode or ``no_grad``, frozen, in half precision,
wrapped in ``DataParallel``, on the meta device, or upscaled from inside inference mode.

Each upscales to what the same weights give as a plain float32 model, or is refused in one line.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from runtimes import RUNTIMES, private_cache
from torch import nn

import edsr_lib
from edsr_lib import inference
from edsr_lib.inference import load_model

cache = pytest.fixture(scope="module", name="cache", autouse=True)(private_cache)

#: These checks compare with a float32 forward, so they ask for float32 whatever the default precision is.
upscale = functools.partial(inference.upscale, precision="fp32")

#: Every registered model, small: each architecture's code paths at a fraction of the cost.
SMALL = {"n_resblocks": 2, "n_feats": 8}


def _small(name: str) -> edsr_lib.SRModel:
    model = edsr_lib.create_model(name, **SMALL).eval()
    with torch.no_grad():  # signal-preserving weights: a stale or rounded copy shows, float rounding stays small
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
                module.bias.normal_(0.0, 0.5)
    return model


def _image(seed: int = 3) -> torch.Tensor:
    return torch.rand(1, 3, 11, 9, generator=torch.Generator().manual_seed(seed))


def _reference(model: edsr_lib.SRModel, x: torch.Tensor, scale: int) -> torch.Tensor:
    """The plain float32 forward of the same weights, built normally."""
    plain = copy.deepcopy(model).float() if not _is_inference(model) else _rebuilt(model)
    with torch.no_grad():
        return plain(x, scale=scale)


def _is_inference(model: nn.Module) -> bool:
    return any(p.is_inference() for p in model.parameters())


def _rebuilt(model: edsr_lib.SRModel) -> edsr_lib.SRModel:
    fresh = edsr_lib.create_model(model.variant, **SMALL).eval()
    fresh.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    assert not _is_inference(fresh)
    return fresh


@pytest.mark.parametrize("name", edsr_lib.list_models())
def test_every_model_built_under_inference_mode_upscales(name: str) -> None:
    with torch.inference_mode():
        model = _small(name)
    assert _is_inference(model)
    x = _image()
    for scale in model.scales:
        out = upscale(model, x, scale=scale)
        torch.testing.assert_close(out, _reference(model, x, scale), rtol=0, atol=1e-5)
        assert not out.is_inference()


@pytest.mark.parametrize("name", edsr_lib.list_models())
def test_every_model_upscales_from_inside_inference_mode(name: str) -> None:
    """As ComfyUI runs a node: the model made and the call made under inference mode (the result is then too)."""
    x = _image()
    with torch.inference_mode():
        model = _small(name)
        out = upscale(model, x, scale=model.scales[0])
        again = upscale(model, x, scale=model.scales[0])  # the cached copy
    expected = _reference(model, x, model.scales[0])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, out, rtol=0, atol=0)


def test_weights_loaded_under_inference_mode_upscale(tmp_path: Path) -> None:
    source = _small("edsr_baseline_x2")
    source.save_pretrained(tmp_path / "saved")
    with torch.inference_mode():
        model = load_model(tmp_path / "saved")
    x = _image()
    torch.testing.assert_close(upscale(model, x), _reference(source, x, 2), rtol=0, atol=1e-5)


def test_inference_weights_changed_in_place_are_seen() -> None:
    """Inference tensors keep no version counter: the cached copy must still follow an in-place change."""
    with torch.inference_mode():
        model = _small("edsr_baseline_x2")
    x = _image()
    first = upscale(model, x)
    with torch.inference_mode():
        model.tail.bias.add_(25.5)  # the tail works in [0, 255]: +0.1 on the output
    torch.testing.assert_close(upscale(model, x), first + 0.1, rtol=0, atol=1e-5)
    with torch.inference_mode():
        model.load_state_dict(_small("edsr_baseline_x2").state_dict())  # other random weights
    torch.testing.assert_close(upscale(model, x), _reference(model, x, 2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", edsr_lib.list_models())
def test_models_built_under_no_grad_or_frozen_upscale(name: str) -> None:
    with torch.no_grad():
        built = _small(name)
    frozen = _small(name).requires_grad_(False)
    x = _image()
    for model in (built, frozen):
        out = upscale(model, x, scale=model.scales[0])
        torch.testing.assert_close(out, _reference(model, x, model.scales[0]), rtol=0, atol=1e-5)
        assert all(not p.requires_grad for p in frozen.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", ["torch", *RUNTIMES])
def test_half_precision_models_upscale_like_their_float32_copy(backend: str, dtype: torch.dtype) -> None:
    """A model in fp16/bf16 runs its weights in float32 (fused in float32, exported in float32) and is not changed."""
    model = _small("edsr_baseline_x2").to(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _image()
    out = upscale(model, x, backend=backend)
    expected = upscale(copy.deepcopy(model).float(), x, backend=backend)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert out.dtype == torch.float32
    assert all(v.dtype == dtype and torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_wrapped_models_are_unwrapped() -> None:
    """``nn.DataParallel``, ``DistributedDataParallel``-like ``.module`` wrappers and ``torch.compile``."""

    class DistributedLike(nn.Module):  # as DistributedDataParallel keeps it, without a process group
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    model = _small("edsr_baseline_x3")
    x = _image()
    expected = _reference(model, x, 3)
    for wrapped in (nn.DataParallel(model), DistributedLike(model), DistributedLike(nn.DataParallel(model))):
        assert load_model(wrapped) is model
        torch.testing.assert_close(upscale(wrapped, x), expected, rtol=0, atol=1e-5)
    assert load_model(torch.compile(model)) is model


def test_other_modules_are_refused_in_one_line() -> None:
    with pytest.raises(TypeError, match=r"^expected an SRModel, a model name or a folder, got Sequential$"):
        upscale(nn.Sequential(_small("edsr_baseline_x2")), _image())


def test_a_model_on_the_meta_device_is_refused_in_one_line() -> None:
    with torch.device("meta"):
        model = edsr_lib.create_model("edsr_baseline_x2", **SMALL)
    for given in (model, nn.DataParallel(model)):
        with pytest.raises(ValueError, match=r"^the model's weights are on the meta device") as caught:
            upscale(given, _image())
        assert "\n" not in str(caught.value)


def test_a_device_that_is_not_here_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^device cuda was asked for, but CUDA is not available here") as caught:
        upscale(_small("edsr_baseline_x2"), _image(), device="cuda")
    assert "\n" not in str(caught.value)


@pytest.mark.gpu
@pytest.mark.parametrize("make", ["inference_mode", "fp16", "data_parallel"])
def test_models_on_the_gpu_upscale_a_cpu_image(make: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cpu = _small("edsr_baseline_x2")
    if make == "inference_mode":
        with torch.inference_mode():
            model = copy.deepcopy(cpu).cuda()
    elif make == "fp16":
        model = copy.deepcopy(cpu).cuda().half()
        cpu = copy.deepcopy(model).float().cpu()
    else:
        model = nn.DataParallel(copy.deepcopy(cpu).cuda())
    x = _image()
    out = upscale(model, x)
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, _reference(cpu, x, 2), rtol=0, atol=1e-3)  # TF32 on the GPU
