"""``edsr-lib upscale`` and ``edsr-lib models`` on real files written here with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.io import read_image
from edsr_lib.ops import imresize


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


@pytest.fixture(scope="module")
def mdsr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_mdsr")


def _pixels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.squeeze()).save(path, **kwargs)
    return path


def _upscale(model_dir: Path, *args: str) -> int:
    # the exact fp32 result unless a test asks for a precision (the default is the fast path: see test_cli_defaults)
    exact = [] if {"--half", "--bf16", "--int8", "--fp32"} & set(args) else ["--fp32"]
    return main(["upscale", *args, *exact, "--model", str(model_dir)])


def test_files_are_upscaled_and_named_by_stem_and_scale(model_dir: Path, tmp_path: Path) -> None:
    a = _save(tmp_path / "in" / "a.png", _pixels((12, 10, 3), 0))
    b = _save(tmp_path / "in" / "b.webp", _pixels((7, 9, 3), 1), lossless=True)
    out = tmp_path / "out" / "nested"
    assert _upscale(model_dir, str(a), str(b), "-o", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
    result = read_image(out / "a_x2.png")
    assert result.shape == (24, 20, 3)
    expected = edsr_lib.upscale(edsr_lib.from_pretrained(model_dir), read_image(a))
    np.testing.assert_array_equal(result, expected)
    assert read_image(out / "b_x2.png").shape == (14, 18, 3)


def test_a_folder_and_a_glob(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i, name in enumerate(["x.png", "y.jpg", "notes.txt"]):
        if name.endswith(".txt"):
            (tmp_path / "in" / name).write_text("not an image")
        else:
            _save(tmp_path / "in" / name, _pixels((6, 8, 3), i))
    _save(tmp_path / "more" / "z.png", _pixels((5, 5, 3), 9))
    assert _upscale(model_dir, str(tmp_path / "in"), str(tmp_path / "more" / "*.png"), "-o", str(tmp_path / "o")) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x_x2.png", "y_x2.png", "z_x2.png"]
    assert "wrote 3 images" in capsys.readouterr().out


def test_grayscale_stays_grayscale(model_dir: Path, tmp_path: Path) -> None:
    gray = _save(tmp_path / "g.png", _pixels((9, 11), 3))
    assert _upscale(model_dir, str(gray), "-o", str(tmp_path / "o")) == 0
    with Image.open(tmp_path / "o" / "g_x2.png") as img:
        assert img.mode == "L" and img.size == (22, 18)


def test_alpha_is_resized_with_matlab_bicubic(model_dir: Path, tmp_path: Path) -> None:
    rgba = _pixels((8, 6, 4), 4)
    path = _save(tmp_path / "t.png", rgba)
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--tile", "4") == 0
    with Image.open(tmp_path / "o" / "t_x2.png") as img:
        assert img.mode == "RGBA" and img.size == (12, 16)
        np.testing.assert_array_equal(np.asarray(img)[:, :, 3], imresize(rgba[:, :, 3], 2))


def test_exif_orientation_is_applied(model_dir: Path, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 10 wide and 6 high, shown rotated by 90 degrees: 6 wide, 10 high
    path = tmp_path / "photo.jpg"
    Image.fromarray(_pixels((6, 10, 3), 5)).save(path, exif=exif.tobytes())
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--format", "jpg") == 0
    with Image.open(tmp_path / "o" / "photo_x2.jpg") as img:
        assert img.format == "JPEG" and img.size == (12, 20)


def test_unreadable_files_are_reported_in_one_line_and_skipped(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _save(tmp_path / "in" / "good.png", _pixels((6, 6, 3), 6))
    whole = _save(tmp_path / "whole.png", _pixels((40, 40, 3), 7))
    truncated = tmp_path / "in" / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[:200])
    missing = tmp_path / "in" / "missing.png"
    out = tmp_path / "o"
    status = _upscale(model_dir, str(truncated), str(missing), str(good), "-o", str(out))
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert any("truncated.png" in line for line in lines) and any("missing.png" in line for line in lines)
    assert "2 input(s) failed" in err
    assert [p.name for p in out.iterdir()] == ["good_x2.png"]  # nothing half-written, no temporary file


def test_multi_scale_models_take_scale(mdsr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _save(tmp_path / "m.png", _pixels((5, 7, 3), 8))
    assert _upscale(mdsr_dir, str(path), "-o", str(tmp_path / "o")) == 2
    assert "scale" in capsys.readouterr().err
    assert _upscale(mdsr_dir, str(path), "-o", str(tmp_path / "o"), "--scale", "3", "--tile", "auto") == 0
    assert read_image(tmp_path / "o" / "m_x3.png").shape == (15, 21, 3)


def test_self_ensemble_flag(model_dir: Path, tmp_path: Path) -> None:
    image = _pixels((7, 5, 3), 10)
    path = _save(tmp_path / "e.png", image)
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--self-ensemble") == 0
    expected = edsr_lib.upscale(edsr_lib.from_pretrained(model_dir), image, self_ensemble=True)
    np.testing.assert_array_equal(read_image(tmp_path / "o" / "e_x2.png"), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--half", "--device", "cpu"], "CUDA"),
        (["--batch-size", "0"], "batch-size"),
    ],
)
def test_bad_options_are_one_line_errors(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = _save(tmp_path / "a.png", _pixels((4, 4, 3), 0))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_tile_is_rejected_by_the_parser(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _upscale(model_dir, "a.png", "-o", str(tmp_path), "--tile", "big")
    assert exc.value.code == 2


def test_models_lists_names_scales_and_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the models; the weights table follows
    assert lines[0].split()[:3] == ["model", "scales", "parameters"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(edsr_lib.list_models())
    assert "x2, x3, x4" in rows["mdsr_baseline"] and "3.23 M" in rows["mdsr_baseline"]
    assert "1.37 M" in rows["edsr_baseline_x2"] and "40.73 M" in rows["edsr_x2"]
    assert main(["models", "mdsr*"]) == 0
    models = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert {line.split()[0] for line in models[1:]} == {"mdsr", "mdsr_baseline"}
