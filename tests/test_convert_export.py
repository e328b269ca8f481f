"""Weights out: library models written in the EDSR-PyTorch layout, and what no layout can hold.

EDSR-PyTorch is not a package, so the written files are run through the independent
reference forward of ``convert_reference.py``; torchSR and BasicSR load theirs in
``test_convert_packages.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from convert_reference import reference_edsr_pytorch, reference_mdsr

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.convert import (
    LAYOUTS,
    WRITABLE_LAYOUTS,
    convert,
    export_checkpoint,
    export_state_dict,
    get_layout,
)

TOL = 1e-5


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(1, 3, 9, 8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_edsr_in_the_edsr_pytorch_layout(tmp_path: Path, x: torch.Tensor, scale: int) -> None:
    name = f"edsr_baseline_x{scale}"
    ours = edsr_lib.create_model(name, pretrained=True)
    dst = tmp_path / f"{name}.pt"
    assert main(["convert", "--to", "edsr-pytorch", name, str(dst)]) == 0
    sd = torch.load(dst, weights_only=True)
    assert torch.equal(sd["add_mean.bias"], 255 * torch.tensor((0.4488, 0.4371, 0.4040)))
    assert torch.equal(sd["sub_mean.weight"], torch.eye(3).view(3, 3, 1, 1))
    with torch.no_grad():
        assert _max_diff(reference_edsr_pytorch(sd, x * 255, scale) / 255, ours(x)) <= TOL
    back = convert(dst, layout="edsr-pytorch", variant=name)  # and read back, bit for bit
    assert back.config == ours.config
    assert all(torch.equal(back.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_shipped_mdsr_in_the_edsr_pytorch_layout(tmp_path: Path, x: torch.Tensor) -> None:
    ours = edsr_lib.create_model("mdsr_baseline", pretrained=True)
    exported = export_checkpoint("mdsr_baseline", tmp_path / "mdsr.pt", "edsr-pytorch")
    assert exported.options == {"model": "MDSR", "scale": "2+3+4", "n_resblocks": 16, "n_feats": 64, "rgb_range": 255}
    sd = torch.load(tmp_path / "mdsr.pt", weights_only=True)
    assert sd.keys() == exported.state_dict.keys()
    with torch.no_grad():
        for branch, scale in enumerate((2, 3, 4)):
            assert _max_diff(reference_mdsr(sd, x * 255, branch, scale) / 255, ours(x, scale=scale)) <= TOL
    assert convert(tmp_path / "mdsr.pt", variant="mdsr_baseline").config == ours.config  # MDSR names: one layout


def test_a_saved_folder_of_another_range_is_rescaled(tmp_path: Path, x: torch.Tensor) -> None:
    ours = edsr_lib.EDSR(scale=2, n_resblocks=2, n_feats=8, rgb_range=1.0, rgb_mean=(0.5, 0.4, 0.3)).eval()
    ours.save_pretrained(tmp_path / "folder")
    exported = export_checkpoint(tmp_path / "folder", tmp_path / "out.pt", "edsr-pytorch")
    assert any("rescaled from rgb_range 1 to the 255" in note for note in exported.notes)
    sd = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.allclose(sd["add_mean.bias"], 255 * torch.tensor((0.5, 0.4, 0.3)))
    with torch.no_grad():
        assert _max_diff(reference_edsr_pytorch(sd, x * 255, 2) / 255, ours(x)) <= TOL


def test_what_the_layouts_cannot_hold_is_refused(tmp_path: Path) -> None:
    assert WRITABLE_LAYOUTS == ("edsr-pytorch", "basicsr", "torchsr")
    assert set(WRITABLE_LAYOUTS) < set(LAYOUTS)
    mdsr = edsr_lib.MDSR(n_resblocks=1, n_feats=8)
    for layout, why in (("basicsr", "BasicSR has no MDSR"), ("torchsr", "torchSR has no MDSR")):
        with pytest.raises(ValueError, match=why):
            export_state_dict(mdsr, layout)
    with pytest.raises(ValueError, match="does not write the super-image layout"):
        export_state_dict(edsr_lib.EDSR(n_resblocks=1, n_feats=8), "super-image")
    with pytest.raises(ValueError, match=r"kernel_size 5 \(its code has 3x3"):
        export_state_dict(edsr_lib.EDSR(n_resblocks=1, n_feats=8, kernel_size=5), "torchsr")
    with pytest.raises(ValueError, match=r"n_colors 1"):
        export_state_dict(edsr_lib.EDSR(n_resblocks=1, n_feats=8, n_colors=1, rgb_mean=(0.5,)), "basicsr")
    with pytest.raises(ValueError, match=r"res_scale 0\.5 \(its MDSR has no residual scaling"):
        export_state_dict(edsr_lib.MDSR(n_resblocks=1, n_feats=8, res_scale=0.5), "edsr-pytorch")
    with pytest.raises(ValueError, match="fused"):
        export_state_dict(edsr_lib.EDSR(n_resblocks=1, n_feats=8).eval().fuse(), "edsr-pytorch")
    with pytest.raises(ValueError, match="unknown layout 'keras'"):
        get_layout("keras")


def test_cli_convert_to_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, checkpoint)
    cases = [
        (["edsr_baseline_x2", str(tmp_path)], "is a folder"),
        (["edsr_baseline_x2", str(tmp_path / "out.safetensors")], "name the file .pt or .pth"),
        ([str(checkpoint), str(tmp_path / "out.pt")], "convert it without --to"),
        (["no_such_model", str(tmp_path / "out.pt")], "neither a registered model name nor a folder"),
        (["edsr_baseline_x2", str(tmp_path / "out.pt"), "--layout", "basicsr"], "--layout apply when reading"),
        (["mdsr_baseline", str(tmp_path / "out.pt")], "BasicSR has no MDSR"),
    ]
    for argv, message in cases:
        assert main(["convert", "--to", "basicsr", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert not (tmp_path / "out.pt").exists()
    assert main(["convert", "--to", "basicsr", "edsr_baseline_x2", str(tmp_path / "new" / "x2.pth")]) == 0
    assert "saved under 'params'" in capsys.readouterr().out


# ------------------------------------------------------------------ written files read back (#25)
def _models_each_layout_holds(layout: str) -> list[edsr_lib.SRModel]:
    """Small models of every family, with settings no tensor holds, that ``layout`` can write."""
    torch.manual_seed(0)
    candidates = [
        edsr_lib.EDSR(scale=3, n_resblocks=2, n_feats=8, res_scale=0.25, rgb_mean=(0.5, 0.4, 0.3)),
        edsr_lib.MDSR(scales=(2, 4), n_resblocks=1, n_feats=8),
    ]
    return [m.eval() for m in candidates if not get_layout(layout).unwritable(m.config) and _has_family(m, layout)]


def _has_family(model: edsr_lib.SRModel, layout: str) -> bool:
    try:
        get_layout(layout).names(model.architecture)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("layout", WRITABLE_LAYOUTS)
def test_every_written_layout_reads_back_without_being_told(tmp_path: Path, x: torch.Tensor, layout: str) -> None:
    models = _models_each_layout_holds(layout)
    assert models
    for i, ours in enumerate(models):
        ours.save_pretrained(tmp_path / f"m{i}")
        assert main(["convert", "--to", layout, str(tmp_path / f"m{i}"), str(tmp_path / f"m{i}.pt")]) == 0
        back = convert(tmp_path / f"m{i}.pt")  # no layout=: the file says it
        assert back.conversion.layout == layout and not back.conversion.assumed
        got, want = back.config, ours.config  # the range is the layout's (the tensors are rescaled to it)
        assert got.keys() == want.keys()
        for key in set(want) - {"rgb_range"}:
            same = got[key] == pytest.approx(want[key]) if key in ("res_scale", "rgb_mean") else got[key] == want[key]
            assert same, (key, got[key], want[key])
        with torch.no_grad():
            for scale in ours.scales:
                assert _max_diff(back(x, scale=scale), ours(x, scale=scale)) <= TOL


def test_an_untagged_file_in_shared_key_names_is_ambiguous_and_the_message_lists_each_layout(tmp_path: Path) -> None:
    exported = export_state_dict(edsr_lib.EDSR(n_resblocks=1, n_feats=8), "edsr-pytorch")
    torch.save(dict(exported.state_dict), tmp_path / "plain.pt")  # a plain dict: no record of who wrote it
    with pytest.raises(ValueError) as caught:
        convert(tmp_path / "plain.pt")
    message = str(caught.value)
    named = [n for n in LAYOUTS if repr(n) in message.split("Say which with")[1]]
    assert f"fit {len(named)} layouts ({', '.join(named)})" in message
    assert set(named) == {"edsr-pytorch", "torchsr", "super-image"}


@pytest.mark.parametrize("layout", WRITABLE_LAYOUTS)
def test_non_finite_weights_are_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str) -> None:
    model = edsr_lib.EDSR(n_resblocks=1, n_feats=8)
    model.save_pretrained(tmp_path / "good")
    with torch.no_grad():
        model.body[0].body[0].weight[0, 0, 0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    assert main(["convert", "--to", layout, str(tmp_path / "nan"), str(tmp_path / "nan.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN or infinite" in err and "body.0.body.0.weight" in err and "\n" not in err, err
    assert not (tmp_path / "nan.pt").exists()
    # a third-party file holding NaN is not converted either
    assert main(["convert", "--to", layout, str(tmp_path / "good"), str(tmp_path / "good.pt")]) == 0
    checkpoint = torch.load(tmp_path / "good.pt", weights_only=True)
    state_dict = checkpoint.get("params", checkpoint)
    head = next(k for k in state_dict if k.startswith(("head", "conv_first")) and k.endswith("weight"))
    state_dict[head][0, 0, 0, 0] = float("inf")
    torch.save(checkpoint, tmp_path / "inf.pt")
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "inf.pt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN or infinite" in err and "nothing written" in err and "\n" not in err, err
    assert not (tmp_path / "out" / "model.safetensors").exists()
