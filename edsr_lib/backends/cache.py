"""The files the runtimes run: exported from the model once, checked against PyTorch, kept in a cache folder.

A runtime that computes the network from a file (OpenVINO, ONNX Runtime) is a
:class:`FileBackend`: it says how to turn an ONNX export into its own file and how to run
a file; this module does the rest, once for every runtime. The model is exported with
:func:`edsr_lib.export.export_onnx`, the file kept in :func:`cache_dir` under a name made
of the sha256 of the weights (:func:`weights_sha256`), the scale, the precision of the file
and the versions of the runtime and the exporter; a later call, in this process or
another, loads the file. A fresh export is run once against PyTorch before it enters the
cache (within :data:`EXPORT_TOLERANCE`), so a broken export is never kept. int8 is never
exported on the fly: it runs the model shipped for the weights (:func:`int8_model`).

The sha256 of each file is recorded beside it (``<name>.sha256.json``, written last) when the
export has passed that check, and checked whenever the file is loaded: a file changed since
(zeros written into it, truncated, replaced) or without its record is removed, exported again
and named in one warning, never run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from .._cache import part_dir
from .._files import atomic_move, atomic_write, sha256sum
from .._version import __version__
from ..export import export_onnx
from ..models import SRModel
from ..weights import int8 as shipped_int8
from .base import Backend, BackendError, Runner
from .machine import runtime_versions
from .memo import kept, weights_sha256

__all__ = ["EXPORT_TOLERANCE", "FileBackend", "RuntimeModel", "cache_dir", "cache_problem", "int8_model"]

#: Largest difference on [0, 1] allowed between a fresh fp32 export and PyTorch before the file is cached.
EXPORT_TOLERANCE = 1e-4


def cache_dir() -> Path:
    """The folder of exported runtime files: ``runtimes`` in the library's cache (:func:`edsr_lib._cache.cache_root`).

    That is ``$EDSR_LIB_CACHE``, else ``$XDG_CACHE_HOME/edsr_lib``, else ``~/.cache/edsr_lib``.
    Deleting the folder is always safe (``edsr-lib cache --clear runtimes``): files are
    exported again when needed.
    """
    return part_dir("runtimes")


def cache_problem() -> str | None:
    """Why the runtime cache (:func:`cache_dir`) cannot take a new file, in one line saying what to do, or ``None``."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError("not writable")
    except OSError as err:
        return (
            f"the runtime cache {folder} cannot be written ({err.strerror or err}): set EDSR_LIB_CACHE to a "
            "writable folder"
        )
    return None


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


class RuntimeModel:
    """A model at one scale compiled by a runtime: maps a float NCHW batch in [0, 1] to the upscaled batch.

    Built by :func:`edsr_lib.backends.load_runtime`. Calling it with a float tensor
    ``(N, C, H, W)`` on the CPU returns a float32 tensor ``(N, C, scale * H, scale * W)``,
    not clamped, like ``model(x, scale=scale)``; any batch size and image size is accepted.

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


class FileBackend(Backend):
    """A runtime that runs a file exported from the model: it converts an ONNX export and compiles a file.

    Subclasses set :attr:`suffix` and implement :meth:`save` and :meth:`compile`; exporting,
    checking, caching and the shipped int8 files are this class's.

    Attributes:
        suffix: The suffix of its file in the cache (``".xml"``, ``".onnx"``).
    """

    suffix: str = ""
    #: A mark of the file's own format, in its name: a new one when :meth:`save` changes what it writes.
    revision: str = ""

    def save(self, onnx_path: Path, folder: Path) -> Path:
        """Turn the ONNX file into this runtime's file(s) in ``folder`` (a temporary folder); returns the main file."""
        raise NotImplementedError

    def compile(self, path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        """The runtime's compiled ``path`` in ``precision``, as a function on float32 NCHW arrays."""
        raise NotImplementedError

    def _compiled(self, path: Path, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`compile`, with the runtime's own failure (a library it cannot map, no memory) as one line."""
        try:
            return self.compile(path, precision)
        except BackendError:
            raise
        except Exception as exc:  # each runtime raises its own kinds (RuntimeError, onnxruntime's Fail, MemoryError)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()
            raise BackendError(f"{self.name} cannot load {path.name} ({reason})") from None

    def files(self, path: Path) -> tuple[Path, ...]:
        """Every file that ``path`` consists of, the main file last (moved into the cache in that order)."""
        return (path,)

    def check(self, precision: str, device: torch.device) -> None:
        """See :meth:`~edsr_lib.backends.Backend.check`; a file it must export needs a writable cache."""
        super().check(precision, device)
        if precision != "int8" and (problem := cache_problem()) is not None:
            raise BackendError(f"backend {self.name!r}: {problem}")

    def runner(
        self,
        model: SRModel,
        scale: int,
        precision: str,
        *,
        device: torch.device,
        channels_last: bool = True,
        compile: bool = False,
    ) -> Runner:
        """:meth:`load`, kept per model until its weights change (``channels_last`` and ``compile`` are PyTorch's)."""

        def make() -> RuntimeModel:
            source = model
            if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in model.parameters()):
                source = copy.deepcopy(model).to("cpu", torch.float32)  # the runtimes export a float32 CPU model
            return self.load(source, scale, precision)

        return kept(model, ("runtime", self.name, scale, precision), make)

    def load(self, model: SRModel, scale: int, precision: str) -> RuntimeModel:
        """The model at ``scale`` compiled in ``precision``: the cached file, else a fresh export, checked.

        Raises:
            BackendError: For int8 where no int8 model is shipped for the model's weights at ``scale``.
            RuntimeError: If a fresh export differs from PyTorch by more than :data:`EXPORT_TOLERANCE`
                (nothing is cached then).
        """
        if precision == "int8":
            xml = int8_model(model, scale).xml
            return RuntimeModel(self.name, precision, scale, xml, self._compiled(xml, precision))
        folder = cache_dir()
        path = folder / f"{self._stem(weights_sha256(model), scale)}{self.suffix}"
        if path.is_file() or _record(path).is_file():
            damaged = self._damaged(path)
            if damaged is None:
                return RuntimeModel(self.name, precision, scale, path, self._compiled(path, precision))
            for file in (*self.files(path), _record(path)):
                file.unlink(missing_ok=True)
            warnings.warn(
                f"the cached {self.name} file {damaged} was damaged (it is not the file exported and checked); "
                "removed, and exported again",
                RuntimeWarning,
                stacklevel=2,
            )
        path = self._export(model, scale, path)
        # checked in fp32 whatever the precision asked, so that the file itself is known right
        check = RuntimeModel(self.name, "fp32", scale, path, self._compiled(path, "fp32"))
        error = _max_error(check, model, scale)
        if not error <= EXPORT_TOLERANCE:
            for file in self.files(path):
                file.unlink(missing_ok=True)
            raise RuntimeError(
                f"the {self.name} export differs from PyTorch by up to {error:.3g} (more than {EXPORT_TOLERANCE}); "
                "nothing was cached"
            )
        # the record last: a file is trusted only once it has passed the check
        digests = {file.name: sha256sum(file) for file in self.files(path)}
        atomic_write(_record(path), json.dumps(digests, indent=1, sort_keys=True).encode())
        if precision == "fp32":
            return check
        return RuntimeModel(self.name, precision, scale, path, self._compiled(path, precision))

    def _damaged(self, path: Path) -> Path | None:
        """The first of ``path``'s files missing or unlike the digest recorded at export, else ``None``."""
        try:
            recorded = json.loads(_record(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict):
            return _record(path)
        for file in self.files(path):
            if not file.is_file() or recorded.get(file.name) != sha256sum(file):
                return file
        return None

    def _stem(self, sha: str, scale: int) -> str:
        versions = runtime_versions()
        # the file depends on the weights, the scale, its own precision, the exporter and the runtime that converts it
        return (
            f"{sha[:24]}-x{scale}-fp32-torch{versions['torch']}-{self.name}{versions[self.name]}-edsr_lib{__version__}"
            + (f"-{self.revision}" if self.revision else "")
        )

    def _export(self, model: SRModel, scale: int, target: Path) -> Path:
        """Export the fp32 file into the cache folder, atomically (the main file last); returns ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
            onnx_path = _onnx_export(model, scale, Path(tmp) / "model.onnx")
            made = self.save(onnx_path, Path(tmp))
            for file in self.files(made):
                atomic_move(file, target.with_suffix(file.suffix))
        return target


#: While :func:`one_export` is open: the ONNX export made in it (weights digest, scale, bytes), for every runtime.
_shared: list[list[tuple[str, int, bytes]]] = []


@contextlib.contextmanager
def one_export() -> Iterator[None]:
    """Within it, the runtimes exporting the same weights at the same scale convert one ONNX export ("auto")."""
    _shared.append([])
    try:
        yield
    finally:
        _shared.pop()


def _onnx_export(model: SRModel, scale: int, path: Path) -> Path:
    """:func:`~edsr_lib.export.export_onnx` of the fp32 model to ``path`` (within :func:`one_export`, made once)."""
    key = (weights_sha256(model), scale)
    made = _shared[-1] if _shared else []
    for sha, made_scale, data in made:
        if (sha, made_scale) == key:
            path.write_bytes(data)
            return path
    try:  # PyTorch's TorchScript exporter: a first run's export in a fraction of a second, not ten
        export_onnx(model, path, scale, check=False, exporter="torchscript")
    except (RuntimeError, TypeError, AttributeError, NotImplementedError, ImportError):  # a PyTorch without it
        export_onnx(model, path, scale, check=False)
    if _shared:
        made.append((*key, path.read_bytes()))
    return path


def _record(path: Path) -> Path:
    """The file beside a cached file that records the sha256 of its files, taken when the export was checked."""
    return path.with_name(f"{path.stem}.sha256.json")


def _max_error(runtime: RuntimeModel, model: SRModel, scale: int) -> float:
    x = torch.rand(2, model.n_colors, 23, 17, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(x.to(next(model.parameters()).device), scale=scale).cpu()
    got = runtime(x)
    return float("inf") if got.shape != expected.shape else float((got - expected).abs().max())
