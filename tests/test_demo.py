"""The demo page (edsr_lib.demo): its files equal `edsr-lib upscale`'s, its limits, its API through gradio_client.

The page itself, driven in Chromium, is tests/test_demo_browser.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from demo_server import OFFLINE_ENV, REPO_ROOT, cli_demo, cli_upscale, make_photo, serve

import edsr_lib
from edsr_lib import demo
from edsr_lib.io import Image16, load_image
from edsr_lib.registry import get_pretrained_cfg, list_pretrained

#: The models run here, each with the tag the page offers first: the registry's default, not a release's name.
X2, MDSR = get_pretrained_cfg("edsr_baseline_x2"), get_pretrained_cfg("mdsr_baseline")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "photo.jpg")


def test_the_download_is_the_file_edsr_lib_upscale_writes(photo: Path, tmp_path: Path) -> None:
    image, result, written = demo.run_upscale(photo, X2.architecture, X2.tag, None, out_dir=tmp_path / "page")
    expected = cli_upscale(photo, tmp_path / "cli", "--model", X2.name)
    assert written.name == expected.name == "photo_x2.png"
    assert written.read_bytes() == expected.read_bytes()
    assert image.size == (44, 60) and result.size == (88, 120)  # upright, as the EXIF orientation says
    with Image.open(written) as out:
        assert out.info["icc_profile"] == image.info["icc_profile"] and out.info["dpi"] == pytest.approx(
            (360, 360), rel=1e-4
        )  # PNG stores dots per metre


def test_mdsr_at_the_chosen_scale_and_tiff(photo: Path, tmp_path: Path) -> None:
    _, result, written = demo.run_upscale(
        photo, MDSR.architecture, MDSR.tag, 3, output_format="TIFF", out_dir=tmp_path / "page"
    )
    expected = cli_upscale(photo, tmp_path / "cli", "--model", MDSR.name, "--scale", "3", "--format", "tif")
    assert written.name == "photo_x3.tif" and result.size == (132, 180)
    assert written.read_bytes() == expected.read_bytes()


def test_sixteen_bits_keep_what_eight_bits_round_away(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.open(demo.SAMPLE_IMAGE).convert("L").save(gray)
    label = "PNG, 16 bits per channel"
    _, _, written = demo.run_upscale(gray, X2.architecture, X2.tag, None, output_format=label, out_dir=tmp_path)
    _, eight, _ = demo.run_upscale(gray, X2.architecture, X2.tag, None, out_dir=tmp_path / "8")
    with Image.open(written) as out:
        assert out.mode.startswith("I;16") and out.size == (192, 192)
        levels = np.asarray(out).astype(np.float64)
    assert np.abs(levels / 257 - np.asarray(eight)).max() <= 0.5 + 1e-9  # the same picture, finer
    assert (levels % 257 != 0).mean() > 0.5  # most values fall between two 8-bit levels


def test_sixteen_bit_colour_is_written_with_sixteen_bits(photo: Path, tmp_path: Path) -> None:
    options = {"output_format": "PNG, 16 bits per channel", "out_dir": tmp_path / "o"}
    _, result, written = demo.run_upscale(photo, X2.architecture, X2.tag, None, **options)
    _, eight, _ = demo.run_upscale(photo, X2.architecture, X2.tag, None, out_dir=tmp_path / "8")
    out = load_image(written)
    assert isinstance(out, Image16) and out.mode == "RGB;16" and out.size == (88, 120)
    np.testing.assert_array_equal(out.pixels, result.pixels)
    assert np.abs(out.pixels / 257 - np.asarray(eight)).max() <= 0.5 + 0.5 / 257  # the same picture, finer


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (demo.Limits(max_megapixels=0.002), "(0.0 megapixels); this page takes images up to 0.002 megapixels"),
        (demo.Limits(max_file_mb=0.001), "MB; this page takes files up to 0.001 MB"),
    ],
)
def test_inputs_over_the_limits_are_refused(photo: Path, tmp_path: Path, limits: demo.Limits, message: str) -> None:
    with pytest.raises(ValueError, match="this page takes") as caught:
        demo.run_upscale(photo, X2.architecture, X2.tag, None, limits=limits, out_dir=tmp_path / "o")
    assert message in str(caught.value)
    assert not (tmp_path / "o").exists()


def test_bad_limits_and_formats_are_refused(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        demo.Limits(max_megapixels=0)
    with pytest.raises(ValueError, match="unknown output format 'JPEG'"):
        demo.run_upscale(photo, X2.architecture, X2.tag, None, output_format="JPEG", out_dir=tmp_path)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="cannot read the image"):
        demo.run_upscale(not_an_image, X2.architecture, X2.tag, None, out_dir=tmp_path)


def test_the_page_offers_every_registered_model_with_weights_default_tag_first() -> None:
    choices = demo.model_choices()
    with_weights = {(c.architecture, c.tag) for c in list_pretrained() if c.has_weights}
    assert {(arch, tag) for arch, tags in choices.items() for tag in tags} == with_weights
    for arch, tags in choices.items():
        assert tags[0] == get_pretrained_cfg(arch).tag


def test_the_command_names_the_extra_when_gradio_is_missing() -> None:
    code = "import sys; sys.modules['gradio'] = None\nfrom edsr_lib.cli import main\nsys.exit(main(['demo']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "edsr-lib demo: error: the demo needs Gradio: pip install 'edsr-lib[demo]'"


@pytest.mark.slow
def test_the_space_folder_serves_the_page_and_its_api(photo: Path, tmp_path: Path) -> None:
    """`python app.py` in a copy of examples/space/, as a Space starts it; driven through gradio_client."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    space = tmp_path / "space"
    shutil.copytree(REPO_ROOT / "examples" / "space", space)
    assert set(p.name for p in space.iterdir()) == {"app.py", "requirements.txt", "README.md"}
    front_matter = (space / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front_matter and "app_file: app.py" in front_matter
    assert "edsr-lib[demo]" in (space / "requirements.txt").read_text()
    expected = cli_upscale(photo, tmp_path / "cli", "--model", X2.name)
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1100)).save(big)  # 2.2 megapixels, over the default 2

    with serve([sys.executable, "app.py"], cwd=space, work=tmp_path) as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        api = client.view_api(print_info=False, return_format="dict")
        assert list(api["named_endpoints"]) == ["/upscale"]  # the page's other events are private
        options = (X2.architecture, X2.tag, 2, False, False, "PNG")  # model, tag, scale, ensemble, bf16, format
        slider, download, info = client.predict(handle_file(str(photo)), *options, api_name="/upscale")
        assert Path(download).name == "photo_x2.png"
        assert Path(download).read_bytes() == expected.read_bytes()
        assert "44x60 → 88x120" in info
        with Image.open(slider[1]) as after:
            assert after.size == (88, 120)
        with pytest.raises(AppError, match=r"2000x1100 pixels \(2.2 megapixels\); this page takes images up to 2"):
            client.predict(handle_file(str(big)), X2.architecture, X2.tag, 2, False, False, "PNG", api_name="/upscale")


@pytest.mark.slow
def test_a_session_checks_every_value_and_leaves_nothing_behind(photo: Path, tmp_path: Path) -> None:
    """`edsr-lib demo` driven through its API: scales of the chosen model, one-line refusals, no files left."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    gradio_temp = tmp_path / "gradio-temp"
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    x3 = get_pretrained_cfg("edsr_baseline_x3")
    with serve(cli_demo(), cwd=tmp_path, work=tmp_path) as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))

        def run(path: Path, model: str, tag: str, scale: object, output_format: str = "PNG") -> tuple:
            return client.predict(
                handle_file(str(path)), model, tag, scale, False, False, output_format, api_name="/upscale"
            )

        # MDSR at each of its scales, not only the page's first
        for scale in edsr_lib.create_model(MDSR.architecture).scales:
            _, download, info = run(photo, MDSR.architecture, MDSR.tag, scale)
            assert Path(download).name == f"photo_x{scale}.png" and f"{44 * scale}x{60 * scale}" in info
        _, download, _ = run(photo, x3.architecture, x3.tag, 3)
        assert Path(download).name == "photo_x3.png"
        refusals = {
            (x3.architecture, x3.tag, 2, "PNG"): f"{x3.architecture} does not upscale x2; it serves x3",
            (MDSR.architecture, MDSR.tag, 5, "PNG"): f"{MDSR.architecture} does not upscale x5",
            (MDSR.architecture, MDSR.tag, None, "PNG"): "choose one",
            (X2.architecture, "nope", 2, "PNG"): "has no weights 'nope'",
            ("nomodel", X2.tag, 2, "PNG"): "unknown model 'nomodel'",
            (X2.architecture, X2.tag, 2, "JPEG"): "unknown output format 'JPEG'",
        }
        for (model, tag, scale, output_format), message in refusals.items():
            with pytest.raises(AppError, match=re.escape(message)):
                run(photo, model, tag, scale, output_format)
        with pytest.raises(AppError) as caught:
            run(notes, X2.architecture, X2.tag, 2)
        assert "notes.png" in str(caught.value) and str(gradio_temp) not in str(caught.value)
        assert "gradio" not in str(caught.value)  # the file's name, not Gradio's temporary path to it
        assert [p for p in gradio_temp.rglob("*") if p.is_file()]  # uploads and results while it runs

        port = int(url.rstrip("/").rsplit(":", 1)[1])  # a second demo on the same port: the option to use
        second = subprocess.run(
            [*cli_demo("--port", str(port))], capture_output=True, text=True, timeout=300,
            env={**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO_ROOT), "GRADIO_TEMP_DIR": str(gradio_temp)},
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines()[-1] == (
            f"edsr-lib demo: error: port {port} is in use (another edsr-lib demo?); choose another with --port "
            "(port= in Python)"
        )
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log  # refused values print no traceback on the console
    assert [p for p in gradio_temp.rglob("*")] == [], sorted(gradio_temp.rglob("*"))  # nothing left, uploads included
