"""Start the demo page in a subprocess on 127.0.0.1 for the tests, with nothing reaching the network.

Used by tests/test_demo.py (gradio_client, the Space folder) and tests/test_demo_browser.py
(Chromium). The server is this test's own child process, stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageCms

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Everything that would reach the network off: Gradio's analytics and version check, the Hub.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",
    "OMP_NUM_THREADS": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    command: list[str], cwd: Path, work: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """Run ``command`` (a demo server) in ``cwd`` with GRADIO_SERVER_NAME/PORT set; yield its URL once it answers.

    Gradio's uploads and the server's log go to ``work``.
    """
    port = free_port()
    environ = {
        **os.environ,
        **OFFLINE_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(work / "gradio-temp"),
        "TMPDIR": str(work),
        **(env or {}),
    }
    log = work / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the demo exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"--- the demo's log ---\n{log.read_text()[-5000:]}")  # shown by pytest when a test failed


def cli_demo(*args: str) -> list[str]:
    """The ``edsr-lib demo`` command line (host and port come from the environment)."""
    return [sys.executable, "-m", "edsr_lib", "demo", *args]


def make_photo(path: Path, size: tuple[int, int] = (60, 44)) -> Path:
    """A JPEG as a camera writes one: rotated by its EXIF orientation, with an sRGB profile and a DPI.

    The picture is the package's sample image (drawn from formulas), resized.
    """
    sample = REPO_ROOT / "examples" / "data" / "sample.png"
    picture = Image.open(sample).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns it 90 degrees clockwise
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture.save(path, "JPEG", quality=92, exif=exif.tobytes(), icc_profile=icc, dpi=(180, 180))
    return path


def cli_upscale(photo: Path, out: Path, *args: str) -> Path:
    """What ``edsr-lib upscale PHOTO -o OUT ARGS`` writes (run in this process)."""
    from edsr_lib.cli import main

    assert main(["upscale", str(photo), "-o", str(out), *args]) == 0
    (written,) = out.iterdir()
    return written
