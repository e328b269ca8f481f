"""Run the edsr-lib nodes once in a real ComfyUI, headless on the CPU, through its HTTP API.

Usage (in the Python environment that runs ComfyUI, with edsr-lib installed as this package's
README says)::

    python integrations/comfyui/tools/run_in_comfyui.py --comfyui /path/to/ComfyUI

It links this package into ``ComfyUI/custom_nodes/edsr-lib-nodes`` (as a user installs it; the
link is removed afterwards if this script made it), starts ``python main.py --cpu --listen
127.0.0.1 --port PORT`` with its input, output, temp and user folders, its database and its
upscale models in a temporary folder, and drives it as a client does: ``POST /prompt`` with
API-format workflows, the ``/ws`` websocket for progress, ``/history`` for results and
``POST /interrupt`` for the cancel button. Three checks:

1. *Load Image* → *Load Upscale Model* (edsr-lib's shipped EDSR-baseline x2 weights) →
   *Upscale Image (EDSR/MDSR, exact tiles)* (fp32) → *Save Image*: the saved PNG equals the same
   upscale run here in edsr-lib, saved as *Save Image* saves (within one grey level), and the
   node's progress reached its total in the UI's messages;
2. the same model through ComfyUI's own *Upscale Image (using Model)* (spandrel reading EDSR
   through edsr-lib's registration): the same picture within two grey levels (ComfyUI's own
   node blends 512-pixel tiles: the test image is smaller than one);
3. a long upscale (16-pixel tiles, 144 windows) cancelled with ``/interrupt`` after its first progress
   message: ComfyUI reports ``execution_interrupted``, the node stops before its last tile and
   no image is saved.

Prints one line per check and a JSON summary (the ComfyUI version, timings); exits 0 only if
all passed. Needs aiohttp (a ComfyUI requirement) for the websocket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

NODE_DIR = Path(__file__).resolve().parents[1]
LINK_NAME = "edsr-lib-nodes"
NODE_ID = "EDSRLibUpscaleExact"
MODEL_FILE = "edsr_baseline_x2.safetensors"


def comfyui_version(comfyui: Path) -> str:
    """ComfyUI's version (``comfyui_version.py``), and its git commit where the folder is a checkout."""
    text = (comfyui / "comfyui_version.py").read_text() if (comfyui / "comfyui_version.py").is_file() else ""
    found = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    version = found.group(1) if found else "unknown"
    commit = subprocess.run(
        ["git", "-C", str(comfyui), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{version} ({commit[:12]})" if commit else version


def test_picture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth picture with edges (uint8 RGB): gradients, a disc and stripes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((y - height / 2) ** 2 + (x - width / 3) ** 2 < (min(height, width) / 4) ** 2).astype(np.float32)
    stripes = (np.sin(x / 3.0 + y / 7.0) > 0).astype(np.float32)
    channels = [x / width, y / height, 0.5 * disc + 0.3 * stripes + 0.1 * rng.random((height, width))]
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).round().astype(np.uint8)


def expected_png(weights: Path, picture: np.ndarray) -> np.ndarray:
    """What the exact node's Save Image writes: edsr-lib's upscale of Load Image's tensor, saved as ComfyUI saves."""
    import torch
    from safetensors.torch import load_file

    import edsr_lib
    from edsr_lib.integrations import spandrel as edsr_spandrel

    edsr_spandrel.install()
    import spandrel

    model = spandrel.ModelLoader().load_from_state_dict(load_file(weights)).model.eval()
    image = torch.from_numpy(picture.astype(np.float32) / 255.0)[None]  # Load Image: float NHWC
    sr = edsr_lib.Upscaler(model, tile="auto", precision="fp32")(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    return np.clip(255.0 * sr[0].numpy(), 0, 255).astype(np.uint8)  # Save Image truncates


def workflow(image: str, upscaler: dict[str, Any], prefix: str) -> dict[str, Any]:
    """An API-format workflow: Load Image → Load Upscale Model → an upscaler → Save Image."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": MODEL_FILE}},
        "3": {**upscaler, "inputs": {"upscale_model": ["2", 0], "image": ["1", 0], **upscaler.get("inputs", {})}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


class Client:
    """ComfyUI's HTTP API and websocket, as its web page uses them."""

    def __init__(self, session: Any, base: str) -> None:
        self.session, self.base, self.client_id = session, base, uuid.uuid4().hex
        self.messages: list[dict[str, Any]] = []
        self.ws: Any = None

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(f"{self.base}/ws?clientId={self.client_id}")

    async def get(self, path: str) -> Any:
        async with self.session.get(self.base + path) as response:
            response.raise_for_status()
            return await response.json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.post(self.base + path, json=body or {}) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"POST {path}: HTTP {response.status}: {text[:2000]}")
            return json.loads(text) if text else None

    async def queue(self, prompt: dict[str, Any]) -> str:
        return (await self.post("/prompt", {"prompt": prompt, "client_id": self.client_id}))["prompt_id"]

    async def next_message(self, timeout: float) -> dict[str, Any] | None:
        import aiohttp

        message = await asyncio.wait_for(self.ws.receive(), timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            return None  # previews are binary
        data = json.loads(message.data)
        self.messages.append(data)
        return data

    async def until_done(self, prompt_id: str, timeout: float, on_progress: Any = None) -> str:
        """Read messages until the prompt ends; returns the event that ended it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = await self.next_message(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if data is None or data.get("data", {}).get("prompt_id") not in (prompt_id, None):
                continue
            kind = data["type"]
            if kind == "progress" and on_progress is not None:
                await on_progress(data["data"])
            if kind in ("execution_success", "execution_error", "execution_interrupted"):
                return kind
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s")

    def progress_of(self, prompt_id: str, node: str) -> list[tuple[int, int]]:
        return [
            (m["data"]["value"], m["data"]["max"])
            for m in self.messages
            if m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id and m["data"].get("node") == node
        ]

    async def outputs(self, prompt_id: str, timeout: float = 60.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """The prompt's status and outputs from ``/history`` (written just after the prompt's last message)."""
        deadline = time.monotonic() + timeout
        while True:
            history = (await self.get(f"/history/{prompt_id}")).get(prompt_id)
            if history is not None:
                return history.get("status", {}), history.get("outputs", {})
            if time.monotonic() > deadline:
                raise TimeoutError(f"/history has no entry for prompt {prompt_id} after {timeout:.0f} s")
            await asyncio.sleep(0.2)


def saved_png(output_dir: Path, outputs: dict[str, Any]) -> np.ndarray:
    (image,) = outputs["4"]["images"]
    return np.asarray(Image.open(output_dir / image.get("subfolder", "") / image["filename"]).convert("RGB"))


async def drive(client: Client, work: Path, expected: np.ndarray, timeout: float) -> list[tuple[str, bool, str]]:
    results: list[tuple[str, bool, str]] = []
    output_dir = work / "output"
    info = await client.get(f"/object_info/{NODE_ID}")
    if NODE_ID not in info:
        return [("the node is loaded", False, f"/object_info has no {NODE_ID}: see the server log")]
    results.append(("the node is loaded", True, info[NODE_ID]["display_name"]))

    # 1. the exact node, with progress
    exact = {"class_type": NODE_ID, "inputs": {"tile": 0, "scale": 0, "precision": "fp32"}}
    start = time.monotonic()
    prompt_id = await client.queue(workflow("picture.png", exact, "edsr_lib_exact"))
    ended = await client.until_done(prompt_id, timeout)
    status, outputs = await client.outputs(prompt_id)
    seconds = time.monotonic() - start
    if ended != "execution_success":
        messages = [m for m in status.get("messages", []) if m[0] == "execution_error"]
        detail = messages[0][1].get("exception_message", "") if messages else ended
        results.append(("exact node", False, f"{ended}: {detail}"))
    else:
        got = saved_png(output_dir, outputs)
        diff = np.abs(got.astype(int) - expected.astype(int))
        ok = got.shape == expected.shape and diff.max() <= 1
        results.append(
            (
                "exact node",
                ok,
                f"{got.shape[1]}x{got.shape[0]} PNG, largest difference to edsr-lib here {diff.max()} grey level(s) "
                f"({(diff > 0).mean():.4%} of values), {seconds:.1f} s",
            )
        )
        progress = client.progress_of(prompt_id, "3")
        reached = bool(progress) and progress[-1][0] == progress[-1][1]
        results.append(("progress in the UI", reached, f"node 3 sent {progress}"))

    # 2. ComfyUI's own upscaler on the EDSR file (spandrel, through edsr-lib's registration)
    own = {"class_type": "ImageUpscaleWithModel"}
    prompt_id = await client.queue(workflow("picture.png", own, "edsr_lib_comfy_own"))
    ended = await client.until_done(prompt_id, timeout)
    status, outputs = await client.outputs(prompt_id)
    if ended != "execution_success":
        results.append(("ComfyUI's Upscale Image (using Model)", False, ended))
    else:
        got = saved_png(output_dir, outputs)
        diff = np.abs(got.astype(int) - expected.astype(int))
        ok = got.shape == expected.shape and diff.max() <= 2
        results.append(("ComfyUI's Upscale Image (using Model)", ok, f"largest difference {diff.max()} grey level(s)"))

    # 3. cancel: a long upscale, /interrupt at its first progress
    interrupted_at: list[tuple[int, int]] = []
    cancelled: list[float] = []

    async def cancel(data: dict[str, Any]) -> None:
        if data.get("node") == "3" and data["value"] > 0 and not interrupted_at:
            interrupted_at.append((data["value"], data["max"]))
            cancelled.append(time.monotonic())
            await client.post("/interrupt")

    slow = {"class_type": NODE_ID, "inputs": {"tile": 16, "scale": 0}}  # 144 windows of 88 pixels
    prompt_id = await client.queue(workflow("large.png", slow, "edsr_lib_cancelled"))
    start = time.monotonic()
    ended = await client.until_done(prompt_id, timeout, on_progress=cancel)
    stopped = time.monotonic()
    status, outputs = await client.outputs(prompt_id)
    progress = client.progress_of(prompt_id, "3")
    total = progress[-1][1] if progress else 0
    last = progress[-1][0] if progress else 0
    ok = ended == "execution_interrupted" and bool(interrupted_at) and last < total and "4" not in outputs
    results.append(
        (
            "cancel",
            ok,
            f"{ended} after /interrupt at {interrupted_at}; last progress {last}/{total}; stopped "
            f"{stopped - (cancelled or [start])[0]:.1f} s after the interrupt; saved: {'4' in outputs}",
        )
    )
    return results


@contextlib.contextmanager
def linked_node(comfyui: Path):
    """This package in ``custom_nodes/`` (a link), removed afterwards if made here."""
    link = comfyui / "custom_nodes" / LINK_NAME
    made = False
    if not link.exists():
        link.symlink_to(NODE_DIR, target_is_directory=True)
        made = True
    elif link.resolve() != NODE_DIR:
        raise SystemExit(f"{link} exists and is not this package ({link.resolve()}); move it away first")
    try:
        yield link
    finally:
        if made:
            link.unlink()


async def wait_for_server(base: str, server: subprocess.Popen, timeout: float) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {server.returncode} while starting")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/system_stats") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(1.0)
    raise TimeoutError(f"ComfyUI did not answer at {base} within {timeout:.0f} s")


async def run(args: argparse.Namespace, work: Path, log_path: Path) -> tuple[list[tuple[str, bool, str]], dict]:
    import aiohttp

    import edsr_lib
    from edsr_lib.registry import get_pretrained_cfg

    comfyui = args.comfyui.resolve()
    cfg = get_pretrained_cfg("edsr_baseline_x2")
    weights = Path(edsr_lib.__file__).parent / "weights" / cfg.package_file
    for folder in ("input", "output", "temp", "user", "models/upscale_models"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, work / "models" / "upscale_models" / MODEL_FILE)
    models = work / "models" / "upscale_models"
    (work / "extra_model_paths.yaml").write_text(f"edsr_lib_check:\n  upscale_models: {models}\n")
    picture = test_picture(args.height, args.width, seed=0)
    Image.fromarray(picture).save(work / "input" / "picture.png")
    Image.fromarray(test_picture(256, 256, seed=1)).save(work / "input" / "large.png")
    expected = expected_png(weights, picture)

    base = f"http://127.0.0.1:{args.port}"
    command = [
        args.python,
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(args.port),
        "--input-directory",
        str(work / "input"),
        "--output-directory",
        str(work / "output"),
        "--temp-directory",
        str(work / "temp"),
        "--user-directory",
        str(work / "user"),
        "--database-url",
        f"sqlite:///{work / 'comfyui.db'}",
        "--extra-model-paths-config",
        str(work / "extra_model_paths.yaml"),
    ]
    summary = {"comfyui": comfyui_version(comfyui), "command": " ".join(command[1:]), "python": args.python}
    with linked_node(comfyui), open(log_path, "w") as log:
        started = time.monotonic()
        server = subprocess.Popen(command, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
        try:
            await wait_for_server(base, server, args.start_timeout)
            summary["start_s"] = round(time.monotonic() - started, 1)
            async with aiohttp.ClientSession() as session:
                client = Client(session, base)
                await client.connect()
                summary["device"] = (await client.get("/system_stats"))["devices"][0]["name"]
                results = await drive(client, work, expected, args.timeout)
                await client.ws.close()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return results, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_DIR"), help="ComfyUI's folder")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs ComfyUI (default this one)")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--height", type=int, default=96, help="the test picture's height")
    parser.add_argument("--width", type=int, default=128, help="the test picture's width")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds for ComfyUI to start")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for each workflow")
    parser.add_argument("--keep", type=Path, help="keep the work folder (outputs, server log) here")
    args = parser.parse_args()
    if args.comfyui is None or not (args.comfyui / "main.py").is_file():
        parser.error("give ComfyUI's folder (the one with main.py): --comfyui or COMFYUI_DIR")
    work = Path(tempfile.mkdtemp(prefix="edsr-lib-comfyui-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "comfyui.log"
    try:
        results, summary = asyncio.run(run(args, work, log_path))
    except (RuntimeError, TimeoutError, OSError) as exc:
        tail = log_path.read_text(errors="replace")[-4000:] if log_path.is_file() else ""
        print(f"FAILED: {exc}\n--- ComfyUI's log (end) ---\n{tail}", file=sys.stderr)
        return 1
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    summary["passed"] = all(ok for _, ok, _ in results)
    print(json.dumps(summary))
    if not summary["passed"]:
        print(f"--- ComfyUI's log (end) ---\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
