"""The converter against files written by the real packages: super-image 0.2.0, BasicSR 1.4.2, torchSR 1.0.4.

Each file here is written by the package's own code (super-image's ``save_pretrained``,
BasicSR's ``BaseModel.save_network``, torchSR's model's ``state_dict``) from a small model
with random weights, and each converted model is compared with the package's own forward
pass. The other way, weights written by :func:`edsr_lib.convert.export_checkpoint` are
loaded into the packages' model classes (BasicSR's with its own ``load_network``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torchvision.transforms.functional

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.convert import (
    AmbiguousLayoutError,
    OfficialCheckpoint,
    convert,
    convert_state_dict,
    export_checkpoint,
)

# basicsr 1.4.2 imports torchvision.transforms.functional_tensor, which torchvision 0.29 no longer has: an alias
# while basicsr is imported, removed after (left in sys.modules, any later import of the name would get it)
_ALIAS = "torchvision.transforms.functional_tensor"
_aliased = sys.modules.setdefault(_ALIAS, torchvision.transforms.functional) is torchvision.transforms.functional
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # basicsr 1.4.2 imports scipy.ndimage.filters
        from basicsr.archs.edsr_arch import EDSR as BasicSREDSR
        from basicsr.models.base_model import BaseModel
finally:
    if _aliased:
        del sys.modules[_ALIAS]
from super_image import EdsrConfig, EdsrModel  # noqa: E402
from torchsr.models.edsr import EDSR as TorchSREDSR  # noqa: E402

DIV2K = (0.4488, 0.4371, 0.4040)
TOL = 1e-5


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere but the fixed mean shifts (scaled so that outputs vary)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "mean" not in name:
                p.copy_(torch.randn_like(p) * (0.5 / p[0].numel() ** 0.5))
    return module.eval()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(1, 3, 6, 7)


class _BasicSRIO(BaseModel):
    """BasicSR's own ``save_network``/``load_network``, with only the models folder they need set."""

    def __init__(self, models_dir: Path) -> None:  # BaseModel's would build a whole training set-up
        self.opt = {"path": {"models": str(models_dir)}, "dist": False}


# ------------------------------------------------------------------- super-image
def _super_image(scale: int, res_scale: float = 1.0) -> EdsrModel:
    model = EdsrModel(EdsrConfig(scale=scale, n_resblocks=2, n_feats=8, res_scale=res_scale))
    return _randomise(model)


def test_super_image_file_without_config_is_refused_naming_both(
    tmp_path: Path, x: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _super_image(2)
    source.save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    path = tmp_path / "pytorch_model_2x.pt"

    with pytest.raises(AmbiguousLayoutError, match=r"edsr-pytorch.*super-image") as err:
        convert(path)
    assert {"edsr-pytorch", "super-image"} <= set(err.value.layouts)
    assert "pytorch_model_2x.pt is named as super-image names its files, but has no config.json" in str(err.value)
    # what the converter made of it before: the EDSR-PyTorch reading, far from super-image's output
    with torch.no_grad():
        wrong = err.value.specs["edsr-pytorch"].load(torch.load(path))(x)
        assert _max_diff(wrong, source(x)) > 0.05

    assert main(["convert", str(path), str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err.strip()
    assert "edsr-pytorch" in message and "super-image" in message and "--layout" in message and "\n" not in message
    assert not (tmp_path / "out").exists()

    model = convert(path, layout="super-image")
    assert model.conversion.layout == "super-image"
    with torch.no_grad():
        assert _max_diff(model(x), source(x)) <= TOL
    assert main(["convert", str(path), str(tmp_path / "out"), "--layout", "super-image"]) == 0
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(tmp_path / "out")(x), source(x)) <= TOL


def test_super_image_folder_of_several_scales(
    tmp_path: Path, x: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = {scale: _super_image(scale, res_scale=0.1) for scale in (2, 4)}
    for source in sources.values():
        source.save_pretrained(tmp_path)  # one config.json, rewritten at each save: it ends up saying scale 4
    assert json.loads((tmp_path / "config.json").read_text())["scale"] == 4

    for scale, source in sources.items():
        model = convert(tmp_path / f"pytorch_model_{scale}x.pt")
        spec = model.conversion
        assert (spec.layout, spec.scales, spec.kwargs["res_scale"]) == ("super-image", (scale,), 0.1)
        assert any("config.json says scale 4" in note for note in spec.notes) == (scale == 2)
        with torch.no_grad():
            assert _max_diff(model(x), source(x)) <= TOL

    # a file whose name and tensors disagree is refused
    (tmp_path / "pytorch_model_3x.pt").write_bytes((tmp_path / "pytorch_model_2x.pt").read_bytes())
    with pytest.raises(ValueError, match=r"pytorch_model_3x.pt is named for scale 3, but .* x2 upsampler"):
        convert(tmp_path / "pytorch_model_3x.pt")
    # renamed away from super-image's names, the config's scale is a contradiction again
    (tmp_path / "weights.pt").write_bytes((tmp_path / "pytorch_model_2x.pt").read_bytes())
    with pytest.raises(ValueError, match=r"disagrees with it: scale 4 \(the tensors say 2\)"):
        convert(tmp_path / "weights.pt")

    # --layout super-image without a config: it converts, saying that res_scale (in the config) was assumed
    (tmp_path / "config.json").unlink()
    argv = ["convert", str(tmp_path / "pytorch_model_2x.pt"), str(tmp_path / "out"), "--layout", "super-image"]
    assert main(argv) == 0
    assert "assumed:       res_scale 1 (" in capsys.readouterr().out
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(tmp_path / "out")(x), sources[2](x)) > 1e-3  # trained with 0.1
    assert main([*argv, "--res-scale", "0.1"]) == 0
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(tmp_path / "out")(x), sources[2](x)) <= TOL


# ------------------------------------------------------------------------ BasicSR
def _basicsr_file(tmp_path: Path, scale: int, **options) -> tuple[Path, BasicSREDSR]:
    net = _randomise(BasicSREDSR(3, 3, num_feat=8, num_block=2, upscale=scale, **options))
    ema = _randomise(BasicSREDSR(3, 3, num_feat=8, num_block=2, upscale=scale, **options))
    _BasicSRIO(tmp_path).save_network([net, ema], "net_g", -1, param_key=["params", "params_ema"])
    return tmp_path / "net_g_latest.pth", ema


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_file_converts_with_its_options_and_says_what_it_assumed(
    tmp_path: Path, x: torch.Tensor, capsys: pytest.CaptureFixture[str], scale: int
) -> None:
    path, ema = _basicsr_file(tmp_path, scale, rgb_mean=(0.5, 0.4, 0.3))
    with torch.no_grad():
        expected = ema(x)

    out = tmp_path / "out"
    assert main(["convert", str(path), str(out), "--rgb-mean", "0.5", "0.4", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "layout:        basicsr" in printed
    assert "pixels:        rgb_range 255, rgb_mean (0.5, 0.4, 0.3)" in printed
    assert "assumed:       rgb_range 255, res_scale 1 (" in printed and "--rgb-range, --res-scale" in printed
    assert "rgb_mean (0.5, 0.4, 0.3) as given" in printed
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(out)(x), expected) <= TOL

    # without --rgb-mean, BasicSR's default is assumed, said so, and the output is that of another model
    assert main(["convert", str(path), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "assumed:       rgb_range 255, rgb_mean (0.4488, 0.4371, 0.404), res_scale 1" in printed
    assert "--rgb-range, --rgb-mean, --res-scale" in printed
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(out)(x), expected) > 1e-3


def test_basicsr_img_range_is_given_on_the_command_line(tmp_path: Path, x: torch.Tensor) -> None:
    path, ema = _basicsr_file(tmp_path, 2, img_range=1.0)
    assert main(["convert", str(path), str(tmp_path / "out"), "--rgb-range", "1"]) == 0
    with torch.no_grad():
        assert _max_diff(edsr_lib.from_pretrained(tmp_path / "out")(x), ema(x)) <= TOL


# ------------------------------------------------------------------------- torchSR
def test_torchsr_file_converts_as_torchsr_or_edsr_pytorch(tmp_path: Path, x: torch.Tensor) -> None:
    source = _randomise(TorchSREDSR(2, 8, 3, 1.0))
    path = tmp_path / "edsr_x3.pt"
    torch.save(source.state_dict(), path)
    with pytest.raises(AmbiguousLayoutError, match="edsr-pytorch and torchsr \\(alike\\)"):
        convert(path)
    for layout in ("torchsr", "edsr-pytorch"):
        model = convert(path, layout=layout)
        with torch.no_grad():
            assert _max_diff(model(x), source(x)) <= TOL


# ---------------------------------------------------------- float16 official files
def _float16_official(tmp_path: Path) -> tuple[Path, TorchSREDSR]:
    """An EDSR-baseline x2 file in EDSR-PyTorch's layout saved in float16, mean shifts included."""
    source = _randomise(TorchSREDSR(16, 64, 2, 1.0)).half()
    path = tmp_path / "edsr_baseline_x2_fp16.pt"
    torch.save(source.state_dict(), path)
    return path, source.float()  # its own forward, in float32, on the float16-rounded weights


def test_float16_checkpoint_matches_its_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, source = _float16_official(tmp_path)
    x = torch.rand(1, 3, 8, 8)
    bias = torch.load(path)["add_mean.bias"]
    assert bias.dtype == torch.float16 and not torch.equal(bias.double(), 255 * torch.tensor(DIV2K).double())

    model = convert(path, layout="edsr-pytorch", variant="edsr_baseline_x2")
    assert model.variant == "edsr_baseline_x2"
    assert model.conversion.dtype == "float16"
    assert any("the DIV2K mean rounded to float16" in note for note in model.conversion.notes)
    with torch.no_grad():
        assert _max_diff(model(x), source(x)) <= TOL  # exact: the stored mean is carried as it is
    argv = ["convert", str(path), str(tmp_path / "out"), "--layout", "edsr-pytorch", "--variant", "edsr_baseline_x2"]
    assert main(argv) == 0, capsys.readouterr().err

    # recognised as official by its digest, the variant it must hold is checked the same way
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = OfficialCheckpoint(f"edsr_baseline_x2-{digest[:8]}.pt", "edsr_baseline_x2", digest)
    monkeypatch.setattr("edsr_lib.convert.official.OFFICIAL_CHECKPOINTS", {digest: entry})
    assert convert(path).variant == "edsr_baseline_x2"


def test_float16_checkpoint_of_another_mean_is_still_refused(tmp_path: Path) -> None:
    source = TorchSREDSR(16, 64, 2, 1.0).half()
    sd = source.state_dict()
    shift = (255 * torch.tensor([0.45, 0.4371, 0.404])).half()  # 0.45 is not 0.4488 even in float16
    sd["sub_mean.bias"], sd["add_mean.bias"] = -shift, shift
    with pytest.raises(ValueError, match=r"does not hold edsr_baseline_x2: rgb_mean"):
        convert_state_dict(sd, layout="edsr-pytorch", variant="edsr_baseline_x2")


# ------------------------------------------------------------------- weights out
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_load_into_torchsr(tmp_path: Path, scale: int) -> None:
    name = f"edsr_baseline_x{scale}"
    ours = edsr_lib.create_model(name, pretrained=True)
    dst = tmp_path / f"{name}.pt"
    assert main(["convert", "--to", "torchsr", name, str(dst)]) == 0
    theirs = TorchSREDSR(16, 64, scale, 1.0)
    theirs.load_state_dict(torch.load(dst), strict=True)
    x = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        assert _max_diff(theirs.eval()(x), ours(x)) <= TOL


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_load_into_basicsr(tmp_path: Path, scale: int, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"edsr_baseline_x{scale}"
    ours = edsr_lib.create_model(name, pretrained=True)
    dst = tmp_path / f"{name}.pth"
    assert main(["convert", "--to", "basicsr", name, str(dst)]) == 0
    assert "network_g: type EDSR, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16" in capsys.readouterr().out
    theirs = BasicSREDSR(3, 3, num_feat=64, num_block=16, upscale=scale)
    _BasicSRIO(tmp_path).load_network(theirs, str(dst))  # its own loader: strict, under 'params'
    x = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        assert _max_diff(theirs.eval()(x), ours(x)) <= TOL


def test_models_of_another_range_and_mean_are_rescaled_for_the_packages(tmp_path: Path, x: torch.Tensor) -> None:
    # as a super-image conversion gives: [0, 1], no mean
    ours = edsr_lib.EDSR(scale=2, n_resblocks=2, n_feats=8, rgb_range=1.0, rgb_mean=(0.0, 0.0, 0.0))
    _randomise(ours)
    ours.save_pretrained(tmp_path / "folder")
    exported = export_checkpoint(tmp_path / "folder", tmp_path / "b.pth", "basicsr")
    assert exported.options["rgb_mean"] == [0.0, 0.0, 0.0]
    assert any("not BasicSR's default" in note for note in exported.notes)
    theirs = BasicSREDSR(3, 3, num_feat=8, num_block=2, upscale=2, rgb_mean=(0.0, 0.0, 0.0))
    _BasicSRIO(tmp_path).load_network(theirs, str(tmp_path / "b.pth"))
    export_checkpoint(ours, tmp_path / "t.pt", "torchsr")
    torchsr = TorchSREDSR(2, 8, 2, 1.0)
    torchsr.load_state_dict(torch.load(tmp_path / "t.pt"), strict=True)
    with torch.no_grad():
        assert _max_diff(theirs.eval()(x), ours(x)) <= TOL
        assert _max_diff(torchsr.eval()(x), ours(x)) <= TOL


def test_written_files_read_back(tmp_path: Path, x: torch.Tensor) -> None:
    ours = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)
    for layout in ("torchsr", "basicsr"):
        export_checkpoint("edsr_baseline_x2", tmp_path / f"{layout}.pt", layout)
        back = convert(tmp_path / f"{layout}.pt", layout=layout, variant="edsr_baseline_x2")
        assert back.config == ours.config
        assert all(
            torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values(), strict=True)
        )
