"""Image file I/O: modes, EXIF, broken files, atomic writes, tensors, listing."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from edsr_lib.io import (
    Image16,
    ImageNotFoundError,
    ImageReadError,
    SkippedInputWarning,
    array_to_image,
    check_writable,
    fit_format,
    image_to_array,
    list_images,
    load_image,
    read_image,
    to_tensor,
    to_uint8,
    upright,
    write_image,
)


def _random(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ------------------------------------------------------------------- reading
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_round_trip_keeps_channels(tmp_path, channels):
    image = _random((7, 9, channels))
    write_image(tmp_path / "a.png", image)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)


def test_two_dimensional_array_is_written_gray(tmp_path):
    image = _random((5, 6))
    write_image(tmp_path / "g.png", image)
    assert Image.open(tmp_path / "g.png").mode == "L"
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), image[:, :, None])


def test_palette_images(tmp_path):
    rgb = Image.fromarray(_random((6, 6, 3))).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    rgb.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (6, 6, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(rgb.convert("RGB")))
    rgb.info["transparency"] = 0
    rgb.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").shape == (6, 6, 4)


def test_gray_with_alpha_stays_gray_with_alpha(tmp_path):
    pixels = _random((4, 5, 2))
    Image.fromarray(pixels).save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), pixels)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], [[0, 1, 128, 255]])


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((4, 8, 3), dtype=np.uint8)
    image[0, 0] = 255  # mark the top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(image).save(tmp_path / "o.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "o.jpg")
    assert upright.shape == (8, 4, 3)
    assert upright[0, -1].mean() > 200  # the top-left corner went to the top-right


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.png") as info:
        read_image(tmp_path / "nothere.png")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ImageNotFoundError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_raise(tmp_path, suffix):
    buffer = io.BytesIO()
    Image.fromarray(_random((64, 64, 3))).save(buffer, format="PNG" if suffix == ".png" else "JPEG")
    data = buffer.getvalue()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"cut\\{suffix}"):
        read_image(path)


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(ImageReadError, match=r"cannot read image .*x\.png"):
        read_image(tmp_path / "x.png")


# ------------------------------------------------------------------- writing
@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"), (".PNG", "PNG")])
def test_format_follows_suffix(tmp_path, suffix, fmt):
    write_image(tmp_path / f"a{suffix}", _random((8, 8, 3)), quality=90)
    assert Image.open(tmp_path / f"a{suffix}").format == fmt


def test_creates_parent_folders_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "er" / "a.png"
    write_image(target, _random((3, 3, 3)))
    assert sorted(os.listdir(target.parent)) == ["a.png"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    old = _random((4, 4, 3), seed=1)
    write_image(target, old)

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, _random((4, 4, 3), seed=2))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["a.png"]
    np.testing.assert_array_equal(read_image(target), old)


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="suffix must be one of"):
        write_image(tmp_path / "a.gif", _random((4, 4, 3)))
    with pytest.raises(TypeError, match="to_uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="uint8 NumPy array"):
        write_image(tmp_path / "a.png", torch.zeros(4, 4, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        write_image(tmp_path / "a.jpg", _random((4, 4, 4)))
    with pytest.raises(ValueError, match="C in 1, 2, 3, 4"):
        write_image(tmp_path / "a.png", _random((4, 4, 5)))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("quality", [0, 101, 500, -5, 9.5, True])
def test_a_quality_out_of_range_is_refused_as_the_command_line_does(tmp_path, quality):
    with pytest.raises(ValueError, match=r"quality must be an integer in 1\.\.100"):
        write_image(tmp_path / "a.jpg", _random((4, 4, 3)), quality=quality)
    assert not any(tmp_path.iterdir())


def test_fit_format_converts_what_a_format_lacks_and_says_so():
    levels = np.array([[0, 128, 257, 65535]], dtype=np.uint16)  # 128/257 levels: 0.498 and 1.0 of 8-bit
    gray16 = Image.fromarray(levels)
    gray16.info["icc_profile"] = b"profile"
    eight, note = fit_format(gray16, "a.jpg")
    assert eight.mode == "L" and np.asarray(eight).tolist() == [[0, 0, 1, 255]]
    assert note == "I;16 images are written as 8-bit L in JPEG" and eight.info["icc_profile"] == b"profile"
    assert fit_format(gray16, "a.png") == (gray16, "")
    la = Image.fromarray(_random((3, 4, 2)), mode="LA")
    assert fit_format(la, "a.webp")[0].mode == "RGBA"  # WebP stores alpha
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        fit_format(la, "a.jpg")
    unit = Image.fromarray(np.array([[0.0, 0.25, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(fit_format(unit, "a.png")[0]).tolist() == [[0, 16384, 65535]]  # float: 16 bits, rounded
    byte = Image.fromarray(np.array([[0, 7, 255]], dtype=np.int32), mode="I")
    assert fit_format(byte, "a.png")[0].mode == "L"  # 8-bit data in a 32-bit image: 8 bits, not a dark 16-bit PNG


# ------------------------------------------------------------------- tensors
def test_to_tensor_and_back_is_exact_for_every_level():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min() == 0 and tensor.max() == 1
    np.testing.assert_array_equal(to_uint8(tensor), image)
    np.testing.assert_array_equal(to_uint8(tensor[0].half()), image)
    assert to_tensor(image[:, :, 0]).shape == (1, 1, 16, 16)


def test_to_uint8_rounds_half_away_and_clamps():
    levels = torch.tensor([0.5, 1.5, 2.5, 127.5, 254.5, -3.0, 300.0], dtype=torch.float64) / 255
    out = to_uint8(levels.view(1, 1, 7))
    assert out.shape == (1, 7, 1)
    assert out.ravel().tolist() == [1, 2, 3, 128, 255, 0, 255]


def test_tensor_conversion_errors():
    with pytest.raises(TypeError, match="uint8"):
        to_tensor(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        to_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(1, C, H, W\)"):
        to_uint8(torch.zeros(2, 3, 4, 4))


# ------------------------------------------------------------------- listing
def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.webp"):
        write_image(tmp_path / "set" / name, _random((2, 2, 3)))
    (tmp_path / "set" / "notes.txt").write_text("x")
    (tmp_path / "set" / "sub").mkdir()
    folder = tmp_path / "set"

    assert [p.name for p in list_images(folder)] == ["a.JPG", "b.png", "c.webp"]
    assert list_images(str(folder / "b.png")) == [folder / "b.png"]
    assert [p.name for p in list_images(str(folder / "*.p*"))] == ["b.png"]
    # several sources, duplicates dropped, order kept
    both = list_images([folder / "c.webp", folder])
    assert [p.name for p in both] == ["c.webp", "a.JPG", "b.png"]


def test_list_images_passes_over_hidden_names_and_reports_near_misses(tmp_path):
    write_image(tmp_path / "a.png", _random((2, 2, 3)))
    write_image(tmp_path / ".cache" / "b.png", _random((2, 2, 3)))
    write_image(tmp_path / "sub" / ".c.png", _random((2, 2, 3)))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(SkippedInputWarning) as caught:
        walked = list_images(tmp_path, recursive=True)
    assert walked == [tmp_path / "a.png"]
    assert sorted(str(w.message).split(" is ")[0] for w in caught) == [
        str(tmp_path / "folder.png"),
        str(tmp_path / "gone.png"),
    ]
    with pytest.warns(SkippedInputWarning):
        assert list_images(str(tmp_path / "**" / "*.png")) == walked  # one rule for walks and globs
    assert list_images(tmp_path / ".cache") == [tmp_path / ".cache" / "b.png"]  # named: taken
    with pytest.raises(FileNotFoundError, match="broken link"):
        list_images(tmp_path / "gone.png")


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images found in .*empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="no images found"):
        list_images(str(tmp_path / "*.png"))


def test_every_unreadable_input_is_an_image_read_error(tmp_path, monkeypatch):
    Image.fromarray(_random((40, 40, 3))).save(tmp_path / "big.png")
    frames = [Image.fromarray(_random((8, 8, 3), seed=s)).convert("P") for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels is past twice the limit: a "bomb"
    with pytest.raises(ImageReadError, match=r"big\.png is too large to decode safely"):
        read_image(tmp_path / "big.png")
    monkeypatch.undo()
    with pytest.raises(ImageReadError, match=r"anim\.gif is animated \(3 frames\)"):
        read_image(tmp_path / "anim.gif")
    assert [p.name for p in list_images(tmp_path)] == ["anim.gif", "big.png"]  # GIFs are picked up


def test_wide_ints_and_floats_are_read_by_value_range(tmp_path):
    eight = _random((4, 5))
    Image.fromarray(eight.astype(np.int32), mode="I").save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[..., 0], eight)
    Image.fromarray(eight.astype(np.float32) / 255, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[..., 0], eight)
    Image.fromarray(np.full((2, 2), -5, np.int32), mode="I").save(tmp_path / "neg.tif")
    with pytest.raises(ImageReadError, match=r"neg\.tif.*32-bit integer image with values in -5\.\.-5"):
        read_image(tmp_path / "neg.tif")


def test_sixteen_bit_and_metadata_survive_write_image(tmp_path):
    levels = np.random.default_rng(0).integers(0, 65536, (5, 4)).astype(np.uint16)
    write_image(tmp_path / "g.png", levels)
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(img), levels)
    image = Image.fromarray(_random((4, 4, 3)))
    image.info.update(icc_profile=b"icc bytes", dpi=(150.0, 150.0))
    write_image(tmp_path / "m.png", image)
    with Image.open(tmp_path / "m.png") as img:
        assert img.info["icc_profile"] == b"icc bytes" and tuple(round(d) for d in img.info["dpi"]) == (150, 150)
    with pytest.raises(ValueError, match="JPEG has no I;16 pixels"):
        write_image(tmp_path / "g.jpg", levels)


def test_sixteen_bit_colour_is_read_with_sixteen_bits(tmp_path):
    # Pillow cannot write 48-bit PNG, so this one is written by hand: IHDR (16-bit RGB), one IDAT, IEND
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + (np.arange(9) * 7000).astype(">u2").tobytes() for _ in range(2))
    header = struct.pack(">IIBBBBB", 3, 2, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    (tmp_path / "rgb16.png").write_bytes(png)
    levels = np.tile(np.arange(9, dtype=np.uint16).reshape(1, 3, 3) * 7000, (2, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = load_image(tmp_path / "rgb16.png")
        eight = read_image(tmp_path / "rgb16.png")
    assert isinstance(image, Image16) and image.mode == "RGB;16" and image.size == (3, 2)
    np.testing.assert_array_equal(image_to_array(image), levels)
    np.testing.assert_array_equal(eight, np.floor(levels / 257 + 0.5).astype(np.uint8))  # rounded as everywhere


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_round_trips_with_its_metadata(tmp_path, suffix, channels):
    if suffix == ".tif" and channels == 2:
        with pytest.raises(ValueError, match=r"TIFF has no LA;16 pixels"):  # Pillow would not read it back
            write_image(tmp_path / "la.tif", np.zeros((2, 2, 2), np.uint16))
        return
    levels = np.random.default_rng(channels).integers(0, 65536, (5, 4, channels)).astype(np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Maker"  # Make
    image = array_to_image(levels)
    assert isinstance(image, Image16)
    image.info.update(icc_profile=icc, dpi=(300.0, 300.0), exif=exif.tobytes())
    write_image(tmp_path / f"a{suffix}", image)
    back = load_image(tmp_path / f"a{suffix}")
    assert isinstance(back, Image16) and back.mode == image.mode
    np.testing.assert_array_equal(back.pixels, levels)
    with Image.open(tmp_path / f"a{suffix}") as img:  # what other programs see: Pillow reads the metadata
        assert img.info["icc_profile"] == icc and tuple(round(d) for d in img.info["dpi"]) == (300, 300)
        assert img.getexif()[0x010F] == "Maker"
    if suffix == ".tif":
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), levels)


def test_a_sixteen_bit_tiff_tifffile_cannot_decode_is_read_with_eight_bits_and_a_warning(tmp_path, monkeypatch):
    levels = np.random.default_rng(0).integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "z.tif", levels, photometric="rgb", compression="zlib")
    assert isinstance(load_image(tmp_path / "z.tif"), Image16)
    # as without imagecodecs for LZW, the usual compression of 16-bit TIFFs from photo editors
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", {})
    with pytest.warns(UserWarning, match=r"z\.tif has 16 bits per channel, read as 8 bits: .*pip install imagecodecs"):
        image = load_image(tmp_path / "z.tif")
    assert isinstance(image, Image.Image) and image.mode == "RGB"


@pytest.mark.parametrize("orientation", range(2, 9))
def test_sixteen_bit_colour_is_turned_upright_as_pillow_turns_eight_bits(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (3, 5, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    eight = Image.fromarray(pixels)
    eight.info["exif"] = exif.tobytes()
    turned = upright(Image16(pixels.astype(np.uint16) * 257, {"exif": exif.tobytes()}))
    np.testing.assert_array_equal(turned.pixels, np.asarray(ImageOps.exif_transpose(eight)).astype(np.uint16) * 257)
    assert 0x0112 not in turned.getexif()


def test_sixteen_bit_colour_goes_to_eight_bits_only_on_purpose(tmp_path):
    levels = np.array([[[0, 128, 257], [65535, 32896, 1]]], dtype=np.uint16)
    with pytest.raises(ValueError, match="JPEG has no RGB;16 pixels; fit_format"):
        write_image(tmp_path / "a.jpg", levels)
    with pytest.raises(ValueError, match="JPEG has no alpha channel"):
        check_writable(tmp_path / "a.jpg", "RGBA;16")
    image = Image16(levels, {"icc_profile": b"profile"})
    eight, note = fit_format(image, tmp_path / "a.jpg")
    assert note == "RGB;16 images are written as 8-bit RGB in JPEG" and eight.info["icc_profile"] == b"profile"
    np.testing.assert_array_equal(np.asarray(eight), np.floor(levels / 257 + 0.5).astype(np.uint8))
    assert fit_format(Image16(np.zeros((1, 1, 2), np.uint16)), "a.webp")[0].mode == "RGBA"
    assert fit_format(image, "a.tif") == (image, "")
