"""The runtimes behind ``backend=``: OpenVINO and ONNX Runtime models, their disk cache, precisions and "auto"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from runtimes import RUNTIMES, private_cache

import edsr_lib
from edsr_lib import backends
from edsr_lib.backends import BackendError, fastest_backend, load_runtime, resolve_backend, weights_sha256
from edsr_lib.inference import cpu_has_native_bf16

cache = pytest.fixture(scope="module", name="cache")(private_cache)


@pytest.fixture(scope="module")
def tiny() -> edsr_lib.EDSR:
    torch.manual_seed(0)
    return edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).eval()


@pytest.mark.parametrize("backend", RUNTIMES)
def test_fp32_runtime_matches_pytorch(backend: str, tiny: edsr_lib.EDSR, cache: Path) -> None:
    runtime = load_runtime(tiny, 2, backend)
    assert runtime.path.parent == cache and runtime.path.is_file()
    for shape in ((1, 3, 24, 31), (3, 3, 17, 9)):  # any batch and size
        x = torch.rand(shape)
        with torch.inference_mode():
            expected = tiny(x)
        got = runtime(x)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("backend", RUNTIMES)
def test_exported_once_then_loaded_from_the_cache(
    backend: str, tiny: edsr_lib.EDSR, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_runtime(tiny, 2, backend)
    monkeypatch.setattr(backends.cache, "export_onnx", lambda *a, **k: pytest.fail("exported again"))
    assert load_runtime(tiny, 2, backend).path == first.path
    torch.manual_seed(1)
    changed = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8).eval()
    assert weights_sha256(changed) != weights_sha256(tiny)
    with pytest.raises(pytest.fail.Exception, match="exported again"):
        load_runtime(changed, 2, backend)  # other weights: another file


def test_the_key_holds_weights_scale_precision_and_versions(tiny: edsr_lib.EDSR, cache: Path) -> None:
    mdsr = edsr_lib.create_model("mdsr_baseline", n_resblocks=1, n_feats=8)
    sha = weights_sha256(mdsr)
    runtime = load_runtime(mdsr, 3, backends.installed_runtimes()[0]) if backends.installed_runtimes() else None
    if runtime is None:
        pytest.skip("needs a runtime")
    name = runtime.path.name
    versions = backends.runtime_versions()
    assert name.startswith(sha[:24]) and "-x3-" in name and "-fp32-" in name
    assert versions[runtime.backend] in name and versions["torch"] in name
    with torch.no_grad():
        mdsr.head.weight.add_(1.0)  # a weight changed in memory changes the key
    assert weights_sha256(mdsr) != sha


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_wrong_export_is_refused_and_not_cached(backend: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = edsr_lib.create_model("edsr_baseline_x3", n_resblocks=1, n_feats=8).eval()
    runtime = backends.get_backend(backend)
    right = runtime.compile
    monkeypatch.setattr(runtime, "compile", lambda path, precision: lambda x: right(path, precision)(x) + 0.01)
    with pytest.raises(RuntimeError, match="nothing was cached"):
        load_runtime(model, 3, backend)
    assert not any(p.name.startswith(weights_sha256(model)[:24]) for p in cache.iterdir())


def test_bf16_through_openvino_only_where_the_cpu_has_it(
    tiny: edsr_lib.EDSR, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    with pytest.raises(BackendError, match="onnxruntime' does not run bf16"):
        resolve_backend("onnxruntime", "bf16")
    monkeypatch.setattr(backends.openvino, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(BackendError, match="native bf16"):
        load_runtime(tiny, 2, "openvino", "bf16")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")
def test_bf16_through_openvino_is_rounded_and_close(tiny: edsr_lib.EDSR, cache: Path) -> None:
    pytest.importorskip("openvino")
    runtime = load_runtime(tiny, 2, "openvino", "bf16")
    x = torch.rand(1, 3, 20, 20)
    with torch.inference_mode():
        expected = tiny(x)
    error = (runtime(x) - expected).abs().max().item()
    # rounded to bf16 inside (not fp32), and close: 2.4e-3 to 2.8e-3 measured on [0, 1] (Zen 4, four seeds)
    assert 0 < error < 6e-3


def test_backend_names_devices_and_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendError, match="backend must be one of torch, openvino, onnxruntime, auto"):
        resolve_backend("tensorrt")
    with pytest.raises(BackendError, match="precision must be one of"):
        resolve_backend("openvino", "fp8")
    with pytest.raises(BackendError, match="'openvino' does not run fp16"):
        resolve_backend("openvino", "fp16")
    with pytest.raises(BackendError, match="runs on the CPU"):
        resolve_backend("openvino", device="cuda")
    assert resolve_backend("auto", device="cuda") == "auto" and resolve_backend("torch", "bf16") == "torch"
    monkeypatch.setattr(backends.machine.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match=r'pip install "edsr-lib\[openvino\]"'):
        resolve_backend("openvino")
    with pytest.raises(BackendError, match=r'pip install "edsr-lib\[onnx\]"'):
        resolve_backend("onnxruntime")


def test_auto_measures_once_and_remembers(tiny: edsr_lib.EDSR, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not backends.installed_runtimes():
        pytest.skip("needs a runtime")
    calls = []

    def torch_path(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        with torch.inference_mode():
            return tiny(x)

    winner = fastest_backend(tiny, 2, "fp32", torch_path)
    assert winner in ("torch", *backends.installed_runtimes())
    assert len(calls) == 4  # one warm-up and three timed rounds
    record = json.loads((cache / "auto.json").read_text())
    (entry,) = [v for k, v in record.items() if k.endswith("|x2|fp32")]
    assert backends.auto_measurement(tiny, 2, "fp32") == entry
    assert backends.auto_measurement(tiny, 2, "bf16") is None
    assert entry["backend"] == winner and set(entry["seconds"]) == {"torch", *backends.installed_runtimes()}
    monkeypatch.setattr(backends.auto, "load_runtime", lambda *a, **k: pytest.fail("measured again"))
    assert fastest_backend(tiny, 2, "fp32", torch_path) == winner
    monkeypatch.setattr(backends.auto, "decided", {})  # another process: reads auto.json
    assert fastest_backend(tiny, 2, "fp32", torch_path) == winner
    assert len(calls) == 4


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_runtime_that_cannot_load_says_so_in_one_line(
    backend: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = edsr_lib.create_model("edsr_baseline_x4", n_resblocks=1, n_feats=8).eval()

    def unmappable(path: Path, precision: str) -> None:
        raise RuntimeError("Exception from core.cpp:132:\nCannot load library libcpu.so: failed to map segment")

    monkeypatch.setattr(backends.get_backend(backend), "compile", unmappable)
    with pytest.raises(BackendError, match=f"^{backend} cannot load .*failed to map segment\\)$") as caught:
        load_runtime(model, 4, backend)
    assert "\n" not in str(caught.value)


def test_auto_leaves_out_a_runtime_that_fails_here_and_does_not_remember(
    tiny: edsr_lib.EDSR, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not backends.installed_runtimes():
        pytest.skip("needs a runtime")
    broken = backends.installed_runtimes()[0]
    real = backends.auto.load_runtime

    def load(model: edsr_lib.EDSR, scale: int, backend: str, precision: str) -> object:
        if backend == broken:
            raise MemoryError()
        return real(model, scale, backend, precision)

    monkeypatch.setattr(backends.auto, "load_runtime", load)
    monkeypatch.setattr(backends.auto, "decided", {})
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=4).eval()
    with pytest.warns(RuntimeWarning, match=f"backend 'auto' leaves out {broken}"):
        winner = fastest_backend(model, 2, "fp32", lambda x: model(x).detach())
    assert winner != broken
    assert backends.auto_measurement(model, 2, "fp32") is None  # measured again next time


def test_auto_exports_once_for_every_runtime(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if len(backends.installed_runtimes()) < 2:
        pytest.skip("needs two runtimes")
    real, exports = backends.cache.export_onnx, []
    monkeypatch.setattr(backends.cache, "export_onnx", lambda *a, **k: exports.append(a) or real(*a, **k))
    monkeypatch.setattr(backends.auto, "decided", {})
    torch.manual_seed(5)
    model = edsr_lib.create_model("edsr_baseline_x3", n_resblocks=1, n_feats=4).eval()
    fastest_backend(model, 3, "fp32", lambda x: model(x).detach())
    assert len(exports) == 1  # one ONNX export, converted by each runtime
    assert backends.auto_measurement(model, 3, "fp32")["backend"] in ("torch", *backends.installed_runtimes())
    torch.manual_seed(6)
    other = edsr_lib.create_model("edsr_baseline_x3", n_resblocks=1, n_feats=4).eval()
    load_runtime(other, 3, backends.installed_runtimes()[0])
    load_runtime(other, 3, backends.installed_runtimes()[1])
    assert len(exports) == 3  # outside auto's measurement, nothing is kept


def test_the_cache_exports_with_the_quick_exporter_and_falls_back(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not backends.installed_runtimes():
        pytest.skip("needs a runtime")
    real, exporters = backends.cache.export_onnx, []

    def export(*args: object, exporter: str = "dynamo", **kwargs: object) -> Path:
        exporters.append(exporter)
        if exporter == "torchscript" and len(exporters) > 1:
            raise RuntimeError("this PyTorch has no TorchScript exporter")  # a later PyTorch, say
        return real(*args, exporter=exporter, **kwargs)

    monkeypatch.setattr(backends.cache, "export_onnx", export)
    for seed in (7, 8):
        torch.manual_seed(seed)
        model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=4).eval()
        load_runtime(model, 2, backends.installed_runtimes()[0])  # checked against PyTorch either way
    assert exporters == ["torchscript", "torchscript", "dynamo"]


def test_auto_is_torch_without_runtimes(tiny: edsr_lib.EDSR, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends.auto, "installed_runtimes", lambda: ())
    assert fastest_backend(tiny, 2, "fp32", lambda x: pytest.fail("nothing to compare")) == "torch"


def test_cpu_info_names_the_flags() -> None:
    info = backends.cpu_info()
    assert info.model and set(info.flags) == {"AVX2", "AVX-512", "AVX-512 BF16", "VNNI", "AMX"}
    assert info.model in str(info)
