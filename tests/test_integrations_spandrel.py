"""spandrel support: after install(), the real spandrel's ModelLoader loads EDSR/MDSR files in every layout.

Each file is written the way its source writes it (torchSR's files by the real torchsr
package, EDSR-PyTorch's and BasicSR's by the by-hand layouts of convert_reference, edsr-lib's by
save_pretrained), loaded through ``spandrel.ModelLoader().load_from_file``, and the
descriptor's output is compared with the source model's own forward pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

spandrel = pytest.importorskip("spandrel", reason="the spandrel extra is not installed: pip install -e '.[spandrel]'")

from convert_reference import (  # noqa: E402
    reference_basicsr,
    reference_edsr_pytorch,
    reference_mdsr,
    to_basicsr,
    to_edsr_pytorch,
    to_edsr_pytorch_mdsr,
)

import edsr_lib  # noqa: E402
from edsr_lib import EDSR, MDSR  # noqa: E402
from edsr_lib.integrations import spandrel as edsr_spandrel  # noqa: E402

TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _installed() -> None:
    edsr_spandrel.install()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(1, 3, 13, 11)


def _load(path: Path) -> spandrel.ImageModelDescriptor:
    descriptor = spandrel.ModelLoader().load_from_file(path)
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    return descriptor


def _close(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max abs difference, on [0, 1] (spandrel clamps its output)."""
    assert got.shape == want.shape
    diff = (got - want.clamp(0, 1)).abs().max().item()
    assert diff <= TOLERANCE, diff
    return diff


def _check_descriptor(d: spandrel.ImageModelDescriptor, arch: str, scale: int, tags: list[str]) -> None:
    assert d.architecture.name == arch
    assert (d.purpose, d.scale, d.input_channels, d.output_channels) == ("SR", scale, 3, 3)
    assert d.supports_half and d.supports_bfloat16
    assert d.tiling == spandrel.ModelTiling.SUPPORTED
    assert d.size_requirements.none  # any size: no padding added
    assert all(t in d.tags for t in tags), d.tags


# ------------------------------------------------------------------ the four layouts
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_edsr_pytorch_files(scale: int, tmp_path: Path, x: torch.Tensor) -> None:
    original = edsr_lib.create_model(f"edsr_baseline_x{scale}").eval()
    sd = to_edsr_pytorch(original)
    torch.save(sd, tmp_path / f"edsr_baseline_x{scale}.pt")
    d = _load(tmp_path / f"edsr_baseline_x{scale}.pt")
    _check_descriptor(d, "EDSR", scale, ["16nb", "64nf", "edsr-pytorch", f"x{scale}"])
    assert isinstance(d.model, EDSR)
    y = d(x)
    _close(y, reference_edsr_pytorch(sd, x * 255, scale) / 255)
    with torch.no_grad():
        _close(y, original(x))


def test_official_mdsr_file_is_its_largest_scale_and_at_scale_gives_the_others(tmp_path: Path, x: torch.Tensor) -> None:
    original = edsr_lib.create_model("mdsr_baseline").eval()
    order = (2, 3, 4)
    sd = to_edsr_pytorch_mdsr(original, order)
    torch.save(sd, tmp_path / "mdsr_baseline.pt")
    d = _load(tmp_path / "mdsr_baseline.pt")
    _check_descriptor(d, "MDSR", 4, ["16nb", "64nf", "edsr-pytorch", "x4"])
    assert isinstance(d.model, MDSR)
    for scale in (2, 3, 4):
        ds = edsr_spandrel.at_scale(d, scale)
        assert ds.model is d.model and ds.scale == scale and f"x{scale}" in ds.tags
        assert [t for t in ds.tags if t.startswith("x")] == [f"x{scale}"]
        y = ds(x)
        _close(y, reference_mdsr(sd, x * 255, order.index(scale), scale) / 255)
        with torch.no_grad():
            _close(y, original(x, scale=scale))
    with pytest.raises(ValueError, match="scale 8 is not one of"):
        edsr_spandrel.at_scale(d, 8)


@pytest.mark.parametrize("scale", [2, 4])
def test_torchsr_files(scale: int, tmp_path: Path, x: torch.Tensor) -> None:
    torchsr_edsr = pytest.importorskip("torchsr.models.edsr")
    net = torchsr_edsr.EDSR(n_resblocks=4, n_feats=16, scale=scale, res_scale=1.0).eval()
    torch.save(net.state_dict(), tmp_path / "torchsr_edsr.pth")
    d = _load(tmp_path / "torchsr_edsr.pth")
    _check_descriptor(d, "EDSR", scale, ["4nb", "16nf", "edsr-pytorch"])
    with torch.no_grad():
        _close(d(x), net(x))


def test_basicsr_files_prefer_the_ema_weights(tmp_path: Path, x: torch.Tensor) -> None:
    ema, raw = EDSR(scale=2, n_resblocks=3, n_feats=16).eval(), EDSR(scale=2, n_resblocks=3, n_feats=16)
    sd = to_basicsr(ema)
    torch.save({"params": to_basicsr(raw), "params_ema": sd}, tmp_path / "EDSR_Mx2.pth")
    d = _load(tmp_path / "EDSR_Mx2.pth")
    _check_descriptor(d, "EDSR", 2, ["3nb", "16nf", "basicsr"])
    y = d(x)
    _close(y, reference_basicsr(sd, x, 2))
    with torch.no_grad():
        _close(y, ema(x))


@pytest.mark.parametrize("name", [cfg.name for cfg in edsr_lib.list_pretrained() if cfg.package_file])
def test_edsr_lib_shipped_safetensors(name: str, x: torch.Tensor) -> None:
    model = edsr_lib.create_model(name, pretrained=True)
    cfg = model.pretrained_cfg
    path = Path(edsr_lib.__file__).parent / "weights" / cfg.package_file
    d = _load(path)
    assert d.model.config == model.config
    for scale in model.scales:
        with torch.no_grad():
            _close(edsr_spandrel.at_scale(d, scale)(x), model(x, scale=scale))
    numbers = [f"{model.config['n_resblocks']}nb", f"{model.config['n_feats']}nf"]
    _check_descriptor(d, type(model).__name__, max(model.scales), [*numbers, "edsr-lib"])


def test_edsr_lib_large_edsr_gets_the_registered_res_scale(tmp_path: Path) -> None:
    with torch.device("meta"):
        shapes = edsr_lib.create_model("edsr_x2").state_dict()
    sd = {k: torch.randn(v.shape) * 0.01 for k, v in shapes.items()}
    from safetensors.torch import save_file

    save_file(sd, tmp_path / "model.safetensors")
    d = _load(tmp_path / "model.safetensors")
    assert d.model.config["res_scale"] == 0.1  # edsr_x2's, which no tensor stores
    assert d.tags[:2] == ["32nb", "256nf"]


def test_edsr_lib_folder_with_its_config_through_load(tmp_path: Path, x: torch.Tensor) -> None:
    """A non-default rgb_range lives only in config.json: spandrel alone cannot see it, load() can."""
    model = EDSR(scale=2, n_resblocks=2, n_feats=8, rgb_range=1.0, res_scale=0.5).eval()
    folder = model.save_pretrained(tmp_path / "mine")
    d = edsr_spandrel.load(folder)
    assert d.model.config == model.config
    with torch.no_grad():
        _close(d(x), model(x))
    assert edsr_spandrel.load(folder / "model.safetensors").model.config == model.config
    plain = _load(folder / "model.safetensors")  # spandrel alone: the family's defaults
    assert plain.model.config["rgb_range"] == 255.0


# ------------------------------------------------------------------ registry behaviour
def test_install_is_idempotent_and_goes_last() -> None:
    # spandrel's own architectures only: the autouse fixture has already installed EDSR into MAIN_REGISTRY
    registry = spandrel.ArchRegistry()
    registry.add(*(a for a in spandrel.MAIN_REGISTRY.architectures() if a.architecture.id not in ("EDSR", "MDSR")))
    before = [a.architecture.id for a in registry.architectures("detection")]
    assert len(before) > 10 and "EDSR" not in before and "MDSR" not in before
    edsr_spandrel.install(registry)
    after = [a.architecture.id for a in registry.architectures("detection")]
    assert after == [*before, "EDSR", "MDSR"]  # last, and nothing before them moved
    edsr_spandrel.install(registry)
    assert [a.architecture.id for a in registry.architectures("detection")] == after


def test_other_architectures_still_load_as_themselves(tmp_path: Path) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN

    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    torch.save(net.state_dict(), tmp_path / "esrgan.pth")
    assert _load(tmp_path / "esrgan.pth").architecture.id == "ESRGAN"


def test_incomplete_state_dicts_are_unsupported(tmp_path: Path) -> None:
    sd = to_edsr_pytorch(EDSR(scale=2, n_resblocks=2, n_feats=8))
    del sd["body.1.body.2.weight"]
    torch.save(sd, tmp_path / "broken.pt")
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_file(tmp_path / "broken.pt")
    own = EDSR(scale=2, n_resblocks=2, n_feats=8).state_dict()
    own["extra.weight"] = torch.zeros(1)
    assert edsr_spandrel.read_state_dict(own) is None
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_state_dict(own)
    # other networks with BasicSR's or edsr-lib's first key names are not taken for EDSR
    conv = {"weight": torch.randn(8, 3, 3, 3), "bias": torch.randn(8)}
    assert edsr_spandrel.read_state_dict({f"conv_first.{k}": v for k, v in conv.items()}) is None
    assert edsr_spandrel.read_state_dict({"head.weight": conv["weight"], "tail.weight": conv["weight"]}) is None


# ------------------------------------------------------------------ precision, tiling
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions_follow_float32(dtype: torch.dtype, x: torch.Tensor) -> None:
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)
    sd = to_edsr_pytorch(model)
    d = spandrel.ModelLoader().load_from_state_dict(sd)
    want = d(x)
    d.to(dtype)
    got = d(x.to(dtype)).float()
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert (got - want).abs().mean().item() < (2.5e-3 if dtype == torch.bfloat16 else 1e-3)  # 1.4e-3, 4.3e-4 measured


def test_tile_overlap_is_the_receptive_radius_and_exact(x: torch.Tensor) -> None:
    trained = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)
    d = spandrel.ModelLoader().load_from_state_dict(to_edsr_pytorch(trained))
    assert edsr_spandrel.tile_overlap(d) == 36  # above ComfyUI's 32 px default overlap
    image = torch.rand(1, 3, 100, 90)
    one_pass = d(image)
    overlap = edsr_spandrel.tile_overlap(d)
    tiled = edsr_lib.upscale(d.model, image, tile=32, tile_overlap=overlap).clamp(0, 1)
    assert (tiled - one_pass).abs().max().item() <= TOLERANCE
    short = edsr_lib.upscale(d.model, image, tile=32, tile_overlap=2).clamp(0, 1)
    assert (short - one_pass).abs().max().item() > 1e-3  # too little context shows at the seams
