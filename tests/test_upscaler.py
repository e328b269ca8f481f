"""The Upscaler: options checked and resolved once, every image type, the caller's model untouched, exact wrap."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import edsr_lib
from edsr_lib import UpscaleOptions, Upscaler, backends, inference
from edsr_lib.io import Image16, image_to_array

#: Largest difference between two fp32 runs of one backend that compute the same pixels at different
#: window positions: convolution kernels may sum in another order there (a few float32 ulps on [0, 1]).
FP32_ROUNDING = 4e-7


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()


def _one_line_value_error(make) -> str:
    with pytest.raises(ValueError) as err:
        make()
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("tile", 0, "tile must be a positive number"),
        ("tile", "big", "tile must be a positive number"),
        ("tile_overlap", -1, "tile_overlap must be a non-negative"),
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("batch_size", True, "batch_size must be a positive integer"),
        ("backend", "tensorrt", "backend must be one of torch, openvino, onnxruntime, auto"),
        ("precision", "fp8", "precision must be one of fp32, bf16, fp16, int8"),
        ("outscale", 0.5, "outscale must be above 1"),
        ("outscale", float("nan"), "outscale must be a real number above 1"),
        ("scale", 0, "scale must be a positive integer"),
        ("wrap", "yes", "wrap must be True or False"),
        ("self_ensemble", 1, "self_ensemble must be True or False"),
        ("device", 3, "device must be a torch device"),
        ("progress", "yes", "progress must be True, False or a function"),
    ],
)
def test_a_bad_option_fails_when_the_options_are_made_in_one_line(
    tiny: edsr_lib.SRModel, option: str, value: object, message: str
) -> None:
    assert message in _one_line_value_error(lambda: UpscaleOptions(**{option: value}))
    assert message in _one_line_value_error(lambda: Upscaler(tiny, **{option: value}))


def test_what_needs_the_model_or_the_machine_fails_when_the_upscaler_is_made(tiny: edsr_lib.SRModel) -> None:
    assert "scale 3 is not" in _one_line_value_error(lambda: Upscaler(tiny, scale=3))
    assert "give scale or outscale" in _one_line_value_error(lambda: Upscaler(tiny, scale=2, outscale=3))
    message = _one_line_value_error(lambda: Upscaler(tiny, device="cuda:99"))
    assert "not available here" in message or "does not exist" in message
    assert "compile=True" in _one_line_value_error(lambda: Upscaler(tiny, backend="onnxruntime", compile=True))
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiles'"):
        Upscaler(tiny, tiles=4)
    with pytest.raises(TypeError, match="options must be an UpscaleOptions"):
        Upscaler(tiny, {"tile": 4})


def test_options_are_one_typed_object(tiny: edsr_lib.SRModel) -> None:
    options = UpscaleOptions(tile=None, self_ensemble=True)
    up = Upscaler(tiny, options)
    assert up.options is options
    changed = Upscaler(tiny, options, tile=8)
    assert changed.options.tile == 8 and changed.options.self_ensemble and options.tile is None
    with pytest.raises(AttributeError):
        options.tile = 4  # frozen
    assert inference.UpscaleOptions is UpscaleOptions and edsr_lib.UpscaleOptions is UpscaleOptions


def test_resolution_happens_once_for_many_images(tiny: edsr_lib.SRModel, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"resolve": 0, "make_runner": 0, "resolve_device": 0, "resolve_half": 0}

    def counting(name, real):
        def spy(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return spy

    monkeypatch.setattr(backends, "resolve", counting("resolve", backends.resolve))
    monkeypatch.setattr(backends, "make_runner", counting("make_runner", backends.make_runner))
    monkeypatch.setattr(inference, "resolve_device", counting("resolve_device", inference.resolve_device))
    monkeypatch.setattr(inference, "resolve_half", counting("resolve_half", inference.resolve_half))
    up = Upscaler(tiny, tile=4)
    images = [torch.rand(1, 3, 9, 7), np.zeros((5, 6, 3), np.uint8), Image.new("RGB", (4, 4)), torch.rand(3, 8, 8)]
    for image in images * 3:
        up(image)
    assert calls == {"resolve": 1, "make_runner": 1, "resolve_device": 1, "resolve_half": 1}
    outscaled = Upscaler(tiny, outscale=5)  # passes (2, 2, 2): one runner per distinct scale
    assert outscaled.passes == (2, 2, 2) and calls["make_runner"] == 2


def test_every_image_type_upscales_as_upscale_does(tiny: edsr_lib.SRModel) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    images = [
        torch.rand(3, 9, 7),
        torch.rand(2, 3, 9, 7),
        rgb,
        rgb[:, :, 0],
        rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16),
        np.stack([rgb, rgb]),
        Image.fromarray(rgb),
        Image.fromarray(rgba),
        Image.fromarray(rgb[:, :, 0]),
        Image16(rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16)),
        [Image.fromarray(rgb), Image.fromarray(rgb[::-1].copy())],
    ]
    up = Upscaler(tiny, tile=4, precision="fp32", backend="torch")  # upscale's exact defaults
    for image in images:
        got, expected = up(image), edsr_lib.upscale(tiny, image, tile=4)
        assert type(got) is type(expected)
        pairs = zip(got, expected, strict=True) if isinstance(got, list) else [(got, expected)]
        for a, b in pairs:
            if isinstance(a, torch.Tensor):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
            else:
                np.testing.assert_array_equal(*(x if isinstance(x, np.ndarray) else image_to_array(x) for x in (a, b)))
    for bad in ("photo.png", [torch.rand(3, 4, 4)], 3):
        with pytest.raises(TypeError, match=r"expected a float torch\.Tensor") as err:
            up(bad)
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------ the caller's model
def _state(model: torch.nn.Module) -> dict[str, object]:
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "devices": {p.device for p in model.parameters()},
        "dtypes": {p.dtype for p in model.parameters()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "modules": [type(m).__name__ for m in model.modules()],
    }


def _paths() -> list[dict[str, object]]:
    paths: list[dict[str, object]] = [
        {},
        {"channels_last": False, "tile": 5},
        {"self_ensemble": True},
        {"outscale": 3},
        {"wrap": True},
        {"backend": "auto"},
    ]
    paths += [{"backend": name} for name in backends.installed_runtimes()]
    if inference.cpu_has_native_bf16():
        paths.append({"precision": "bf16"})
        paths += [{"backend": "openvino", "precision": "bf16"}] if "openvino" in backends.installed_runtimes() else []
    return paths


def test_the_callers_model_is_never_moved_or_modified(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path))
    torch.manual_seed(1)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)  # training mode, gradients on
    before = _state(model)
    x = torch.rand(1, 3, 12, 10)
    for options in _paths():
        out = Upscaler(model, **options)(x)
        assert out.shape[-2:] == ((36, 30) if "outscale" in options else (24, 20)), options
        after = _state(model)
        for key in ("devices", "dtypes", "training", "requires_grad", "grads", "modules"):
            assert after[key] == before[key], (options, key)
        for name, tensor in before["tensors"].items():
            assert torch.equal(after["tensors"][name], tensor), (options, name)


# ------------------------------------------------------------------ wrap=True
def _tiled_3x3(x: torch.Tensor) -> torch.Tensor:
    return x.repeat(1, 1, 3, 3)


@pytest.mark.filterwarnings("ignore:tile .* is smaller than the overlap")
@pytest.mark.parametrize("name", edsr_lib.list_models())
def test_wrap_equals_the_middle_of_the_image_tiled_3x3(name: str) -> None:
    """A periodic input's output is the middle of the output of the image tiled 3 x 3, on every model and scale.

    To fp32 rounding (:data:`FP32_ROUNDING`) on the same backend: the same pixels are computed
    at other window positions, where a convolution may sum in another order. One pass and
    tiles alike (the tiles are smaller than the image).
    """
    torch.manual_seed(0)
    model = edsr_lib.create_model(name, n_resblocks=2, n_feats=8).eval()
    for scale in model.scales:
        # larger than the receptive radius, so that the 3 x 3 tiling gives the middle copy all its context
        height, width = model.receptive_radius(scale) + 5, model.receptive_radius(scale) + 3
        x = torch.rand(1, 3, height, width)
        expected = Upscaler(model, scale=scale, precision="fp32", tile=None)(_tiled_3x3(x))
        expected = expected[..., scale * height : 2 * scale * height, scale * width : 2 * scale * width]
        for tile in (None, height // 2):
            got = Upscaler(model, scale=scale, precision="fp32", tile=tile, wrap=True)(x)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=0, atol=FP32_ROUNDING)
        # and without wrap, the borders differ: the test can fail
        assert (Upscaler(model, scale=scale, precision="fp32", tile=None)(x) - expected).abs().max() > 1e-3


def test_wrap_takes_arrays_alpha_small_textures_and_pil(tiny: edsr_lib.SRModel) -> None:
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)  # smaller than the receptive radius: wrapped often
    tiled = np.tile(texture, (5, 5, 1))  # 5 x 5: the middle copy has all its context
    expected = edsr_lib.upscale(tiny, tiled, tile=None)[16:24, 20:30]
    got = Upscaler(tiny, precision="fp32", wrap=True, tile=None)(texture)
    assert got.shape == (8, 10, 4) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # rounding to levels of fp32-equal values
    pil = Upscaler(tiny, precision="fp32", wrap=True)(Image.fromarray(texture))
    np.testing.assert_array_equal(np.asarray(pil), got)


def test_wrap_refuses_an_outscale_that_needs_a_bicubic_shrink(tiny: edsr_lib.SRModel) -> None:
    assert "wrap=True needs an outscale" in _one_line_value_error(lambda: Upscaler(tiny, wrap=True, outscale=3))
    assert Upscaler(tiny, wrap=True, outscale=4).passes == (2, 2)


def _model_of_kind(kind: str) -> tuple[nn.Module, edsr_lib.SRModel]:
    """A model made one way, and a plain float32 model with the same weights for the expected result."""
    make = lambda: edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()  # noqa: E731
    if kind == "inference_mode":
        with torch.inference_mode():
            model = make()
        plain = make()
        plain.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
        return model, plain
    if kind == "no_grad":
        with torch.no_grad():
            model = make()
    elif kind == "frozen":
        model = make().requires_grad_(False)
    elif kind in ("fp16", "bf16"):
        model = make().to(torch.float16 if kind == "fp16" else torch.bfloat16)
    elif kind == "data_parallel":
        inner = make()
        return nn.DataParallel(inner), copy.deepcopy(inner)
    return model, copy.deepcopy(model).float()


@pytest.mark.parametrize("kind", ["inference_mode", "no_grad", "frozen", "fp16", "bf16", "data_parallel"])
def test_an_upscaler_takes_any_model_and_runs_inside_inference_mode(kind: str) -> None:
    """Made once from a model made any way; called outside and inside inference mode (as ComfyUI runs nodes)."""
    model, plain = _model_of_kind(kind)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = plain(x)
    up = Upscaler(model, tile=5, precision="fp32")
    torch.testing.assert_close(up(x), expected, rtol=0, atol=1e-5)
    with torch.inference_mode():
        inside = Upscaler(model, tile=5, precision="fp32")(x)
        torch.testing.assert_close(up(x), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(inside, expected, rtol=0, atol=1e-5)


def test_an_upscaler_refuses_a_model_on_the_meta_device_in_one_line() -> None:
    with torch.device("meta"):
        model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    assert _one_line_value_error(lambda: Upscaler(model)).startswith("the model's weights are on the meta device")


def test_an_upscalers_progress_function_hears_each_pass(tiny: edsr_lib.SRModel) -> None:
    calls: list[tuple[int, int]] = []
    up = Upscaler(tiny, outscale=4, tile=6, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    up(torch.rand(1, 3, 30, 30, generator=torch.Generator().manual_seed(5)))
    starts = [i for i, (done, _) in enumerate(calls) if done == 0]
    assert len(starts) == 2  # x2 twice: each pass reports from 0 to its own total
    for first, stop in zip(starts, [*starts[1:], len(calls)], strict=True):
        total = calls[first][1]
        assert total > 3 and [d for d, _ in calls[first:stop]] == [0] + [min(d, total) for d in range(3, total + 3, 3)]
        assert {t for _, t in calls[first:stop]} == {total}


@pytest.mark.parametrize("backend", ["torch", *backends.installed_runtimes()])
def test_an_upscaler_runs_the_weights_it_was_made_with(backend: str) -> None:
    torch.manual_seed(3)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()
    up = Upscaler(model, backend=backend, precision="fp32", tile=None)
    x = torch.rand(1, 3, 10, 12)
    before = up(x)
    with torch.no_grad():
        model.tail.bias.add_(64.0)  # in place, after the Upscaler was made (a quarter of the range)
    assert torch.equal(up(x), before)
    after = Upscaler(model, backend=backend, precision="fp32", tile=None)(x)
    assert (after - before).abs().max() > 0.2
