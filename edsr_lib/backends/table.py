"""The table of backends: every backend the library ships, listed here (not registered by importing a module).

A new runtime is a module beside this one (a :class:`~edsr_lib.backends.Backend`, or a
:class:`~edsr_lib.backends.cache.FileBackend` for a runtime that runs an exported file) and
one entry in :data:`_TABLE`; its name goes into :data:`edsr_lib.options.BACKENDS`
(and :data:`edsr_lib.options.RUNTIMES` with its extra), which the command line offers.
"""

from __future__ import annotations

import torch

from ..models import SRModel
from ..options import BACKENDS, PRECISIONS, RUNTIMES
from .base import Backend, BackendError
from .cache import FileBackend, RuntimeModel
from .onnxruntime import ONNXRuntimeBackend
from .openvino import OpenVINOBackend
from .pytorch import PyTorchBackend

__all__ = ["BACKENDS", "PRECISIONS", "RUNTIMES", "get_backend", "load_runtime"]

#: Every backend, by name, in the order of :data:`BACKENDS` (a test keeps the two equal).
_TABLE: dict[str, Backend] = {b.name: b for b in (PyTorchBackend(), OpenVINOBackend(), ONNXRuntimeBackend())}


def get_backend(name: str) -> Backend:
    """The :class:`~edsr_lib.backends.Backend` object of a backend name (``"auto"`` is a choice, not a backend).

    Raises:
        BackendError: For an unknown name.
    """
    if name not in _TABLE:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    return _TABLE[name]


def load_runtime(
    model: SRModel, scale: int | None = None, backend: str = "openvino", precision: str = "fp32"
) -> RuntimeModel:
    """The model at ``scale`` compiled by the runtime ``backend``, exported on first use and cached on disk.

    Args:
        model: The model (not modified).
        scale: The scale; may be omitted for a single-scale model.
        backend: A runtime of :data:`RUNTIMES` (``"openvino"``, ``"onnxruntime"``).
        precision: ``"fp32"``, ``"bf16"`` (OpenVINO, on a CPU with native bf16) or ``"int8"``
            (OpenVINO, the int8 model shipped for these weights,
            :func:`~edsr_lib.backends.int8_model`).

    Raises:
        BackendError: See :meth:`~edsr_lib.backends.Backend.check`; also for ``"torch"`` and
            ``"auto"``, which are not runtimes, and for int8 where no int8 model is shipped for
            the model's weights at ``scale``.
        RuntimeError: If a fresh export differs from PyTorch by more than
            :data:`~edsr_lib.backends.EXPORT_TOLERANCE` (nothing is cached then).
    """
    runtime = _TABLE.get(backend)
    if not isinstance(runtime, FileBackend):
        raise BackendError(f"load_runtime needs one of {', '.join(RUNTIMES)}; got {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    runtime.check(precision, torch.device("cpu"))
    return runtime.load(model, model.resolve_scale(scale), precision)
