"""The demo page in a real browser: Debian's Chromium, driven by Playwright, against `edsr-lib demo` on 127.0.0.1.

An upload of a photograph, a run, the download (equal byte for byte to `edsr-lib upscale`'s PNG);
an image over the page's limit and its message; a second job while one runs, and its place in
the queue. The test takes the screenshot that docs/demo.md shows: set EDSR_LIB_DEMO_SCREENSHOT to
a path (docs/assets/demo.png) to keep it.

Skips only where no Chromium is installed (CI installs Debian's: apt-get install chromium).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")

from demo_server import REPO_ROOT, cli_upscale, make_photo, serve  # noqa: E402

from edsr_lib.registry import get_pretrained_cfg  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("EDSR_LIB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: A closed network: nothing in the background, no QUIC, no sandbox (containers), a fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The page's limit in the test: the photographs pass (60x44, 128x128), a 200x200 image does not.
MAX_MEGAPIXELS = 0.03
TIMEOUT_MS = 120_000

#: ``edsr-lib demo`` whose runs wait while the file ``$EDSR_LIB_TEST_GATE`` is absent: a test holds a job
#: running for as long as it needs, instead of racing a job that may end before it looks.
HELD_DEMO = """
import os, sys, time
from pathlib import Path

import edsr_lib.demo

gate, run_upscale = Path(os.environ["EDSR_LIB_TEST_GATE"]), edsr_lib.demo.run_upscale


def held(*args, **kwargs):
    while not gate.exists():
        time.sleep(0.05)
    return run_upscale(*args, **kwargs)


edsr_lib.demo.run_upscale = held
from edsr_lib.cli import main

sys.exit(main(["demo", *sys.argv[1:]]))
"""

if CHROMIUM is None:
    pytest.skip("no Chromium to drive: apt-get install chromium (CI installs it)", allow_module_level=True)
playwright.expect.set_options(timeout=TIMEOUT_MS)  # a run on a busy CPU takes seconds, not Playwright's default 5


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="edsr-demo-browser-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def gate(work: Path) -> Path:
    """While this file is absent, the demo's runs wait (see HELD_DEMO)."""
    path = work / "gate"
    path.touch()
    return path


@pytest.fixture(scope="module")
def url(work: Path, gate: Path) -> Iterator[str]:
    command = [sys.executable, "-c", HELD_DEMO, "--max-megapixels", str(MAX_MEGAPIXELS)]
    with serve(command, cwd=work, work=work, env={"EDSR_LIB_TEST_GATE": str(gate)}) as address:
        yield address


@pytest.fixture(scope="module")
def browser(work: Path) -> Iterator[playwright.BrowserContext]:
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(work / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


def open_page(browser: playwright.BrowserContext, url: str) -> playwright.Page:
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#run")
    return page


def upload(page: playwright.Page, path: Path) -> None:
    clear = page.locator("#input-image button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    playwright.expect(page.locator(f'#input-image [aria-label="{path.name}"]')).to_be_visible()  # uploaded


def test_upload_run_download_equals_the_command_line(browser, url: str, work: Path) -> None:
    photo = make_photo(work / "photo.jpg")
    expected = cli_upscale(photo, work / "cli", "--model", "edsr_baseline_x2")
    page = open_page(browser, url)
    upload(page, photo)
    page.click("#run")
    link = page.locator("#result a[download]")
    playwright.expect(link).to_have_attribute("download", "photo_x2.png")
    default = get_pretrained_cfg("edsr_baseline_x2").name  # the page's first choice: the registry's default tag
    playwright.expect(page.locator("#info")).to_contain_text(f"44x60 → 88x120 with {default}")
    with page.expect_download() as download:
        link.click()
    saved = work / "downloaded.png"
    download.value.save_as(saved)
    assert saved.read_bytes() == expected.read_bytes()

    shot = work / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.width == 1280
    if os.environ.get("EDSR_LIB_DEMO_SCREENSHOT"):  # the docs' copy, in 256 colours (a page is mostly flat)
        with Image.open(shot) as image:
            image.convert("RGB").quantize(256).save(REPO_ROOT / os.environ["EDSR_LIB_DEMO_SCREENSHOT"], optimize=True)
    page.close()


def test_an_image_over_the_limit_shows_the_message(browser, url: str, work: Path) -> None:
    big = work / "big.png"
    Image.open(REPO_ROOT / "examples" / "data" / "sample.png").resize((200, 200)).save(big)
    page = open_page(browser, url)
    upload(page, big)
    message = (
        f"the image has 200x200 pixels (0.0 megapixels); this page takes images up to {MAX_MEGAPIXELS:g} megapixels"
    )
    playwright.expect(page.locator(".toast-body")).to_contain_text(message)
    page.click("#run")  # and a run is refused with the same line, without a traceback
    playwright.expect(page.locator(".toast-body").last).to_contain_text(message)
    assert "Traceback" not in page.content()
    page.close()


def test_a_second_job_waits_in_the_visible_queue(browser, url: str, work: Path, gate: Path) -> None:
    slow = work / "slow.png"  # 128x128 with self-ensemble
    Image.open(REPO_ROOT / "examples" / "data" / "sample.png").resize((128, 128)).save(slow)
    first, second = open_page(browser, url), open_page(browser, url)
    upload(first, slow)
    first.locator("#ensemble input").check()
    upload(second, make_photo(work / "second.jpg"))
    gate.unlink()  # the first job runs until the second is seen queued behind it, however fast the machine
    try:
        first.click("#run")
        playwright.expect(first.locator("#result")).to_contain_text("upscaling")  # running
        second.click("#run")
        playwright.expect(second.locator("#result")).to_contain_text("queue: 1/1")
    finally:
        gate.touch()
    playwright.expect(first.locator("#result a[download]")).to_have_attribute("download", "slow_x2.png")
    playwright.expect(second.locator("#result a[download]")).to_have_attribute("download", "second_x2.png")
    first.close()
    second.close()
