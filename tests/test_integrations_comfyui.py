"""The ComfyUI custom-node package (integrations/comfyui/), against the real spandrel and a stand-in of ComfyUI.

ComfyUI is not installable from PyPI: the package is imported the way ComfyUI imports a folder
of ``custom_nodes/``, against tests/comfyui_stand_in/ (the few names of ComfyUI that it uses,
with their signatures and behaviour), and its node runs as ComfyUI's executor runs nodes: under
``torch.inference_mode()``, with a progress hook like the one ComfyUI's ``main.py`` installs
(which raises when the user has cancelled). spandrel is the real package; weights files go
through what ComfyUI's *Load Upscale Model* does with them (``load_torch_file``, then
``spandrel.ModelLoader().load_from_state_dict``, under inference mode too). The same node in
the real ComfyUI: integrations/comfyui/tools/run_in_comfyui.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib
import torch

spandrel = pytest.importorskip("spandrel", reason="the spandrel extra is not installed: pip install -e '.[spandrel]'")

from conftest import report_cuda  # noqa: E402
from convert_reference import to_edsr_pytorch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import edsr_lib  # noqa: E402
from edsr_lib import EDSR, MDSR  # noqa: E402
from edsr_lib.options import PRECISIONS  # noqa: E402
from edsr_lib.registry import get_pretrained_cfg, list_pretrained  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "integrations" / "comfyui"
STAND_IN = Path(__file__).resolve().parent / "comfyui_stand_in"
WEIGHTS = Path(edsr_lib.__file__).parent / "weights"
#: The module name the package gets (ComfyUI names it after its folder in custom_nodes/).
MODULE = "edsr-lib-nodes"


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


def _stand_in_modules() -> set[str]:
    return {n for n in sys.modules if n.split(".")[0] in ("comfy", "comfy_api", MODULE)}


@contextlib.contextmanager
def loaded_as_comfyui() -> Iterator[types.ModuleType]:
    """The package imported as ComfyUI's ``load_custom_node`` does, against the stand-in.

    sys.path and sys.modules are as they were afterwards: nothing of the stand-in is
    importable outside, and the next import starts afresh.
    """
    assert not _stand_in_modules(), "the stand-in is already imported"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(STAND_IN))
        try:
            spec = importlib.util.spec_from_file_location(MODULE, PACKAGE / "__init__.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[MODULE] = module
            spec.loader.exec_module(module)
            yield module
        finally:
            for name in _stand_in_modules():
                del sys.modules[name]


@pytest.fixture(scope="module")
def nodes() -> Iterator[types.ModuleType]:
    with loaded_as_comfyui() as module:
        yield module


@pytest.fixture
def comfy(nodes: types.ModuleType) -> Iterator[types.SimpleNamespace]:
    """ComfyUI's state around one run, as at start with ``--cpu``: no cancel pending, ``main.py``'s progress hook.

    ``progress`` collects what the hook sends to the UI: ``(value, total, node_id)``.
    """
    model_management, utils = sys.modules["comfy.model_management"], sys.modules["comfy.utils"]
    progress: list[tuple[int, int, str | None]] = []

    def hook(value: int, total: int, preview: object, prompt_id: str | None = None, node_id: str | None = None) -> None:
        model_management.throw_exception_if_processing_interrupted()  # as ComfyUI's hijack_progress does first
        progress.append((value, total, node_id))

    model_management.set_cpu(True)
    model_management.interrupt_current_processing(False)
    utils.set_progress_bar_global_hook(hook)
    yield types.SimpleNamespace(model_management=model_management, utils=utils, progress=progress)
    utils.set_progress_bar_global_hook(None)
    model_management.interrupt_current_processing(False)
    model_management.set_cpu(True)


def run_as_comfyui(node: type, **inputs: object) -> tuple:
    """Run a node as ComfyUI's executor does (``execution.py``): under ``torch.inference_mode()``."""
    with torch.inference_mode():
        return node.execute(**inputs).args


def comfyui_load_upscale_model(path: Path) -> spandrel.ImageModelDescriptor:
    """ComfyUI's UpscaleModelLoader under its executor's inference mode: load_torch_file (safe), then spandrel."""
    with torch.inference_mode():
        state_dict = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict).eval()
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    return descriptor


def test_the_stand_in_leaves_nothing_importable_behind() -> None:
    """What the ``nodes`` fixture uses (so first in this module, before that fixture is set up): no trace after."""
    path_before = list(sys.path)
    with loaded_as_comfyui() as module:
        assert str(STAND_IN) in sys.path and module.EDSRUpscaleExact.define_schema().node_id
        assert "comfy.model_management" in sys.modules
    assert sys.path == path_before and not _stand_in_modules()
    assert importlib.util.find_spec("comfy") is None and importlib.util.find_spec("comfy_api") is None


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
    assert [i.id for i in schema.inputs] == ["upscale_model", "image", "tile", "scale", "precision"]
    assert [i.io_type for i in schema.inputs] == ["UPSCALE_MODEL", "IMAGE", "INT", "INT", "COMBO"]
    assert [o.io_type for o in schema.outputs] == ["IMAGE"]
    tile, precision = schema.inputs[2], schema.inputs[4]
    assert (tile.default, tile.min) == (0, 0)  # 0: tiles sized from the free memory
    assert precision.optional and precision.default == "auto"  # workflows saved without it still validate
    assert precision.options[0] == "auto" and set(precision.options[1:]) <= set(PRECISIONS)


def _one_pass(descriptor: spandrel.ImageModelDescriptor, image: torch.Tensor, scale: int | None = None) -> torch.Tensor:
    with torch.no_grad():
        kwargs = {} if scale is None else {"scale": scale}
        return descriptor.model(image.movedim(-1, 1), **kwargs).clamp(0, 1).movedim(1, -1)


def test_the_node_upscales_in_exact_tiles_under_inference_mode(
    nodes: types.ModuleType, comfy: types.SimpleNamespace
) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    assert all(p.is_inference() for p in descriptor.model.parameters())  # as ComfyUI's loader gives it
    image = torch.rand(2, 40, 53, 3)  # ComfyUI's IMAGE: float NHWC in [0, 1]
    (sr,) = run_as_comfyui(
        nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=24, scale=0, precision="fp32"
    )
    assert sr.shape == (2, 80, 106, 3) and sr.dtype == image.dtype and sr.device == image.device
    assert (sr - _one_pass(descriptor, image)).abs().max() <= 1e-5  # 24-pixel tiles, 36 pixels of context: no seams
    assert sr.min() >= 0 and sr.max() <= 1
    (again,) = run_as_comfyui(
        nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=24, scale=0, precision="fp32"
    )
    assert torch.equal(again, sr)  # the second run (cached fast copy) gives the same


def test_the_nodes_precision_auto_is_the_librarys_default_and_others_are_checked(
    nodes: types.ModuleType, comfy: types.SimpleNamespace
) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    image = torch.rand(1, 24, 20, 3)
    (auto,) = run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=0, scale=0)
    with torch.inference_mode():
        default = edsr_lib.Upscaler(descriptor.model, device="cpu")(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    assert torch.equal(auto, default)
    with pytest.raises(ValueError, match=r"^float16 runs on CUDA") as caught:  # --cpu
        run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=0, scale=0, precision="fp16")
    assert "\n" not in str(caught.value)


@pytest.mark.filterwarnings("ignore:tile 8 is smaller than the overlap")
def test_the_node_reports_its_tiles_to_the_ui(nodes: types.ModuleType, comfy: types.SimpleNamespace) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    image = torch.rand(1, 100, 100, 3)  # 16 windows of 8-pixel tiles (80 pixels with context)
    run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=8, scale=0)
    values = [value for value, _, _ in comfy.progress]
    totals = {total for _, total, _ in comfy.progress}
    assert totals == {16}  # one total: the windows of the pass
    assert values[0] == 0 and values[-1] == comfy.progress[0][1] and values == sorted(set(values))


@pytest.mark.filterwarnings("ignore:tile 8 is smaller than the overlap")
def test_the_node_stops_when_the_user_cancels(nodes: types.ModuleType, comfy: types.SimpleNamespace) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    image = torch.rand(1, 100, 100, 3)  # 16 windows of 8-pixel tiles (80 pixels with context)

    def cancel_after_first(value: int, total: int, preview: object, node_id: str | None = None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        comfy.progress.append((value, total, node_id))
        if value > 0:
            comfy.model_management.interrupt_current_processing()  # the cancel button, from the server's thread

    comfy.utils.set_progress_bar_global_hook(cancel_after_first)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=8, scale=0)
    assert [v for v, _, _ in comfy.progress] == [0, 4]  # the first batch (4 windows), then the cancel
    assert not comfy.model_management.processing_interrupted()  # consumed, as ComfyUI's own check does

    # With no progress hook installed (a script driving the node), the node still checks for the cancel itself.
    comfy.utils.set_progress_bar_global_hook(None)
    comfy.model_management.interrupt_current_processing()
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=8, scale=0)
    assert not comfy.model_management.processing_interrupted()


def test_the_node_runs_mdsr_at_any_of_its_scales(nodes: types.ModuleType, comfy: types.SimpleNamespace) -> None:
    descriptor = comfyui_load_upscale_model(shipped_file("mdsr_baseline"))
    image = torch.rand(1, 20, 17, 3)
    (sr4,) = run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=0, scale=0)
    (sr2,) = run_as_comfyui(
        nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=0, scale=2, precision="fp32"
    )
    assert sr4.shape == (1, 80, 68, 3) and sr2.shape == (1, 40, 34, 3)
    assert (sr2 - _one_pass(descriptor, image, scale=2)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="scale 5"):
        run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=0, scale=5)


def test_the_node_refuses_other_models_in_one_line(nodes: types.ModuleType, comfy: types.SimpleNamespace) -> None:
    other = types.SimpleNamespace(model=torch.nn.Identity(), scale=4, architecture=types.SimpleNamespace(name="ESRGAN"))
    with pytest.raises(
        ValueError, match=r"^this node runs EDSR and MDSR models; ESRGAN runs in Upscale Image \(using Model\)$"
    ):
        run_as_comfyui(nodes.EDSRUpscaleExact, upscale_model=other, image=torch.rand(1, 8, 8, 3), tile=0, scale=0)


def test_the_stand_in_reports_the_device_as_comfyui_does(
    nodes: types.ModuleType, comfy: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ComfyUI's get_torch_device: the CPU under --cpu, else the current CUDA device (cuda:N), not always the CPU."""
    assert comfy.model_management.get_torch_device() == torch.device("cpu")  # --cpu
    report_cuda(monkeypatch)  # a machine with one GPU
    comfy.model_management.set_cpu(False)
    assert comfy.model_management.get_torch_device() == torch.device("cuda", 0)


@pytest.mark.gpu
def test_the_node_runs_on_comfyuis_gpu(nodes: types.ModuleType, comfy: types.SimpleNamespace) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    comfy.model_management.set_cpu(False)
    assert comfy.model_management.get_torch_device().type == "cuda"
    descriptor = comfyui_load_upscale_model(shipped_file("edsr_baseline_x2"))
    image = torch.rand(1, 40, 53, 3)
    (sr,) = run_as_comfyui(
        nodes.EDSRUpscaleExact, upscale_model=descriptor, image=image, tile=16, scale=0, precision="fp32"
    )
    assert sr.device == image.device and next(descriptor.model.parameters()).device.type == "cpu"  # model not moved
    assert (sr - _one_pass(descriptor, image)).abs().max() <= 1e-3  # TF32 on the GPU
    assert comfy.progress and comfy.progress[-1][0] == comfy.progress[-1][1]


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
