"""``edsr-lib make-lr``: regenerates the official LR files; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "4"]) == 1
    err = capsys.readouterr().err
    assert "tiny.png is 3x8, smaller than the scale 4" in err
    assert err.count("\n") == 2  # its line and the list of failures, no traceback
    assert not (tmp_path / "lr").exists()  # nothing written: no empty folder


def test_the_others_go_on_past_an_animated_gif_or_a_tiny_image(tmp_path, capsys):
    """As in `edsr-lib upscale`: each bad file is one line, the others are written, the exit status is 1."""
    hr = tmp_path / "hr"
    write_image(hr / "a.png", np.full((8, 8, 3), 50, np.uint8))
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(hr / "b_anim.gif", save_all=True, append_images=frames[1:])
    write_image(hr / "c_tiny.png", np.zeros((1, 8, 3), dtype=np.uint8))
    write_image(hr / "d.png", np.full((8, 8, 3), 90, np.uint8))
    assert main(["make-lr", str(hr), str(tmp_path / "lr"), "--scale", "2"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "b_anim.gif is animated (3 frames)" in errors[0] and "c_tiny.png" in errors[1], errors
    assert "upscaled" not in errors[0]  # make-lr reads, it does not upscale
    assert "wrote 2 LR images (x2) to" in captured.out and "(2 failed)" in captured.out
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == ["ax2.png", "dx2.png"]


def test_a_decompression_bomb_names_max_pixels(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 8x8 = 64 pixels is a bomb past twice this
    write_image(tmp_path / "hr" / "big.png", np.full((8, 8, 3), 50, np.uint8))
    args = ["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2"]
    assert main(args) == 1
    line = next(line for line in capsys.readouterr().err.splitlines() if "error:" in line)
    assert "allow it with --max-pixels 64" in line and "MAX_IMAGE_PIXELS" not in line, line
    assert not (tmp_path / "lr").exists()
    assert main([*args, "--max-pixels", "64"]) == 0
    assert Image.MAX_IMAGE_PIXELS == 20  # the run's limit does not outlive it


def test_an_output_that_is_a_file_is_one_line_without_errno(tmp_path, capsys):
    write_image(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    (tmp_path / "lr").write_text("a file")
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"edsr-lib make-lr: error: cannot write to the output folder {tmp_path / 'lr'}: it is a file, not a folder"
    )


def test_bad_scale(tmp_path, capsys):
    write_image(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_two_inputs_with_the_same_stem(tmp_path, capsys):
    write_image(tmp_path / "hr" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    write_image(tmp_path / "hr" / "a.jpg", np.zeros((8, 8, 3), dtype=np.uint8))
    assert main(["make-lr", str(tmp_path / "hr"), str(tmp_path / "lr"), "--scale", "2"]) == 2
    assert "would both be written to" in capsys.readouterr().err
