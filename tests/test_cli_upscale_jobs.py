"""``edsr-lib upscale`` on folders as users have them: bad files among good ones, faithful files, folder jobs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib import _device
from edsr_lib.cli import main
from edsr_lib.io import image_to_array, load_image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


def _pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, image: np.ndarray | Image.Image, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image.squeeze())).save(path, **kwargs)
    return path


def _upscale(model_dir: Path, *args: str) -> int:
    # the exact fp32 result unless a test asks for a precision (the default is the fast path: see test_precision)
    exact = [] if {"--half", "--bf16", "--int8", "--fp32"} & set(args) else ["--fp32"]
    return main(["upscale", *args, *exact, "--model", str(model_dir)])


# ------------------------------------------------------------------ no image lost
def test_every_bad_file_is_one_line_and_the_good_ones_are_written(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    _save(folder / "a_good.png", _pixels((8, 8, 3), 1))
    _save(folder / "b_bomb.png", _pixels((40, 40, 3), 2))
    whole = _save(tmp_path / "whole.png", _pixels((20, 20, 3), 3))
    (folder / "c_truncated.png").write_bytes(whole.read_bytes()[:300])
    _save(folder / "d_crash.png", _pixels((9, 9, 3), 4))
    _save(
        folder / "e_animated.gif",
        Image.fromarray(_pixels((8, 8, 3), 5)).convert("P"),
        save_all=True,
        append_images=[Image.fromarray(_pixels((8, 8, 3), 6)).convert("P")],
    )
    _save(folder / "f_good.png", _pixels((8, 8, 3), 7))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 40x40 = 1600 pixels is a "bomb" past twice this

    from edsr_lib import inference

    real = inference.Upscaler._run

    def crash_on_nine(self, image, scale):
        if image.shape[-3:-1] == (9, 9):
            raise RuntimeError("something unexpected")
        return real(self, image, scale)

    monkeypatch.setattr(inference.Upscaler, "_run", crash_on_nine)
    out = tmp_path / "out"
    status = _upscale(model_dir, str(folder), "-o", str(out))
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    for name, reason in [
        ("b_bomb.png", "too large"),
        ("c_truncated.png", "cannot read"),
        ("d_crash.png", "RuntimeError: something unexpected"),
        ("e_animated.gif", "animated (2 frames)"),
    ]:
        assert sum(name in line and reason in line for line in lines) == 1, (name, lines)
    assert sorted(p.name for p in out.iterdir()) == ["a_good_x2.png", "f_good_x2.png"]
    assert "wrote 2 images" in captured.out and "(4 failed, 0 skipped)" in captured.out


_MEMORY_PROBE = """
import os, resource, sys
import PIL.Image
import edsr_lib, torch
from edsr_lib.cli import main
PIL.Image.MAX_IMAGE_PIXELS = None
torch.set_num_threads(1)
edsr_lib.from_pretrained(sys.argv[1])  # load everything before the limit
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (400 << 20), resource.RLIM_INFINITY))
sys.exit(main(["upscale", sys.argv[2], "-o", sys.argv[3], "--model", sys.argv[1], "--workers", "1", "--fp32"]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS")
def test_an_image_that_exhausts_a_memory_limit_costs_only_itself(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _save(folder / "a.png", _pixels((8, 8, 3), 1))
    Image.new("RGB", (12000, 12000), (90, 120, 150)).save(folder / "b_huge.png")  # 576 MB once decoded
    _save(folder / "c.png", _pixels((8, 8, 3), 2))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(model_dir), str(folder), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert any("b_huge.png" in line and "memory" in line for line in result.stderr.splitlines()), result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]


def test_the_default_run_names_the_backend_and_precision_it_ran_once(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edsr_lib import backends

    for name in ("a", "b"):
        _save(tmp_path / "in" / f"{name}.png", _pixels((9, 7, 3), len(name)))
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    precision = backends.default_precision(torch.device("cpu"))
    measured = backends.auto_measurement(edsr_lib.from_pretrained(model_dir), 2, precision)
    ran = measured["backend"] if measured is not None else "torch"  # no runtime installed: nothing measured
    assert len(said) == 1 and said[0].startswith(f"edsr-lib upscale: precision {precision}")
    assert f"backend {ran} (the fastest installed here" in said[0] and "auto" not in said[0]
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--model", str(model_dir), "--fp32"]) == 0
    assert "precision" not in capsys.readouterr().err  # asked for: nothing to say


def test_a_multi_scale_model_without_scale_asks_for_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mdsr = edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "mdsr")
    _save(tmp_path / "in" / "a.png", _pixels((6, 6, 3)))
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(mdsr)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass --scale one of them" in err and "scale=" not in err
    assert not (tmp_path / "out").exists()


def test_nan_weights_are_refused_before_any_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = edsr_lib.from_pretrained(model_dir)
    with torch.no_grad():
        model.tail.weight.fill_(float("nan"))
    broken = model.save_pretrained(tmp_path / "broken")
    _save(tmp_path / "in" / "a.png", _pixels((6, 6, 3)))
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "tail.weight" in err and "NaN" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------ faithful files
def test_sixteen_bit_png_round_trip(model_dir: Path, tmp_path: Path) -> None:
    levels = np.random.default_rng(0).integers(0, 65536, (7, 6)).astype(np.uint16)
    _save(tmp_path / "g16.png", Image.fromarray(levels))
    assert _upscale(model_dir, str(tmp_path / "g16.png"), "-o", str(tmp_path / "o")) == 0
    with Image.open(tmp_path / "o" / "g16_x2.png") as img:
        assert img.mode == "I;16" and img.size == (12, 14)
        expected = edsr_lib.upscale(edsr_lib.from_pretrained(model_dir), levels)
        np.testing.assert_array_equal(np.asarray(img), expected)


def test_float_and_int32_tiffs(model_dir: Path, tmp_path: Path) -> None:
    model = edsr_lib.from_pretrained(model_dir)
    unit = np.random.default_rng(1).random((6, 5), dtype=np.float32)
    eight = _pixels((6, 5), 2)
    _save(tmp_path / "in" / "f.tif", Image.fromarray(unit, mode="F"))
    _save(tmp_path / "in" / "i.tif", Image.fromarray(eight.astype(np.int32), mode="I"))
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "o")) == 0
    with Image.open(tmp_path / "o" / "f_x2.tif") as img:  # float data needs TIFF; not a black PNG
        assert img.mode == "F"
        np.testing.assert_allclose(np.asarray(img), np.asarray(edsr_lib.upscale(model, Image.fromarray(unit))))
        assert np.asarray(img).mean() > 0.2
    with Image.open(tmp_path / "o" / "i_x2.tif") as img:
        assert img.mode == "I"
        np.testing.assert_array_equal(np.asarray(img), edsr_lib.upscale(model, eight))


def test_icc_exif_and_dpi_are_kept(model_dir: Path, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 10 wide, 6 high; shown 6 wide, 10 high
    exif[0x0110] = "edsr-lib test camera"
    icc = b"\x00\x00\x02\x0cnot a real profile, but bytes to carry"
    image = Image.fromarray(_pixels((6, 10, 3), 5))
    _save(tmp_path / "photo.jpg", image, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300), quality=95)
    for fmt in ("png", "jpg"):
        assert _upscale(model_dir, str(tmp_path / "photo.jpg"), "-o", str(tmp_path / fmt), "--format", fmt) == 0
        with Image.open(tmp_path / fmt / f"photo_x2.{fmt}") as out:
            assert out.size == (12, 20)  # upright
            assert out.info.get("icc_profile") == icc
            kept = out.getexif()
            assert kept.get(0x0110) == "edsr-lib test camera"
            assert kept.get(0x0112, 1) == 1  # the pixels are upright now: no viewer may rotate them again
            assert tuple(round(d) for d in out.info["dpi"]) == (600, 600)


def test_gray_alpha_stays_gray_alpha(model_dir: Path, tmp_path: Path) -> None:
    _save(tmp_path / "la.png", Image.fromarray(_pixels((5, 6, 2)), mode="LA"))
    assert _upscale(model_dir, str(tmp_path / "la.png"), "-o", str(tmp_path / "o")) == 0
    with Image.open(tmp_path / "o" / "la_x2.png") as img:
        assert img.mode == "LA" and img.size == (12, 10)


def test_format_quality_and_suffix(model_dir: Path, tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", _pixels((32, 32, 3), 3))
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        args = ["--format", "jpg", "--quality", str(quality), "--suffix=-big{scale}"]
        assert _upscale(model_dir, str(path), "-o", str(out), *args) == 0
        sizes[quality] = (out / "a-big2.jpg").stat().st_size
    assert sizes[30] < sizes[95]
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "t"), "--format", "tif") == 0
    assert load_image(tmp_path / "t" / "a_x2.tif").size == (64, 64)


def test_outputs_are_never_read_back(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    _save(folder / "a.png", _pixels((6, 6, 3), 1))
    for _ in range(2):
        assert _upscale(model_dir, str(folder), "-o", str(folder)) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x2.png"]
    assert "left out 1 file(s) that are outputs" in capsys.readouterr().err


def test_outscale(model_dir: Path, tmp_path: Path) -> None:
    path = _save(tmp_path / "a.png", _pixels((10, 8, 3), 3))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--outscale", "1.5") == 0
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--outscale", "8") == 0
    assert load_image(tmp_path / "o" / "a_x1.5.png").size == (12, 15)
    assert load_image(tmp_path / "o" / "a_x8.png").size == (64, 80)


# ------------------------------------------------------------------ folder jobs
def test_skip_existing_on_a_rerun(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        _save(tmp_path / "in" / f"{i}.png", _pixels((6, 6, 3), i))
    out = tmp_path / "out"
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(out)) == 0
    (out / "1_x2.png").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(out), "--skip-existing") == 0
    assert "wrote 1 image to" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in before} == before
    assert (out / "1_x2.png").exists()


def test_recursive_mirrors_the_tree(model_dir: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for rel in ("a.png", "x/a.png", "x/y/b.jpg"):
        _save(tree / rel, _pixels((5, 5, 3), len(rel)))
    assert _upscale(model_dir, str(tree), "-o", str(tmp_path / "out"), "--recursive") == 0
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert found == ["a_x2.png", "x/a_x2.png", "x/y/b_x2.png"]


def test_a_double_star_glob_mirrors_the_tree(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in ("x/a.png", "y/a.png"):  # the same name in two folders: flattened, they would collide
        _save(tmp_path / "tree" / rel, _pixels((5, 5, 3), len(rel)))
    monkeypatch.chdir(tmp_path)
    assert _upscale(model_dir, "tree/**/*.png", "-o", "out") == 0
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == [
        "x/a_x2.png",
        "y/a_x2.png",
    ]


def test_same_size_images_are_batched(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        _save(tmp_path / "in" / f"{i}.png", _pixels((6, 6, 3) if i != 2 else (7, 6, 3), i))
    from edsr_lib import inference

    sizes: list[int] = []
    real = inference.Upscaler._pil

    def spy(self, images):
        sizes.append(len(images))
        return real(self, images)

    monkeypatch.setattr(inference.Upscaler, "_pil", spy)
    assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--batch-size", "2") == 0
    assert sizes == [2, 1, 2]  # 0-1, then the odd size alone, then 3-4
    model = edsr_lib.from_pretrained(model_dir)
    for i in range(5):
        expected = edsr_lib.upscale(model, image_to_array(load_image(tmp_path / "in" / f"{i}.png")))
        np.testing.assert_array_equal(image_to_array(load_image(tmp_path / "out" / f"{i}_x2.png")), expected)


def test_shards_split_the_files(model_dir: Path, tmp_path: Path) -> None:
    for i in range(5):
        _save(tmp_path / "in" / f"{i}.png", _pixels((5, 5, 3), i))
    done = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        assert _upscale(model_dir, str(tmp_path / "in"), "-o", str(out), "--shard", f"{k}/2") == 0
        done.append({p.name for p in out.iterdir()})
    assert not done[0] & done[1]
    assert done[0] | done[1] == {f"{i}_x2.png" for i in range(5)}


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="needs torchrun",
)
def test_torchrun_splits_a_folder_across_two_processes(model_dir: Path, tmp_path: Path) -> None:
    for i in range(6):
        _save(tmp_path / "in" / f"{i}.png", _pixels((5, 5, 3), i))
    torchrun = Path(sys.executable).with_name("torchrun")
    log = tmp_path / "log"
    script = textwrap.dedent(
        """
        import os, sys
        from edsr_lib.cli import main
        status = main(sys.argv[1:])
        print(f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}: {status}")
        sys.exit(status)
        """
    )
    (tmp_path / "run.py").write_text(script)
    result = subprocess.run(
        [
            str(torchrun if torchrun.exists() else "torchrun"),
            "--standalone",
            "--nproc_per_node=2",
            "--log-dir",
            str(log),
            "--tee",
            "3",
            str(tmp_path / "run.py"),
            "upscale",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(model_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}_x2.png" for i in range(6)]
    wrote = [line for line in result.stdout.splitlines() if "wrote" in line]
    assert len(wrote) == 2 and all("wrote 3 images" in line for line in wrote), result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda:3"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "cuda:"),
        (["--device", "gpu"], "not a torch device"),
        (["--bf16", "--device", "cpu"], "native bf16"),
    ],
)
def test_devices_and_precision_are_one_line_errors(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:

    monkeypatch.setattr(_device, "cpu_has_native_bf16", lambda: False)
    path = _save(tmp_path / "a.png", _pixels((4, 4, 3)))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_bf16_on_a_cpu_with_native_bf16(model_dir: Path, tmp_path: Path) -> None:
    from edsr_lib.inference import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    path = _save(tmp_path / "a.png", _pixels((16, 16, 3)))
    assert _upscale(model_dir, str(path), "-o", str(tmp_path / "o"), "--bf16", "--device", "cpu") == 0
    fp32 = edsr_lib.upscale(edsr_lib.from_pretrained(model_dir), _pixels((16, 16, 3)))
    bf16 = image_to_array(load_image(tmp_path / "o" / "a_x2.png"))
    # rounded to bf16 (not fp32), and close: 1 level at most measured (Zen 4, four seeds)
    assert 0 < np.abs(bf16.astype(int) - fp32.astype(int)).max() <= 2
