"""``edsr-lib evaluate``: the paper's bicubic column through the JSON, output layout, options, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import edsr_lib
from edsr_lib.cli import COMMANDS, main
from edsr_lib.io import write_image
from edsr_lib.published import BICUBIC

#: Bicubic PSNR / SSIM of the paper's Table 4 (Y channel, crop = scale).
PAPER_BICUBIC = {(name, int(scale[1:])): scores for name, per in BICUBIC.items() for scale, scores in per.items()}
PSNR_TOLERANCE = 0.02
SSIM_TOLERANCE = 0.0015


def _case(name: str, scale: int) -> object:
    # Set5 takes a second or two; the larger sets take longer
    marks = [] if name == "Set5" else [pytest.mark.slow]
    return pytest.param(name, scale, marks=marks, id=f"{name}-x{scale}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


def _make_set(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(len(root.name))
    for i in range(n):
        small = rng.integers(0, 256, size=(8, 7, 3), dtype=np.uint8)
        write_image(root / "HR" / f"img{i}.png", edsr_lib.imresize(small, size=(32, 28)))
    return root


@pytest.mark.parametrize(("name", "scale"), [_case(name, scale) for name, scale in PAPER_BICUBIC])
def test_bicubic_reproduces_the_paper(datasets_dir: Path, tmp_path: Path, name: str, scale: int) -> None:
    out = tmp_path / "result.json"
    args = ["evaluate", "--model", "bicubic", "--data", str(datasets_dir / name), "--scale", str(scale)]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    paper_psnr, paper_ssim = PAPER_BICUBIC[name, scale]
    assert (result["set"], result["scale"], result["protocol"]) == (name, scale, "benchmark")
    assert abs(result["psnr"] - paper_psnr) <= PSNR_TOLERANCE, result["psnr"]
    assert abs(result["ssim"] - paper_ssim) <= SSIM_TOLERANCE, result["ssim"]
    assert len(result["images"]) == {"Set5": 5, "Set14": 14, "B100": 100}[name]


def test_one_set_gives_an_object_several_a_list(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _make_set(tmp_path / "SetA"), _make_set(tmp_path / "SetB", n=3)
    one, several = tmp_path / "one.json", tmp_path / "several.json"
    base = ["evaluate", "--model", str(model_dir), "--scale", "2"]
    assert main([*base, "--data", str(a), "--json", str(one)]) == 0
    capsys.readouterr()
    assert main([*base, "--data", str(a), str(b), "--json", str(several)]) == 0

    single = json.loads(one.read_text())
    assert isinstance(single, dict)
    assert single["model"] == str(model_dir)
    expected = edsr_lib.evaluate(edsr_lib.from_pretrained(model_dir), a, 2)
    assert (single["psnr"], single["ssim"]) == pytest.approx((expected["psnr"], expected["ssim"]), abs=1e-9)
    assert [row["name"] for row in single["images"]] == ["img0", "img1"]

    both = json.loads(several.read_text())
    assert [r["set"] for r in both] == ["SetA", "SetB"]
    assert [len(r["images"]) for r in both] == [2, 3]
    assert both[0]["psnr"] == single["psnr"]

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"model {model_dir}, protocol benchmark"
    assert lines[-1] == f"wrote {several}"
    table = lines[1:-1]
    assert len(table) == 3
    assert table[0].split() == ["set", "scale", "PSNR", "SSIM", "images", "seconds"]
    row = table[1].split()
    assert row[:5] == ["SetA", "x2", f"{single['psnr']:.2f}", f"{single['ssim']:.4f}", "2"]
    assert table[2].split()[:2] == ["SetB", "x2"]


def test_options_reach_the_evaluator(tmp_path: Path, model_dir: Path) -> None:
    data = _make_set(tmp_path / "S")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--model", str(model_dir), "--data", str(data), "--scale", "2", "--json", str(out)]
    assert main([*argv, "--self-ensemble", "--protocol", "div2k", "--tile", "5", "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    expected = edsr_lib.evaluate(model_dir, data, 2, self_ensemble=True, protocol="div2k")
    assert (result["self_ensemble"], result["protocol"]) == (True, "div2k")
    assert result["psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert result["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)


def test_registered() -> None:
    assert COMMANDS["evaluate"] == "edsr_lib.cli.evaluate"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scale", "3"], "scale 3 is not one of this model's scales (2,)"),
        (["--scale", "2", "--data", "NOWHERE"], "no such set folder: NOWHERE"),
    ],
)
def test_user_errors_are_one_line(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data = _make_set(tmp_path / "S")
    argv = ["evaluate", "--model", str(model_dir), "--data", str(data), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edsr-lib evaluate: error: ") and message in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "--model", "bicubic", "--data", str(_make_set(tmp_path / "S")), "--scale", "2"]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_out_of_memory_is_one_line(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edsr_lib import metrics

    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 5331648000 bytes.")

    monkeypatch.setattr(metrics, "ssim", exhausted)
    data = _make_set(tmp_path / "S")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "img0.png: out of memory scoring a 28x32 image" in err
