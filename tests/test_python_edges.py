"""The Python API's edge cases: each gives the right result or one clear error (issue: nothing wrong in silence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.io import image_to_array, load_image
from edsr_lib.registry import list_models

_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.SRModel:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).eval()


@pytest.fixture
def meta() -> Iterator[None]:
    """Models built on the meta device: no weights are needed to see their shape."""
    with torch.device("meta"):
        yield


def _photo(path: Path, orientation: int) -> Path:
    """A JPEG whose pixels are stored sideways, with the EXIF tag that tells a viewer to turn them."""
    rng = np.random.default_rng(orientation)
    small = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((20, 12), Image.Resampling.BICUBIC)  # smooth: JPEG keeps it
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    exif[0x010F] = "edsr-lib phone"
    image.save(path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_pil_photo_comes_out_upright_as_the_cli_and_load_image_give_it(
    tiny: edsr_lib.SRModel, tmp_path: Path, orientation: int
) -> None:
    path = _photo(tmp_path / "phone.jpg", orientation)
    model_dir = tiny.save_pretrained(tmp_path / "model")
    with Image.open(path) as opened:
        from_pil = edsr_lib.upscale(tiny, opened)
    from_file = edsr_lib.upscale(tiny, load_image(path))
    assert main(["upscale", str(path), "-o", str(tmp_path / "out"), "--model", str(model_dir), "--fp32"]) == 0
    (written,) = (tmp_path / "out").iterdir()
    from_cli = load_image(written)
    upright_size = (24, 40) if orientation in (6, 8) else (40, 24)
    for result in (from_pil, from_file, from_cli):
        assert result.size == upright_size
        assert result.getexif().get(_ORIENTATION, 1) == 1  # nothing turns it a second time
        assert result.getexif()[0x010F] == "edsr-lib phone"
    np.testing.assert_array_equal(np.asarray(from_pil), np.asarray(from_file))
    if written.suffix == ".png":
        np.testing.assert_array_equal(np.asarray(from_cli), np.asarray(from_pil))
    else:  # the CLI's file went through JPEG once more: its pixels are close, not equal
        assert np.abs(np.asarray(from_cli, dtype=int) - np.asarray(from_pil, dtype=int)).mean() < 3


def test_premultiplied_gray_alpha_is_read_as_gray_alpha(tiny: edsr_lib.SRModel) -> None:
    la = Image.fromarray(np.dstack([np.full((6, 5), 200, np.uint8), np.full((6, 5), 255, np.uint8)]), mode="LA")
    premultiplied = la.convert("La")
    assert image_to_array(premultiplied).shape == (6, 5, 2)
    out = edsr_lib.upscale(tiny, premultiplied)
    assert out.mode == "LA" and out.size == (10, 12)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(edsr_lib.upscale(tiny, la)))


def test_a_variant_keeps_the_scale_its_name_says(meta: None) -> None:
    for name in list_models():
        fixed = name.rpartition("_x")[2]
        if not fixed.isdigit():
            continue
        other = 5 if fixed != "5" else 6
        with pytest.raises(ValueError, match=rf"{name} is the x{fixed} variant; scale={other}"):
            edsr_lib.create_model(name, scale=other)
        assert edsr_lib.create_model(name, scale=int(fixed)).scales == (int(fixed),)


def test_a_multi_scale_model_explains_scale(meta: None) -> None:
    multi = [name for name in list_models() if len(edsr_lib.create_model(name).scales) > 1]
    assert multi
    for name in multi:
        with pytest.raises(ValueError, match=r"takes no argument 'scale' \(it serves the scales .* scales=\(2,\)\)"):
            edsr_lib.create_model(name, scale=2)
        with pytest.raises(ValueError, match=r"takes no argument 'colour'; its arguments: "):
            edsr_lib.create_model(name, colour=3)


def test_an_input_of_another_dtype_is_one_clear_error(tiny: edsr_lib.SRModel) -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(TypeError, match=r"the input is float64 but the model's weights are float32: .*x\.to"):
        tiny(x.double())
    with pytest.raises(TypeError, match=r"the input is float16"):
        tiny(x.half())
    torch.testing.assert_close(tiny.double()(x.double()).float(), tiny.float()(x), rtol=0, atol=1e-5)
    # the library's half-precision paths run under autocast, where mixed dtypes are fine
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert tiny(x).shape == (1, 3, 16, 16)
