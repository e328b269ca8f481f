"""``edsr-lib make-lr``: regenerates the official LR files; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edsr_lib.cli import main
from edsr_lib.io import read_image, write_image


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_regenerates_official_set5(datasets_dir, tmp_path, capsys, scale):
    out_dir = tmp_path / f"X{scale}"
    assert main(["make-lr", str(datasets_dir / "Set5" / "HR"), str(out_dir), "--scale", str(scale)]) == 0
    assert f"wrote 5 LR images (x{scale})" in capsys.readouterr().out
    official_dir = datasets_dir / "Set5" / "LR_bicubic" / f"X{scale}"
    official = sorted(p.name for p in official_dir.glob("*.png"))
    assert sorted(p.name for p in out_dir.iterdir()) == official
    for name in official:
        np.testing.assert_array_equal(read_image(out_dir / name), read_image(official_dir / name), err_msg=name)


def test_keeps_gray_gray_and_alpha(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "hr" / "gray.png", rng.integers(0, 256, (13, 11, 1), dtype=np.uint8))
    write_image(tmp_path / "hr" / "rgba.png", rng.integers(0, 256, (12, 12, 4), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "3"]) == 0
    assert read_image(tmp_path / "lr" / "grayx3.png").shape == (4, 3, 1)
    assert read_image(tmp_path / "lr" / "rgbax3.png").shape == (4, 4, 4)


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "notes.txt").write_text("not an image")
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "no images found" in err and "hr" in err
    assert not (tmp_path / "lr").exists()


def test_missing_folder(tmp_path, capsys):
    assert main(["make-lr", str(tmp_path / "nowhere"), str(tmp_path / "lr"), "--scale", "2"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_image_smaller_than_the_scale(tmp_path, capsys):
    write_image(tmp_path / "hr" / "tiny.png", np.zeros((3, 8, 3), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "4"]) == 2
    err = capsys.readouterr().err
    assert "tiny.png is 3x8, smaller than the scale 4" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_bad_scale(tmp_path, capsys):
    write_image(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_two_inputs_with_the_same_stem(tmp_path, capsys):
    write_image(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    write_image(tmp_path / "hr" / "a.jpg", np.zeros((8, 8, 3), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2"]) == 2
    assert "would both be written to" in capsys.readouterr().err
