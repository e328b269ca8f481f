"""Every registered model, swept: forward at every scale, fusion, exact tiling, files and layouts.

The parameters are ``list_models()`` at collection, so a variant registered tomorrow is tested
without a line here; ``toy_family.py`` registers a third family (not built on EDSR's trunk)
for the sweep, which shows that a new family is one file. Large variants run at their full
size only on tiny inputs (built once per module); the file and tiling checks use the same
variant with one residual block, which keeps its scales, widths and every other setting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import toy_family

import edsr_lib
from edsr_lib import hub, memory
from edsr_lib.convert import WRITABLE_LAYOUTS, convert_state_dict, export_state_dict, get_layout
from edsr_lib.models import SRModel, TrunkModel
from edsr_lib.ops.tiling import tiled_apply

with toy_family.registered():
    SWEPT = edsr_lib.list_models()
assert toy_family.VARIANT in SWEPT


@pytest.fixture(scope="module", autouse=True)
def _toy_registered() -> Iterator[None]:
    with toy_family.registered():
        yield


def _seeded(model: SRModel, seed: int = 0) -> SRModel:
    """Weights like trained ones (the default init gives near-constant outputs that hide errors), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def full() -> Callable[[str], SRModel]:
    """The registered variant as it is, built once per module."""
    cache: dict[str, SRModel] = {}

    def get(name: str) -> SRModel:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = _seeded(edsr_lib.create_model(name))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def shallow() -> Callable[[str], SRModel]:
    """The registered variant with one residual block (where it has blocks), built once per module."""
    cache: dict[str, SRModel] = {}

    def get(name: str) -> SRModel:
        if name not in cache:
            try:
                model = edsr_lib.create_model(name, n_resblocks=1)
            except (TypeError, ValueError):  # a family without residual blocks to count
                model = edsr_lib.create_model(name)
            cache[name] = _seeded(model, seed=1)
        return cache[name]

    return get


def _image(h: int = 7, w: int = 5, seed: int = 2) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SWEPT)
def test_forward_at_every_scale(name: str, full: Callable[[str], SRModel]) -> None:
    model = full(name)
    assert isinstance(model, SRModel) and model.variant == name and model.scales
    x = _image()
    with torch.no_grad():
        for s in model.scales:
            y = model(x, scale=s)
            assert y.shape == (1, model.n_colors, 7 * s, 5 * s) and y.dtype == x.dtype
            assert torch.isfinite(y).all()
        with pytest.raises(ValueError, match=r"^scale 5 is not one of this model's scales"):
            model(x, scale=5)
    assert model.config["architecture"] == model.architecture
    assert edsr_lib.models.architectures()[model.architecture] is type(model)


@pytest.mark.parametrize("name", SWEPT)
def test_fuse_gives_the_same_output(name: str, full: Callable[[str], SRModel]) -> None:
    model = full(name)
    fused = copy.deepcopy(model)
    assert edsr_lib.fuse(fused) is fused and fused.fused and fused.fuse() is fused
    assert all(m.res_scale == 1.0 for m in fused.modules() if isinstance(m, edsr_lib.ResBlock))
    x = _image()
    with torch.no_grad():
        for s in model.scales:
            expected = model(x, scale=s)
            torch.testing.assert_close(fused(x, scale=s), expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())
    with pytest.raises(ValueError, match="fused"):
        fused.save_pretrained("unused")


@pytest.mark.parametrize("name", SWEPT)
def test_windows_overlapping_by_the_receptive_radius_stitch_exactly(
    name: str, shallow: Callable[[str], SRModel]
) -> None:
    model = shallow(name)
    for s in model.scales:
        radius = model.receptive_radius(s)
        x = _image(2 * radius + 11, 2 * radius + 8, seed=s)
        with torch.no_grad():
            expected = model(x, scale=s)
            tiled = tiled_apply(lambda t, s=s: model(t, scale=s), x, s, max(radius, 4), radius, batch_size=4)
        torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("name", SWEPT)
def test_memory_estimate(name: str, shallow: Callable[[str], SRModel]) -> None:
    model = shallow(name)
    for s in model.scales:
        assert model.feature_channels(s) > 0
        per_pixel = memory.activation_bytes_per_pixel(model, s)
        assert per_pixel >= 4 * model.feature_channels(s) * s * s  # at least the widest activation, in float32
        assert memory.activation_bytes_per_pixel(model, s, torch.bfloat16) < per_pixel
        assert memory.max_window_pixels(model, s, "cuda") > 0


@pytest.mark.parametrize("name", SWEPT)
def test_save_pretrained_and_from_pretrained_round_trip(
    name: str, shallow: Callable[[str], SRModel], tmp_path: Path
) -> None:
    model = shallow(name)
    model.save_pretrained(tmp_path / "folder", model_card=hub.model_card(model))
    card = (tmp_path / "folder" / "README.md").read_text()
    assert f"{type(model).__name__} ({model.summary()})" in card
    back = edsr_lib.from_pretrained(tmp_path / "folder")
    assert type(back) is type(model) and back.config == model.config
    assert back.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    x = _image()
    with torch.no_grad():
        for s in model.scales:
            assert torch.equal(back(x, scale=s), model(x, scale=s))


@pytest.mark.parametrize("layout", WRITABLE_LAYOUTS)
@pytest.mark.parametrize("name", SWEPT)
def test_export_to_each_writable_layout_and_back(name: str, layout: str, shallow: Callable[[str], SRModel]) -> None:
    model = shallow(name)
    config = model.config
    target = get_layout(layout)
    try:
        exported = export_state_dict(model, layout)
    except ValueError as err:  # refused: in one line that names the family or what the layout's code lacks
        message = str(err)
        assert "\n" not in message
        if not isinstance(model, TrunkModel):
            assert model.architecture in message
        else:
            assert target.title in message or layout in message
        pytest.skip(f"{layout} cannot hold {name}: {message}")
    assert isinstance(model, TrunkModel)
    overrides = {k: config[k] for k in ("res_scale", "rgb_range") if k in target.overrides}
    back = convert_state_dict(exported.state_dict, layout=layout, **overrides)
    assert {k: v for k, v in back.config.items() if k != "rgb_mean"} == {
        k: v for k, v in config.items() if k != "rgb_mean"
    }
    assert back.config["rgb_mean"] == pytest.approx(config["rgb_mean"], abs=1e-6)
    x = _image()
    with torch.no_grad():
        for s in model.scales:
            expected = model(x, scale=s)
            torch.testing.assert_close(back.eval()(x, scale=s), expected, rtol=1e-5, atol=1e-5)


def test_a_family_off_the_trunk_is_refused_by_the_library_layout_in_one_line() -> None:
    from edsr_lib.convert.library import library_names, library_numbers

    with pytest.raises(ValueError, match=r"^the 'toy' family \(ToySR\) is not built on EDSR's trunk"):
        library_names(toy_family.ARCHITECTURE)
    toy = edsr_lib.create_model(toy_family.VARIANT)
    assert library_numbers(toy.state_dict()) == []  # its keys are nobody's library layout
    assert toy.head_module is None and toy.tail_module is None
