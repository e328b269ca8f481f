"""Run a model's forward pass in OpenVINO or ONNX Runtime instead of PyTorch: the runtimes behind ``backend=``.

:func:`edsr_lib.upscale` cuts an image into windows and batches them (:mod:`edsr_lib.ops.tiling`);
this module only runs a batch of windows. :func:`load_runtime` returns a :class:`RuntimeModel`,
a callable that maps a float ``N x C x H x W`` batch in [0, 1] to the upscaled batch, as the
PyTorch model does, so that tiling, batching, alpha, gray, 16-bit, bad-input isolation and
folder jobs stay the same whichever runtime computes the convolutions.

The model is exported once, with :func:`edsr_lib.export.export_onnx`, and the file kept in a
cache folder (:func:`cache_dir`) under a name made of the sha256 of the weights
(:func:`weights_sha256`), the scale, the precision of the file and the version of the
runtime and exporter; a later call, in this process or another, loads the file. A fresh
export is run once against PyTorch before it enters the cache (within
:data:`EXPORT_TOLERANCE`), so a broken export is never kept.

Precisions: ``"fp32"`` everywhere; ``"bf16"`` through OpenVINO's inference precision hint,
only on a CPU with native bfloat16 (:func:`edsr_lib._device.cpu_has_native_bf16`), refused
elsewhere. (OpenVINO's own default on such CPUs is bf16: this module always states the
precision, so ``"fp32"`` means fp32.) ``"int8"`` runs, through OpenVINO, an int8 model
shipped for the model's weights (:mod:`edsr_lib.weights.int8`: quantised by NNCF, measured
within 0.05 dB of fp32 and at least 1.3x faster), on an x86 CPU with AVX2; it is never
exported on the fly. ONNX Runtime runs fp32 only.

``backend="auto"`` (:func:`fastest_backend`) times every installed runtime and the PyTorch
fast path on the model's architecture on this machine, once, and remembers the winner in
``auto.json`` in the cache folder, keyed by the CPU, its flags, the thread count, the
runtime versions, the architecture, the scale and the precision.

The runtimes are optional extras: ``pip install "edsr-lib[openvino]"`` or ``"edsr-lib[onnx]"``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._device import cpu_has_native_bf16
from ._files import atomic_move, atomic_write
from ._version import __version__
from .export import INPUT_NAME, OUTPUT_NAME, export_onnx
from .models import SRModel
from .weights import int8 as shipped_int8

__all__ = [
    "BACKENDS",
    "EXPORT_TOLERANCE",
    "PRECISIONS",
    "RUNTIMES",
    "BackendError",
    "CPUInfo",
    "RuntimeModel",
    "auto_measurement",
    "cache_dir",
    "choose",
    "cpu_info",
    "fastest_backend",
    "installed_runtimes",
    "int8_model",
    "load_runtime",
    "resolve_backend",
    "runtime_versions",
    "weights_sha256",
]

#: The runtimes that can stand in for PyTorch, and the extra that installs each.
RUNTIMES: dict[str, str] = {"openvino": "openvino", "onnxruntime": "onnx"}
#: What ``backend=`` takes: PyTorch, a runtime, or ``"auto"`` (the fastest installed, measured).
BACKENDS = ("torch", *RUNTIMES, "auto")
#: The precisions a runtime model can have, and the runtimes that run each on a CPU.
PRECISIONS: dict[str, tuple[str, ...]] = {
    "fp32": ("openvino", "onnxruntime"),
    "bf16": ("openvino",),
    "int8": ("openvino",),
}
#: Largest difference on [0, 1] allowed between a fresh fp32 export and PyTorch before the file is cached.
EXPORT_TOLERANCE = 1e-4
#: Side of the square input on which ``"auto"`` times the candidates (LR pixels).
_AUTO_SIZE = 96
_AUTO_ROUNDS = 3
#: The choices of "auto" made or read in this process, by record file and key.
_decided: dict[tuple[Path, str], str] = {}


class BackendError(ValueError):
    """A backend or precision that cannot run here (runtime not installed, no native bf16, no int8 model, not a CPU)."""


# ---------------------------------------------------------------------------- the machine
@dataclass(frozen=True)
class CPUInfo:
    """The CPU's model name and the instruction-set extensions that decide which kernels run.

    Attributes:
        model: The model name (``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`).
        flags: ``"AVX2"``, ``"AVX-512"``, ``"AVX-512 BF16"``, ``"VNNI"`` (AVX-512 VNNI or AVX-VNNI)
            and ``"AMX"``, each ``True`` or ``False``.
    """

    model: str
    flags: dict[str, bool] = field(default_factory=dict)

    def __str__(self) -> str:
        present = [name for name, has in self.flags.items() if has]
        return f"{self.model} ({', '.join(present) or 'none of AVX2, AVX-512, VNNI, AMX'})"


#: Our name of each extension, and the Linux cpuinfo flags that stand for it.
_CPU_FLAGS = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "AVX-512 BF16": ("avx512_bf16",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "AMX": ("amx_tile",),
}


@functools.cache
def cpu_info() -> CPUInfo:
    """The CPU this process runs on, read from ``/proc/cpuinfo`` (Linux; elsewhere the model name only)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    return CPUInfo(model, {name: any(f in flags for f in names) for name, names in _CPU_FLAGS.items()})


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes of :data:`RUNTIMES` that can be imported here."""
    return tuple(name for name in RUNTIMES if importlib.util.find_spec(name) is not None)


def runtime_versions() -> dict[str, str]:
    """Versions of PyTorch (the exporter and the ``"torch"`` backend) and of each installed runtime."""
    versions = {"torch": torch.__version__}
    for name in installed_runtimes():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def cache_dir() -> Path:
    """The folder of exported runtime files: ``runtimes`` in ``$EDSR_LIB_CACHE``.

    Without that variable, ``$XDG_CACHE_HOME/edsr_lib``, else ``~/.cache/edsr_lib``, holds
    it. Deleting the folder is always safe: files are exported again when needed.
    """
    root = os.environ.get("EDSR_LIB_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edsr_lib"
    return Path(root) / "runtimes"


def weights_sha256(model: SRModel) -> str:
    """Hex sha256 of the model's architecture and weights: every tensor's name, dtype, shape and bytes.

    Two models with the same digest compute the same function, whichever file they came
    from; a weight changed in memory changes it.
    """
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# ---------------------------------------------------------------------------- choosing
def _require(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        raise BackendError(
            f'backend {backend!r} needs the {backend} package: pip install "edsr-lib[{RUNTIMES[backend]}]"'
        )


def resolve_backend(backend: str, precision: str = "fp32", device: torch.device | str = "cpu") -> str:
    """Check that ``backend`` can run ``precision`` on ``device``; returns it (``"auto"`` stays ``"auto"``).

    Args:
        backend: One of :data:`BACKENDS`.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        device: Where the computation runs; the runtimes run on the CPU.

    Raises:
        BackendError: For an unknown backend or precision, a runtime that is not installed,
            a runtime on another device than the CPU, a precision the runtime does not run,
            bf16 on a CPU without native bf16, or int8 on a CPU without AVX2.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "int8" and backend == "torch":
        raise BackendError("int8 runs with backend='openvino' (or 'auto'), not 'torch'")
    if backend in ("torch", "auto"):
        return backend
    if torch.device(device).type != "cpu":
        raise BackendError(f"backend {backend!r} runs on the CPU; device {device} was asked for (use backend='torch')")
    _require(backend)
    if backend not in PRECISIONS[precision]:
        runs = [b for b, _ in RUNTIMES.items() if b in PRECISIONS[precision]]
        raise BackendError(f"backend {backend!r} does not run {precision}; {precision} runs with torch or {runs[0]}")
    if precision == "bf16" and not cpu_has_native_bf16():
        raise BackendError(
            "bfloat16 needs a CPU with native bf16 (AVX-512 BF16 or AMX), which this CPU lacks; use fp32 here"
        )
    if precision == "int8" and not cpu_info().flags.get("AVX2"):
        raise BackendError(
            "int8 is offered on x86 CPUs with AVX2, where it was measured faster than fp32; this CPU has no AVX2"
        )
    return backend


def choose(
    backend: str | None,
    *,
    half: torch.dtype | None = None,
    int8: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[str, str]:
    """The backend and precision that :func:`edsr_lib.upscale`'s ``backend``, ``half`` and ``int8`` ask for, checked.

    Args:
        backend: One of :data:`BACKENDS`, or ``None``: ``"torch"``, and ``"openvino"`` for int8.
        half: The half-precision dtype (``torch.bfloat16`` or ``torch.float16``), or ``None``.
        int8: Run the int8 model shipped for the weights (OpenVINO; ``"auto"`` means OpenVINO).
        device: Where the computation runs.

    Returns:
        ``(backend, precision)``: the backend (``"auto"`` stays ``"auto"`` but for int8) and
        ``"fp32"``, ``"bf16"`` or ``"int8"``. float16 is ``"fp32"`` here: only PyTorch runs it.

    Raises:
        BackendError: As :func:`resolve_backend`; also for int8 with half precision, and
            float16 with a runtime.
    """
    if int8:
        if half is not None:
            raise BackendError("int8 and half precision are two precisions; ask for one of them")
        backend, precision = ("openvino" if backend in (None, "auto") else backend), "int8"
    else:
        backend, precision = backend or "torch", "bf16" if half == torch.bfloat16 else "fp32"
        if half == torch.float16 and backend not in ("torch", "auto"):
            raise BackendError(f"float16 runs with backend='torch' only, not {backend!r}")
    return resolve_backend(backend, precision, device), precision


# ---------------------------------------------------------------------------- running
class RuntimeModel:
    """A model at one scale compiled by a runtime: maps a float NCHW batch in [0, 1] to the upscaled batch.

    Built by :func:`load_runtime`. Calling it with a float tensor ``(N, C, H, W)`` on the CPU
    returns a float32 tensor ``(N, C, scale * H, scale * W)``, not clamped, like
    ``model(x, scale=scale)``; any batch size and image size is accepted.

    Attributes:
        backend: ``"openvino"`` or ``"onnxruntime"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        scale: The scale it computes.
        path: The cached file it was loaded from.
    """

    def __init__(
        self, backend: str, precision: str, scale: int, path: Path, run: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        self.backend, self.precision, self.scale, self.path = backend, precision, scale, path
        self._run = run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale a float ``(N, C, H, W)`` batch; see the class."""
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self._run(array))

    def __repr__(self) -> str:
        return (
            f"RuntimeModel(backend={self.backend!r}, precision={self.precision!r}, scale={self.scale}, "
            f"path={self.path})"
        )


def _threads() -> int:
    # the runtimes use as many threads as PyTorch, so torch.set_num_threads rules every backend
    return torch.get_num_threads()


def _openvino_runner(path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {
        # int8: the quantised operations run in int8 whatever the hint; the rest stays fp32
        hints.inference_precision: ov.Type.bf16 if precision == "bf16" else ov.Type.f32,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        props.inference_num_threads: _threads(),
    }
    compiled = ov.Core().compile_model(os.fspath(path), "CPU", config)
    local = threading.local()  # a request holds its buffers: one per thread, reused from call to call

    def run(x: np.ndarray) -> np.ndarray:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        request.infer({0: x}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


def _onnxruntime_runner(path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle threads sleep instead of spinning: between batches PyTorch (tiling, checks) needs the cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


_RUNNERS = {"openvino": _openvino_runner, "onnxruntime": _onnxruntime_runner}


def _file_stem(sha: str, scale: int, precision: str, backend: str) -> str:
    versions = runtime_versions()
    # the file depends on the weights, the scale, its own precision, the exporter and the runtime that converts it
    # (and, for OpenVINO, on the float32 marks of _keep_ends_float32: "f2")
    return (
        f"{sha[:24]}-x{scale}-{precision}-torch{versions['torch']}-{backend}{versions[backend]}-edsr_lib{__version__}"
        + ("-f2" if backend == "openvino" else "")
    )


def _export(model: SRModel, scale: int, backend: str, folder: Path, stem: str) -> Path:
    """Export the fp32 file of ``backend`` into the cache folder, atomically; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", scale, check=False)
        if backend == "onnxruntime":
            target = folder / f"{stem}.onnx"
            atomic_move(onnx_path, target)
            return target
        import openvino as ov

        converted = ov.convert_model(onnx_path)
        _keep_ends_float32(converted)
        ov.save_model(converted, Path(tmp) / "model.xml", compress_to_fp16=False)
        target = folder / f"{stem}.xml"
        # the weights first: an .xml in the cache always has its .bin
        for suffix in (".bin", ".xml"):
            atomic_move(Path(tmp) / f"model{suffix}", target.with_suffix(suffix))
        return target


def _keep_ends_float32(model: Any) -> None:  # an openvino.Model (openvino is optional)
    """Mark the ops from the input to the first convolution, and from the last one to the output, as float32.

    Under the bf16 inference hint, OpenVINO otherwise rounds them to bf16: the 8-bit input
    levels (``x - mean`` loses up to half a level) and the output mean held in the tail's
    bias (0.4488 becomes 0.4492), which made bf16 output 0.02-0.07 grey levels brighter than
    fp32 on average; marked, the mean difference is under 0.01 levels and the largest a
    third, for about 2% of the time (PyTorch's side: ``_float32_ends`` in
    :mod:`edsr_lib.inference`). The mark is OpenVINO's ``precise`` attribute (what
    ``disable_fp16_compression`` sets), which the CPU plugin honours for bf16 too when it
    reads it from the saved file. fp32 runs are unchanged.
    """

    def consumers(node: Any) -> list[Any]:
        return [i.get_node() for out in node.outputs() for i in out.get_target_inputs()]

    def producers(node: Any) -> list[Any]:
        return [i.get_source_output().get_node() for i in node.inputs()]

    for start, step in ((model.get_parameters(), consumers), (model.get_results(), producers)):
        seen, todo = set(), list(start)
        while todo:
            node = todo.pop()
            if node.get_type_name() == "Constant" or node.get_friendly_name() in seen:
                continue
            seen.add(node.get_friendly_name())
            node.get_rt_info()["precise_0"] = ""
            if node.get_type_name() != "Convolution":
                todo.extend(step(node))


def _max_error(runtime: RuntimeModel, model: SRModel, scale: int) -> float:
    x = torch.rand(2, model.n_colors, 23, 17, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(x.to(next(model.parameters()).device), scale=scale).cpu()
    got = runtime(x)
    return float("inf") if got.shape != expected.shape else float((got - expected).abs().max())


def load_runtime(
    model: SRModel, scale: int | None = None, backend: str = "openvino", precision: str = "fp32"
) -> RuntimeModel:
    """The model at ``scale`` compiled by ``backend``, exported on first use and cached on disk.

    Args:
        model: The model (not modified).
        scale: The scale; may be omitted for a single-scale model.
        backend: ``"openvino"`` or ``"onnxruntime"``.
        precision: ``"fp32"``, ``"bf16"`` (OpenVINO, on a CPU with native bf16) or ``"int8"``
            (OpenVINO, the int8 model shipped for these weights, :func:`int8_model`).

    Raises:
        BackendError: See :func:`resolve_backend`; also for ``"torch"`` and ``"auto"``,
            which are not runtimes, and for int8 where no int8 model is shipped for the
            model's weights at ``scale``.
        RuntimeError: If a fresh export differs from PyTorch by more than :data:`EXPORT_TOLERANCE`
            (nothing is cached then).
    """
    if backend not in RUNTIMES:
        raise BackendError(f"load_runtime needs one of {', '.join(RUNTIMES)}; got {backend!r}")
    resolve_backend(backend, precision)
    scale = model.resolve_scale(scale)
    if precision == "int8":
        xml = int8_model(model, scale).xml
        return RuntimeModel(backend, precision, scale, xml, _RUNNERS[backend](xml, precision))
    folder = cache_dir()
    stem = _file_stem(weights_sha256(model), scale, "fp32", backend)
    path = folder / (f"{stem}.xml" if backend == "openvino" else f"{stem}.onnx")
    if path.is_file():
        return RuntimeModel(backend, precision, scale, path, _RUNNERS[backend](path, precision))
    path = _export(model, scale, backend, folder, stem)
    # checked in fp32 whatever the precision asked, so that the file itself is known right
    check = RuntimeModel(backend, "fp32", scale, path, _RUNNERS[backend](path, "fp32"))
    error = _max_error(check, model, scale)
    if not error <= EXPORT_TOLERANCE:
        for suffix in (".onnx", ".xml", ".bin"):
            path.with_suffix(suffix).unlink(missing_ok=True)
        raise RuntimeError(
            f"the {backend} export differs from PyTorch by up to {error:.3g} (more than {EXPORT_TOLERANCE}); "
            "nothing was cached"
        )
    return (
        check
        if precision == "fp32"
        else RuntimeModel(backend, precision, scale, path, _RUNNERS[backend](path, precision))
    )


def int8_model(model: SRModel, scale: int | None = None) -> shipped_int8.Int8Model:
    """The int8 model shipped for ``model``'s weights at ``scale`` (found by :func:`weights_sha256`).

    Raises:
        BackendError: If none is shipped; the message names the models that have one.
    """
    scale = model.resolve_scale(scale)
    found = shipped_int8.find(weights_sha256(model), scale)
    if found is None:
        have = sorted({f"{m.record.source} x{m.record.scale}" for m in shipped_int8.shipped_models()})
        raise BackendError(
            f"int8 is offered only for weights whose int8 model was measured within "
            f"{shipped_int8.MAX_COST_DB} dB of fp32, and these weights at x{scale} have none; "
            f"int8 models: {', '.join(have) or 'none'}"
        )
    return found


# ---------------------------------------------------------------------------- "auto"
def _auto_key(model: SRModel, scale: int, precision: str) -> str:
    cpu = cpu_info()
    architecture = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode()).hexdigest()[:16]
    versions = ",".join(f"{k}={v}" for k, v in sorted(runtime_versions().items()))
    flags = ",".join(k for k, v in cpu.flags.items() if v)
    return f"{cpu.model}|{flags}|threads={_threads()}|{versions}|{architecture}|x{scale}|{precision}"


def auto_measurement(model: SRModel, scale: int | None, precision: str) -> dict | None:
    """What :func:`fastest_backend` recorded for this machine, architecture, scale and precision, if anything.

    Returns:
        ``{"backend": winner, "seconds": {backend: fastest round}}``, or ``None`` before the
        first measurement.
    """
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads((cache_dir() / "auto.json").read_text()).get(
            _auto_key(model, model.resolve_scale(scale), precision)
        )
        return entry if isinstance(entry, dict) else None
    return None


def fastest_backend(
    model: SRModel,
    scale: int | None,
    precision: str,
    torch_runner: Callable[[torch.Tensor], torch.Tensor],
) -> str:
    """The fastest backend for this model's architecture at ``scale`` and ``precision`` on this machine.

    The first time (for this CPU, thread count, runtime versions, architecture, scale and
    precision) it times ``torch_runner`` (the PyTorch fast path) and every installed
    runtime that runs ``precision`` (:func:`load_runtime`) on a 96 x 96 input, one warm-up
    and three rounds alternated, keeps the fastest round of each, and records the
    winner with the times in ``auto.json`` in :func:`cache_dir`; later calls read it.

    Args:
        model: The model.
        scale: The scale.
        precision: ``"fp32"`` or ``"bf16"``.
        torch_runner: The PyTorch path, a callable on a float NCHW batch.
    """
    scale = model.resolve_scale(scale)
    candidates = [b for b in installed_runtimes() if b in PRECISIONS[precision]]
    if not candidates:
        return "torch"
    key = _auto_key(model, scale, precision)
    record = cache_dir() / "auto.json"
    if (record, key) in _decided:
        return _decided[record, key]
    known: dict[str, dict] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(record.read_text())
    if isinstance(known.get(key), dict) and known[key].get("backend") in ("torch", *candidates):
        _decided[record, key] = known[key]["backend"]
        return _decided[record, key]
    runs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"torch": torch_runner}
    runs |= {b: load_runtime(model, scale, b, precision) for b in candidates}
    x = torch.rand(1, model.n_colors, _AUTO_SIZE, _AUTO_SIZE, generator=torch.Generator().manual_seed(0))
    best = dict.fromkeys(runs, float("inf"))
    for round_ in range(_AUTO_ROUNDS + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run(x)
            if round_:  # the first round warms up
                best[name] = min(best[name], time.perf_counter() - start)
    winner = min(best, key=best.__getitem__)
    known[key] = {"backend": winner, "seconds": {k: round(v, 5) for k, v in best.items()}}
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(known, indent=1, sort_keys=True).encode())
    _decided[record, key] = winner
    return winner
