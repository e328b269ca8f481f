"""ONNX export: onnxruntime matches PyTorch, with dynamic shapes, for EDSR and each MDSR scale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.export import FixedScale, export_onnx, max_onnx_error

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def tiny_mdsr() -> edsr_lib.MDSR:
    torch.manual_seed(0)
    return edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8).eval()


def test_fixed_scale_binds_the_scale(tiny_mdsr: edsr_lib.MDSR) -> None:
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(FixedScale(tiny_mdsr, 4)(x), tiny_mdsr(x, scale=4))
    with pytest.raises(ValueError, match="scales"):
        FixedScale(tiny_mdsr)


@pytest.mark.parametrize("scale", [2, pytest.param(3, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow)])
def test_mdsr_exports_per_scale_and_matches_pytorch(tiny_mdsr: edsr_lib.MDSR, tmp_path: Path, scale: int) -> None:
    path = export_onnx(tiny_mdsr, tmp_path / f"mdsr_x{scale}.onnx", scale)
    assert [p.name for p in tmp_path.iterdir()] == [f"mdsr_x{scale}.onnx"]  # no temporary or data file left
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 13, 29)
    (out,) = session.run(["sr"], {"lr": x.numpy()})
    assert out.shape == (2, 3, 13 * scale, 29 * scale)
    with torch.no_grad():
        expected = tiny_mdsr(x, scale=scale)
    assert (torch.from_numpy(out) - expected).abs().max().item() <= 1e-4


def test_the_check_catches_a_different_model(tiny_mdsr: edsr_lib.MDSR, tmp_path: Path) -> None:
    path = export_onnx(tiny_mdsr, tmp_path / "m.onnx", 2, check=False)
    other = edsr_lib.create_model("mdsr_baseline", n_resblocks=2, n_feats=8)
    assert max_onnx_error(path, tiny_mdsr, 2) <= 1e-4
    assert max_onnx_error(path, other, 2) > 1e-2


def test_cli_exports_a_saved_edsr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = edsr_lib.create_model("edsr_baseline_x3", n_resblocks=2, n_feats=8)
    model.save_pretrained(tmp_path / "m")
    assert main(["export-onnx", str(tmp_path / "m"), str(tmp_path / "out" / "e.onnx")]) == 0
    assert "x3" in capsys.readouterr().out
    assert max_onnx_error(tmp_path / "out" / "e.onnx", model, 3) <= 1e-4
    assert not model.fused


def test_cli_needs_a_scale_for_mdsr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "m")
    assert main(["export-onnx", str(tmp_path / "m"), str(tmp_path / "m.onnx")]) == 2
    assert "scale" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
