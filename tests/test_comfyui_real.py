"""The ComfyUI node in a real ComfyUI, headless on the CPU (integrations/comfyui/tools/run_in_comfyui.py).

Skipped unless ``COMFYUI_DIR`` names a ComfyUI folder; ``COMFYUI_PYTHON`` names the Python
that runs it (with ComfyUI's requirements and edsr-lib installed), default this one. The
script starts ComfyUI, drives it through its HTTP API and websocket, and stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "integrations" / "comfyui" / "tools" / "run_in_comfyui.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_node_upscales_reports_progress_and_cancels_in_the_real_comfyui(tmp_path: Path) -> None:
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui:
        pytest.skip("set COMFYUI_DIR to a ComfyUI folder (and COMFYUI_PYTHON to its Python) to run the node in it")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    command = [python, str(SCRIPT), "--comfyui", comfyui, "--port", str(_free_port()), "--keep", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith(("ok", "FAIL"))] == [
        "ok   the node is loaded",
        "ok   exact node",
        "ok   progress in the UI",
        "ok   ComfyUI's Upscale Image (using Model)",
        "ok   cancel",
    ]
    assert not (Path(comfyui) / "custom_nodes" / "edsr-lib-nodes").is_symlink()  # the link it made is gone
