"""EDSR and MDSR: sizes, shapes, scales, input checks, fusion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edsr_lib
from edsr_lib import EDSR, MDSR

#: SPEC's table, to the unit (the fixed mean shifts hold no parameters).
PARAMETERS = {
    "edsr_baseline_x2": 1_369_859,
    "edsr_baseline_x3": 1_554_499,
    "edsr_baseline_x4": 1_517_571,
    "edsr_x2": 40_729_603,
    "edsr_x3": 43_680_003,
    "edsr_x4": 43_089_923,
    "mdsr_baseline": 3_227_203,
    "mdsr": 7_953_987,
}


@pytest.mark.parametrize(("name", "count"), PARAMETERS.items())
def test_parameter_counts(name: str, count: int) -> None:
    model = edsr_lib.create_model(name)
    assert model.num_parameters() == count
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize("name", ["edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4", "edsr_x2", "edsr_x3"])
def test_edsr_output_shape(name: str) -> None:
    model = edsr_lib.create_model(name).eval()
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        y = model(x)
    s = model.scale
    assert y.shape == (2, 3, 6 * s, 5 * s) and y.dtype == torch.float32
    assert model.scales == (s,)
    with torch.no_grad():
        torch.testing.assert_close(model(x, scale=s), y)


@pytest.mark.parametrize("name", ["mdsr_baseline", "mdsr"])
def test_mdsr_every_scale(name: str) -> None:
    model = edsr_lib.create_model(name).eval()
    assert model.scales == (2, 3, 4)
    x = torch.rand(1, 3, 5, 4)
    for s in model.scales:
        with torch.no_grad():
            assert model(x, scale=s).shape == (1, 3, 5 * s, 4 * s)
    with pytest.raises(ValueError, match=r"scale 5 is not one of this model's scales \(2, 3, 4\)"):
        model(x, scale=5)
    with pytest.raises(ValueError, match="pass scale="):
        model(x)


def test_mdsr_runs_and_trains_only_the_chosen_branches() -> None:
    model = MDSR(n_resblocks=1, n_feats=8)
    calls: list[str] = []
    for key in ("x2", "x3", "x4"):
        model.pre_process[key].register_forward_hook(lambda *_, k=key: calls.append(f"pre {k}"))
        model.upsample[key].register_forward_hook(lambda *_, k=key: calls.append(f"up {k}"))
    model(torch.rand(1, 3, 6, 6), scale=3).abs().mean().backward()
    assert calls == ["pre x3", "up x3"]
    for key in ("x2", "x4"):
        assert all(p.grad is None for p in model.pre_process[key].parameters())
        assert all(p.grad is None for p in model.upsample[key].parameters())
    assert all(p.grad is not None for p in model.upsample["x3"].parameters())


def test_mdsr_branches_are_keyed_by_scale_value() -> None:
    model = MDSR(scales=(4, 2), n_resblocks=1, n_feats=8).eval()
    assert set(model.upsample) == {"x4", "x2"}
    assert model(torch.rand(1, 3, 4, 4), scale=4).shape[-1] == 16


def test_edsr_refuses_other_scale() -> None:
    model = EDSR(scale=2, n_resblocks=1, n_feats=8)
    with pytest.raises(ValueError, match=r"scale 3 is not one of this model's scales \(2,\)"):
        model(torch.rand(1, 3, 4, 4), scale=3)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(3, 4, 4), ValueError, "4-D NCHW"),
        (torch.rand(1, 1, 4, 4), ValueError, "expected 3 colour channels"),
        (torch.rand(1, 4, 4, 4), ValueError, "expected 3 colour channels"),
        (torch.randint(0, 255, (1, 3, 4, 4), dtype=torch.uint8), TypeError, "floating-point"),
        (torch.rand(1, 3, 0, 4), ValueError, "empty"),
        ("image.png", TypeError, "torch.Tensor"),
    ],
)
def test_input_checks(x: object, error: type[Exception], match: str) -> None:
    model = EDSR(n_resblocks=1, n_feats=8)
    with pytest.raises(error, match=match):
        model(x)


@pytest.mark.parametrize("name", sorted({edsr_lib.get_pretrained_cfg(n).architecture for n in edsr_lib.list_models()}))
def test_the_value_range_is_checked_as_upscale_checks_it(name: str) -> None:
    model = edsr_lib.create_model(name, n_resblocks=1, n_feats=8).eval()
    x = torch.rand(1, 3, 6, 5)
    scale = model.scales[-1]
    model(x, scale)
    model(x * 1.5 - 0.25, scale)  # a model's output overshoots [0, 1] a little and may be fed back
    with pytest.raises(
        ValueError, match=r"the input has values in \[.*\]; expected \[0, 1\] \(divide 0..255 data by 255\)"
    ):
        model(x * 255, scale)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(torch.full_like(x, float("nan")), scale)
    with pytest.raises(ValueError, match=r"has values in \[.*\]; expected \[0, 1\] \(divide 0..255 data by 255\)"):
        edsr_lib.upscale(model, x * 255, scale)  # the same rule as upscale's


@pytest.mark.parametrize("name", ["edsr_x2", "edsr_baseline_x3", "mdsr_baseline"])
def test_fuse_matches_unfused(name: str) -> None:
    model = edsr_lib.create_model(name).eval()
    # trained-like weights: the default init gives near-constant outputs that would hide errors
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    x = torch.rand(1, 3, 9, 7)
    scales = model.scales
    with torch.no_grad():
        before = [model(x, scale=s) for s in scales]
        assert edsr_lib.fuse(model) is model and model.fused
        assert all(m.res_scale == 1.0 for m in model.modules() if isinstance(m, edsr_lib.ResBlock))
        assert isinstance(model.add_mean, nn.Identity)
        for s, y in zip(scales, before, strict=True):
            assert (model(x, scale=s) - y).abs().max().item() <= 1e-5
    assert model.fuse() is model  # idempotent


def test_config_rebuilds_the_same_architecture() -> None:
    model = edsr_lib.create_model("mdsr_baseline")
    config = model.config
    assert config["architecture"] == "mdsr" and config["scales"] == [2, 3, 4]
    rebuilt = MDSR(**{k: v for k, v in config.items() if k != "architecture"})
    assert rebuilt.load_state_dict(model.state_dict()) is not None
    config["n_feats"] = 1  # a copy: the model's own config is unchanged
    assert model.config["n_feats"] == 64


@pytest.mark.parametrize(
    ("name", "scale", "radius"),
    [("edsr_baseline_x2", 2, 36), ("edsr_baseline_x4", 4, 36), ("edsr_x3", 3, 68), ("mdsr_baseline", 3, 44)],
)
def test_receptive_radius(name: str, scale: int, radius: int) -> None:
    # head 1 + 2 per block + body conv 1 (+ 8 for MDSR's two 5x5 blocks) + upsampler and tail (< 2)
    assert edsr_lib.create_model(name).receptive_radius(scale) == radius


def test_receptive_radius_is_a_real_bound() -> None:
    """Perturbing one input pixel changes no output pixel farther than the radius."""
    model = EDSR(scale=2, n_resblocks=2, n_feats=8).eval()
    r = model.receptive_radius()
    x = torch.rand(1, 3, 31, 31)
    x2 = x.clone()
    x2[..., 15, 15] += 1
    with torch.no_grad():
        diff = (model(x) - model(x2)).abs().sum(1)[0]
    rows = diff.sum(1).nonzero().flatten()
    lo, hi = rows.min().item() / 2, (rows.max().item() + 1) / 2
    assert 15 - r <= lo and hi <= 16 + r
    assert lo <= 15 - (r - 1)  # and tight to within a pixel


def test_config_is_the_constructor_arguments_in_json_types() -> None:
    model = EDSR(scale=3, n_resblocks=2, n_feats=8, res_scale=1, rgb_range=1, rgb_mean=(0.5, 0.5, 0.5))
    assert model.config == {
        "architecture": "edsr",
        "scale": 3,
        "n_resblocks": 2,
        "n_feats": 8,
        "res_scale": 1.0,
        "rgb_range": 1.0,
        "rgb_mean": [0.5, 0.5, 0.5],
        "n_colors": 3,
        "kernel_size": 3,
        "block": "resblock",
        "upsampler": "upsampler",
    }
    assert isinstance(model.config["res_scale"], float) and isinstance(model.config["rgb_mean"], list)
    assert MDSR(scales=(4, 2), n_resblocks=1, n_feats=8).config["scales"] == [4, 2]

    class Narrow(EDSR):  # a subclass keeps its own arguments, not its parent's
        def __init__(self, width: int = 8) -> None:
            super().__init__(scale=2, n_resblocks=1, n_feats=width)

    assert Narrow(width=4).config == {"architecture": "edsr", "width": 4}

    class Loose(EDSR):  # an annotation that cannot be resolved keeps the value as given
        def __init__(self, width: Missing = 8) -> None:  # noqa: F821
            super().__init__(scale=2, n_resblocks=1, n_feats=width)

    assert Loose(width=4).config == {"architecture": "edsr", "width": 4}


def test_models_declare_their_layout_and_names() -> None:
    mdsr = MDSR(n_resblocks=1, n_feats=8)
    assert (MDSR.upsampler_module, MDSR.scale_branch_modules) == ("upsample", ("pre_process", "upsample"))
    assert {name: sorted(per) for name, per in mdsr.scale_branches().items()} == {
        "pre_process": [2, 3, 4],
        "upsample": [2, 3, 4],
    }
    assert mdsr.scale_branches()["upsample"][3] is mdsr.upsample["x3"]
    edsr = EDSR(n_resblocks=1, n_feats=8)
    assert isinstance(edsr.get_submodule(EDSR.upsampler_module), nn.Module) and edsr.scale_branches() == {}
    assert isinstance(edsr.get_submodule(EDSR.body_module), nn.Sequential)
    assert (edsr.variant, edsr.pretrained_cfg, edsr.fused) == (None, None, False)
    assert edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1).variant == "edsr_baseline_x2"
