"""The ComfyUI custom-node package (integrations/comfyui/), against the real spandrel and a stand-in of ComfyUI.

ComfyUI is not installable from PyPI: the package is imported the way ComfyUI imports a folder
of ``custom_nodes/``, against tests/comfyui_stand_in/ (the few names of ComfyUI's V3 node
interface that it uses, with their signatures). spandrel is the real package; weights files go
through what ComfyUI's *Load Upscale Model* does with them (``load_torch_file``, then
``spandrel.ModelLoader().load_from_state_dict``).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import tomllib
import torch

spandrel = pytest.importorskip("spandrel", reason="the spandrel extra is not installed: pip install -e '.[spandrel]'")

from convert_reference import to_edsr_pytorch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import edsr_lib  # noqa: E402
from edsr_lib import EDSR, MDSR  # noqa: E402
from edsr_lib.registry import get_pretrained_cfg, list_pretrained  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "integrations" / "comfyui"
STAND_IN = Path(__file__).resolve().parent / "comfyui_stand_in"
WEIGHTS = Path(edsr_lib.__file__).parent / "weights"


def shipped_file(arch: str) -> Path:
    """The weights file the package ships for ``arch``: its default tag's, or the first shipped tag's."""
    cfg = next(c for c in list_pretrained(arch) if c.architecture == arch and c.package_file)
    return WEIGHTS / cfg.package_file


#: How ComfyUI's nodes.load_custom_node imports a folder of custom_nodes/ (the folder name is the module name).
LOAD_AS_COMFYUI = """
import importlib.util, sys
sys.path.insert(0, {stand_in!r})
spec = importlib.util.spec_from_file_location("edsr-lib-nodes", {init!r})
module = importlib.util.module_from_spec(spec)
sys.modules["edsr-lib-nodes"] = module
spec.loader.exec_module(module)
"""


@pytest.fixture(scope="module")
def nodes() -> types.ModuleType:
    code = LOAD_AS_COMFYUI.format(stand_in=str(STAND_IN), init=str(PACKAGE / "__init__.py"))
    namespace: dict = {}
    exec(code, namespace)
    return namespace["module"]


def comfyui_load_upscale_model(path: Path) -> spandrel.ImageModelDescriptor:
    """ComfyUI's UpscaleModelLoader: comfy.utils.load_torch_file (safe), then spandrel's load_from_state_dict."""
    state_dict = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict).eval()
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    return descriptor


@pytest.mark.slow
def test_importing_the_package_registers_edsr_and_mdsr_with_spandrel() -> None:
    code = (
        "import spandrel\n"
        "before = [spandrel.MAIN_REGISTRY.get(a) is not None for a in ('EDSR', 'MDSR')]\n"
        + LOAD_AS_COMFYUI.format(stand_in=str(STAND_IN), init=str(PACKAGE / "__init__.py"))
        + "print(before, [spandrel.MAIN_REGISTRY.get(a) is not None for a in ('EDSR', 'MDSR')])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[0] == "[False, False] [True, True]"


@pytest.mark.parametrize("cfg", [c for c in list_pretrained() if c.package_file], ids=lambda c: c.name)
def test_load_upscale_model_reads_every_shipped_weights_file(nodes: types.ModuleType, cfg) -> None:
    descriptor = comfyui_load_upscale_model(WEIGHTS / cfg.package_file)
    assert isinstance(descriptor.model, EDSR | MDSR) and descriptor.architecture.name in ("EDSR", "MDSR")
    assert descriptor.scale == max(descriptor.model.scales)


def test_load_upscale_model_reads_an_official_edsr_pytorch_file(nodes: types.ModuleType, tmp_path: Path) -> None:
    model = edsr_lib.create_model(get_pretrained_cfg("edsr_baseline_x3").name, pretrained=True).eval()
    torch.save(to_edsr_pytorch(model), tmp_path / "edsr_baseline_x3.pt")
    descriptor = comfyui_load_upscale_model(tmp_path / "edsr_baseline_x3.pt")
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert (descriptor(x) - model(x).clamp(0, 1)).abs().max() <= 1e-5


def test_the_node_is_found_as_comfyui_finds_v3_nodes(nodes: types.ModuleType) -> None:
    extension = asyncio.run(nodes.comfy_entrypoint())
    node_list = asyncio.run(extension.get_node_list())
    assert node_list == [nodes.EDSRUpscaleExact]
    schema = nodes.EDSRUpscaleExact.define_schema()
    assert schema.node_id == "EDSRLibUpscaleExact" and schema.category == "image/upscaling"
    assert [i.id for i in schema.inputs] == ["upscale_model", "image", "tile", "scale"]
    assert [i.io_type for i in schema.inputs] == ["UPSCALE_MODEL", "IMAGE", "INT", "INT"]
    assert [o.io_type for o in schema.outputs] == ["IMAGE"]
    tile = schema.inputs[2]
    assert (tile.default, tile.min) == (0, 0)  # 0: tiles sized from the free memory


def test_the_node_upscales_in_exact_tiles(nodes: types.ModuleType) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    image = torch.rand(2, 40, 53, 3)  # ComfyUI's IMAGE: float NHWC in [0, 1]
    out = nodes.EDSRUpscaleExact.execute(upscale_model=descriptor, image=image, tile=24, scale=0)
    (sr,) = out.args
    with torch.no_grad():
        one_pass = descriptor.model(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    assert sr.shape == (2, 80, 106, 3) and sr.dtype == image.dtype
    assert (sr - one_pass).abs().max() <= 1e-5  # 24-pixel tiles, 36 pixels of context: no seams
    assert sr.min() >= 0 and sr.max() <= 1


def test_the_node_runs_mdsr_at_any_of_its_scales(nodes: types.ModuleType) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("mdsr_baseline"))
    image = torch.rand(1, 20, 17, 3)
    (sr4,) = nodes.EDSRUpscaleExact.execute(upscale_model=descriptor, image=image, tile=0, scale=0).args
    (sr2,) = nodes.EDSRUpscaleExact.execute(upscale_model=descriptor, image=image, tile=0, scale=2).args
    assert sr4.shape == (1, 80, 68, 3) and sr2.shape == (1, 40, 34, 3)
    with torch.no_grad():
        assert (sr2 - descriptor.model(image.movedim(-1, 1), scale=2).clamp(0, 1).movedim(1, -1)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="scale 5"):
        nodes.EDSRUpscaleExact.execute(upscale_model=descriptor, image=image, tile=0, scale=5)


def test_the_node_refuses_other_models_in_one_line(nodes: types.ModuleType) -> None:
    other = types.SimpleNamespace(model=torch.nn.Identity(), scale=4, architecture=types.SimpleNamespace(name="ESRGAN"))
    with pytest.raises(
        ValueError, match=r"^this node runs EDSR and MDSR models; ESRGAN runs in Upscale Image \(using Model\)$"
    ):
        nodes.EDSRUpscaleExact.execute(upscale_model=other, image=torch.rand(1, 8, 8, 3), tile=0, scale=0)


def test_the_registry_metadata() -> None:
    meta = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    # the registry's rules for a node id: under 100 characters, letters, digits, - _ ., no "ComfyUI"
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert "Repository" in project["urls"]
    assert project["dependencies"] == ["edsr-lib[spandrel]"]
    assert (PACKAGE / "requirements.txt").read_text().split() == project["dependencies"]
