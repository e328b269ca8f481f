"""``edsr-lib upscale`` where users lose work without a word: launcher variables, full and unwritable disks,
suffixes, formats, in-place runs, signals, warnings and the small ones (issue #25)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

import edsr_lib
from edsr_lib import Upscaler
from edsr_lib.cli import main
from edsr_lib.io import load_image
from edsr_lib.jobs import running


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


def _save(path: Path, image: np.ndarray | Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image.squeeze())).save(path)
    return path


def _pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _folder(root: Path, count: int, shape: tuple[int, ...] = (5, 5, 3)) -> Path:
    for i in range(count):
        _save(root / f"{i:02d}.png", _pixels(shape, i))
    return root


def _upscale(model_dir: Path, *args: str) -> int:
    # the exact fp32 result unless a test asks for a precision (the default is the fast path: see test_cli_defaults)
    exact = [] if {"--half", "--bf16", "--int8", "--fp32"} & set(args) else ["--fp32"]
    return main(["upscale", *args, *exact, "--model", str(model_dir)])


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line]


# ------------------------------------------------------------------ 2. launcher variables
def test_stray_rank_variables_drop_no_file(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _folder(tmp_path / "in", 4)
    for name in ("LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert _upscale(model_dir, str(folder), "-o", str(tmp_path / "all")) == 0
    assert len(list((tmp_path / "all").iterdir())) == 4

    monkeypatch.setenv("LOCAL_RANK", "1")  # what torchrun sets beside them
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    capsys.readouterr()
    assert _upscale(model_dir, str(folder), "-o", str(tmp_path / "half")) == 0
    assert sorted(p.name for p in (tmp_path / "half").iterdir()) == ["01_x2.png", "03_x2.png"]
    assert "shard 1 of 2: 2 of 4 files here, 2 left to the others" in capsys.readouterr().err


# ------------------------------------------------------------------ 3. check before computing
def test_an_unwritable_output_is_found_before_the_model_loads(
    model_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    folder = _folder(tmp_path / "in", 2)
    (tmp_path / "file.txt").write_text("a file, not a folder")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("edsr_lib.inference.load_model", no_model)
    assert _upscale(model_dir, str(folder), "-o", str(tmp_path / "file.txt" / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write to the output folder" in err[0] and "file.txt" in err[0]


def test_a_full_disk_stops_the_run(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _folder(tmp_path / "in", 8)
    out = tmp_path / "out"
    real_write, real_upscale = running.write_image, Upscaler.__call__
    calls = {"write": 0, "upscale": 0}

    def write(path, image, **kwargs):
        calls["write"] += 1
        if calls["write"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, image, **kwargs)

    def upscale(*args, **kwargs):
        calls["upscale"] += 1
        return real_upscale(*args, **kwargs)

    monkeypatch.setattr(running, "write_image", write)
    monkeypatch.setattr(Upscaler, "__call__", upscale)
    status = _upscale(model_dir, str(folder), "-o", str(out), "--batch-size", "1", "--workers", "1")
    err = capsys.readouterr().err
    assert status == 1
    assert sum("stopped: the disk is full" in line for line in err.splitlines()) == 1
    assert calls["upscale"] <= 4  # not all 8: the run stopped at the first full write
    assert [p.name for p in out.iterdir()] == ["00_x2.png"]  # what was written is complete and kept

    monkeypatch.setattr(running, "write_image", real_write)
    assert _upscale(model_dir, str(folder), "-o", str(out), "--skip-existing") == 0
    assert len(list(out.iterdir())) == 8


# ------------------------------------------------------------------ 4. outputs stay inside -o
def test_a_suffix_is_part_of_a_name(model_dir: Path, tmp_path: Path, capsys) -> None:
    path = _save(tmp_path / "deep" / "in" / "a.png", _pixels((5, 5, 3)))
    out = tmp_path / "deep" / "out"
    for suffix, message in [("/../../escaped", "no '/'"), ("..x", "'..'"), ("_{size}", "{scale}, {model}")]:
        assert _upscale(model_dir, str(path), "-o", str(out), f"--suffix={suffix}") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.rglob("*escaped*")) and not out.exists()
    assert _upscale(model_dir, str(path), "-o", str(out), "--suffix=_{model}_x{scale}") == 0
    assert [p.name for p in out.iterdir()] == ["a_tiny_x2_x2.png"]


# ------------------------------------------------------------------ 5. an explicit format converts what it can
def test_an_explicit_format_converts_and_says_so_once(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    rng = np.random.default_rng(0)
    levels = [rng.integers(0, 65536, (6, 5)).astype(np.uint16) for _ in range(2)]
    for i, gray16 in enumerate(levels):
        _save(tmp_path / "in" / f"g16_{i}.png", Image.fromarray(gray16))
    _save(tmp_path / "in" / "la.png", Image.fromarray(_pixels((5, 6, 2)), mode="LA"))
    _save(tmp_path / "in" / "unit.tif", Image.fromarray(rng.random((5, 5), dtype=np.float32), mode="F"))
    model = edsr_lib.from_pretrained(model_dir)

    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "webp"), "--format", "webp") == 0
    with Image.open(tmp_path / "webp" / "la_x2.webp") as img:
        assert img.mode == "RGBA"  # WebP stores alpha
    with Image.open(tmp_path / "webp" / "g16_0_x2.webp") as img:
        assert img.mode == "RGB"
    err = capsys.readouterr().err
    assert sum("I;16 images are written as 8-bit RGB in WEBP" in line for line in err.splitlines()) == 1

    assert _upscale(model_dir, str(tmp_path / "in" / "unit.tif"), "-o", str(tmp_path / "png"), "--format", "png") == 0
    with Image.open(tmp_path / "png" / "unit_x2.png") as img:
        assert img.mode == "I;16"  # float data keeps 16 bits where the format has them

    # alpha in JPEG cannot be written: refused before computing, the others converted to 8 bits
    computed: list[tuple[int, ...]] = []
    real = Upscaler.__call__

    def spy(self, image):
        computed.append(getattr(image, "size", None) or image[0].size)
        return real(self, image)

    monkeypatch.setattr(Upscaler, "__call__", spy)
    capsys.readouterr()
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "jpg"), "--format", "jpg") == 1
    assert (6, 5) not in computed  # la.png (6 wide, 5 high) never reached the model
    err = capsys.readouterr().err
    assert any("la.png" in line and "JPEG has no alpha" in line for line in _errors(err))
    expected = edsr_lib.upscale(model, levels[0])
    eight = np.floor(expected.astype(np.float64) * 255 / 65535 + 0.5)
    with Image.open(tmp_path / "jpg" / "g16_0_x2.jpg") as img:
        assert img.mode == "L"
        assert np.abs(np.asarray(img).astype(float) - eight).mean() < 4  # JPEG's loss, not a wrong scale


# ------------------------------------------------------------------ 6. in-place runs
def test_in_place_runs_process_what_does_not_clash(model_dir: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    a = _save(folder / "a.png", _pixels((5, 5, 3), 1))
    _save(folder / "a.jpg", _pixels((5, 5, 3), 2))  # its a.png would be written over the user's a.png
    _save(folder / "b.jpg", _pixels((5, 5, 3), 3))
    before = a.read_bytes()
    assert _upscale(model_dir, str(folder), "-o", str(folder), "--suffix", "") == 1
    err = capsys.readouterr().err
    for name in ("a.png", "a.jpg"):
        assert any(name in line and "would overwrite an input" in line for line in _errors(err)), err
    assert a.read_bytes() == before and (folder / "b.png").exists()

    alone = tmp_path / "alone"
    _save(alone / "a.png", _pixels((5, 5, 3), 1))
    assert _upscale(model_dir, str(alone), "-o", str(alone), "--suffix", "") == 1  # wrote nothing: says why
    assert "would overwrite an input" in capsys.readouterr().err

    own = tmp_path / "own"
    _save(own / "holiday_x2.png", _pixels((5, 5, 3), 3))  # the user's own file, not an earlier output
    assert _upscale(model_dir, str(own), "-o", str(own)) == 0
    assert (own / "holiday_x2_x2.png").exists()


# ------------------------------------------------------------------ 9. signals leave nothing behind
_SIGTERM_AFTER_ONE_WRITE = """
import os, signal, sys
from edsr_lib.cli import main
from edsr_lib.jobs import running
real = running.write_image
def write(path, image, **kwargs):
    real(path, image, **kwargs)
    if not write.sent:
        write.sent = True
        os.kill(os.getpid(), signal.SIGTERM)
write.sent = False
running.write_image = write
sys.exit(main(["upscale", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3], "--batch-size", "1",
               "--workers", "1"]))
"""


@pytest.mark.slow
def test_sigterm_finishes_the_write_in_flight_and_says_what_is_left(model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "in", 6)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _SIGTERM_AFTER_ONE_WRITE, str(folder), str(out), str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 143, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written and all(not name.startswith(".") for name in written)  # no temporary file
    assert f"wrote {len(written)} image" in result.stdout
    assert f"SIGTERM: {6 - len(written)} files left; rerun with --skip-existing" in result.stderr
    assert main(["upscale", str(folder), "-o", str(out), "--model", str(model_dir), "--skip-existing"]) == 0
    assert len(list(out.iterdir())) == 6


def test_a_killed_runs_leftovers_are_swept_and_empty_outputs_redone(model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".00_x2.png.0123456789ab.tmp"  # what SIGKILL leaves in the middle of a write
    stale.write_bytes(b"")
    (out / "01_x2.png").write_bytes(b"")  # a write lost by a crash: not done
    unrelated = out / ".notes.txt.0123456789ab.tmp"
    unrelated.write_bytes(b"someone else's")
    assert _upscale(model_dir, str(folder), "-o", str(out), "--skip-existing") == 0
    assert not stale.exists() and unrelated.exists()
    assert load_image(out / "01_x2.png").size == (10, 10)


# ------------------------------------------------------------------ 10. the small ones
def test_half_on_a_cpu_names_the_flags(model_dir: Path, tmp_path: Path, capsys) -> None:
    path = _save(tmp_path / "a.png", _pixels((4, 4, 3)))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--half", "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "--bf16" in err and "half=" not in err and len(err.strip().splitlines()) == 1


def test_max_pixels_instead_of_a_pillow_setting(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 40x40 = 1600 pixels is a bomb past twice this
    path = _save(tmp_path / "big.png", _pixels((40, 40, 3)))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o")) == 1
    line = _errors(capsys.readouterr().err)[0]
    assert "--max-pixels 1600" in line and "MAX_IMAGE_PIXELS" not in line
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--max-pixels", "1600") == 0
    assert Image.MAX_IMAGE_PIXELS == 500  # the run's limit does not outlive it
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "p"), "--max-pixels", "none") == 0


def test_warnings_are_one_line_each(model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _folder(tmp_path / "in", 1)
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "x.png").mkdir()
    _save(folder / "wide.png", _pixels((20, 30, 3)))  # 600 pixels: over the limit, under twice it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    assert _upscale(model_dir, str(folder), "-o", str(tmp_path / "o")) == 0
    lines = capsys.readouterr().err.splitlines()
    warned = [line for line in lines if line.startswith("edsr-lib upscale: warning: ")]
    assert any("gone.png is a broken link" in line for line in warned), lines
    assert any("x.png is a folder" in line for line in warned), lines
    assert any("wide.png: Image size (600 pixels)" in line for line in warned), lines
    assert not [line for line in lines if "Warning:" in line or line.startswith(" ")]  # no raw Python warnings


def test_hidden_folders_follow_one_rule(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    _save(tmp_path / "tree" / "a.png", _pixels((4, 4, 3)))
    _save(tmp_path / "tree" / ".cache" / "b.png", _pixels((4, 4, 3)))
    monkeypatch.chdir(tmp_path)
    assert _upscale(model_dir, "tree", "-o", "walked", "--recursive") == 0
    assert _upscale(model_dir, "tree/**/*.png", "-o", "globbed") == 0
    walked = sorted(str(p.relative_to("walked")) for p in Path("walked").rglob("*.png"))
    globbed = sorted(str(p.relative_to("globbed")) for p in Path("globbed").rglob("*.png"))
    assert walked == globbed == ["a_x2.png"]


def test_an_outscale_is_named_in_full(model_dir: Path, tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", _pixels((6, 6, 3)))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--outscale", "1.0000001") == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["a_x1.0000001.png"]


def test_an_unknown_option_shows_the_commands_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--bf16", "--model", "m", "--data", "d", "--scale", "2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert (
        err.startswith("usage: edsr-lib evaluate") and "edsr-lib evaluate: error: unrecognized arguments: --bf16" in err
    )


def test_progress_without_a_terminal_is_a_line_every_few_files(model_dir: Path, tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path / "in", 12, (4, 4, 3))
    assert _upscale(model_dir, str(folder), "-o", str(tmp_path / "o"), "--batch-size", "1") == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if "progress:" in line]
    assert [line.split("progress: ")[1].split(" files")[0] for line in progress] == ["5/12", "10/12"]
    assert all("left" in line for line in progress)


def test_the_command_lines_formats_are_the_librarys() -> None:
    from edsr_lib.cli.upscale import OUTPUT_FORMATS as FORMATS
    from edsr_lib.io import OUTPUT_FORMATS, WRITE_FORMATS

    assert FORMATS is OUTPUT_FORMATS
    assert {f".{f}" for f in FORMATS} <= set(WRITE_FORMATS)
    assert {WRITE_FORMATS[f".{f}"] for f in FORMATS} == set(WRITE_FORMATS.values())


# ------------------------------------------------------------------ 11. 16-bit colour stays 16-bit
def _write_png16(path: Path, pixels: np.ndarray, icc: bytes) -> Path:
    """A 16-bit colour PNG with an iCCP chunk, written by pypng (Pillow writes none)."""
    height, width, channels = pixels.shape
    encoded = io.BytesIO()
    png.Writer(width, height, greyscale=False, alpha=channels == 4, bitdepth=16).write(
        encoded, pixels.reshape(height, width * channels).tolist()
    )
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    iccp = (b"iCCP", b"sRGB\0\0" + zlib.compress(icc))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        png.write_chunks(f, [chunks[0], iccp, *chunks[1:]])
    return path


def _read16(path: Path) -> np.ndarray:
    """The pixels of a 16-bit PNG or TIFF as pypng or tifffile read them (not as edsr_lib does)."""
    if path.suffix == ".tif":
        return tifffile.imread(path)
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        assert info["bitdepth"] == 16
        return np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, info["planes"])


def test_sixteen_bit_colour_stays_sixteen_bit(model_dir: Path, tmp_path: Path, capsys) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(0)
    rgb, rgba, tif = (rng.integers(0, 65536, (5, 6, c)).astype(np.uint16) for c in (3, 4, 3))
    _write_png16(tmp_path / "in" / "rgb.png", rgb, icc)
    _write_png16(tmp_path / "in" / "rgba.png", rgba, icc)
    tifffile.imwrite(tmp_path / "in" / "tif.tif", tif, photometric="rgb", iccprofile=icc)
    model = edsr_lib.from_pretrained(model_dir)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "decoded to 8 bits" warning, nor any other
        assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "out")) == 0
        assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "tif"), "--format", "tif") == 0
    assert "warning" not in capsys.readouterr().err
    for stem, pixels in [("rgb", rgb), ("rgba", rgba), ("tif", tif)]:
        for name in (f"out/{stem}_x2.png", f"tif/{stem}_x2.tif"):
            written = _read16(tmp_path / name)
            assert written.dtype == np.uint16
            np.testing.assert_array_equal(written, edsr_lib.upscale(model, pixels), err_msg=name)
            with Image.open(tmp_path / name) as img:
                assert img.info["icc_profile"] == icc, name

    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "jpg"), "--format", "jpg") == 1
    err = capsys.readouterr().err
    assert sum("RGB;16 images are written as 8-bit RGB in JPEG" in line for line in err.splitlines()) == 1
    assert any("rgba.png" in line and "JPEG has no alpha" in line for line in _errors(err))  # refused, not dropped
    eight = np.floor(edsr_lib.upscale(model, rgb).astype(np.float64) * 255 / 65535 + 0.5)
    with Image.open(tmp_path / "jpg" / "rgb_x2.jpg") as img:
        assert img.mode == "RGB" and img.info["icc_profile"] == icc
        assert np.abs(np.asarray(img).astype(float) - eight).mean() < 8  # JPEG's loss, not a wrong scale


# ------------------------------------------------------------------ #30 item 8: nothing left behind
def test_a_run_that_writes_nothing_leaves_no_output_folder(model_dir: Path, tmp_path: Path, capsys) -> None:
    rgba = _save(tmp_path / "rgba.png", _pixels((4, 4, 4)))
    out = tmp_path / "new" / "out"
    assert _upscale(model_dir, str(rgba), "-o", str(out), "--format", "jpg") == 1  # JPEG holds no alpha
    assert "JPEG has no alpha channel" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    _save(tmp_path / "a.png", _pixels((4, 4, 3)))
    _save(tmp_path / "a.jpg", _pixels((4, 4, 3)))
    assert _upscale(model_dir, str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "-o", str(out)) == 2  # a name clash
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    nested = tmp_path / "in" / "deeper"
    _save(tmp_path / "in" / "ok.png", _pixels((4, 4, 3)))
    _save(nested / "rgba.png", _pixels((4, 4, 4)))
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(out), "--recursive", "--format", "jpg") == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["ok_x2.jpg"]  # no empty deeper/
    kept = tmp_path / "kept"
    kept.mkdir()
    assert _upscale(model_dir, str(rgba), "-o", str(kept), "--format", "jpg") == 1
    assert kept.is_dir()  # a folder that was there stays


def test_an_output_that_is_a_file_is_one_line_without_errno(model_dir: Path, tmp_path: Path, capsys) -> None:
    path = _save(tmp_path / "a.png", _pixels((4, 4, 3)))
    (tmp_path / "taken").write_text("a file")
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "taken")) == 2
    err = capsys.readouterr().err.strip()
    folder = tmp_path / "taken"
    assert err == f"edsr-lib upscale: error: cannot write to the output folder {folder}: it is a file, not a folder"
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "taken" / "sub")) == 2
    err = capsys.readouterr().err.strip()
    assert "[Errno" not in err and err.endswith("Not a directory"), err
