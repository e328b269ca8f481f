"""The backends that compute the network: PyTorch, OpenVINO and ONNX Runtime, one module each behind one protocol.

:class:`edsr_lib.Upscaler` cuts an image into windows and batches them
(:mod:`edsr_lib.ops.tiling`); a backend only runs a batch of windows. Each backend is one
:class:`Backend` object in its own module (:mod:`~edsr_lib.backends.pytorch`,
:mod:`~edsr_lib.backends.openvino`, :mod:`~edsr_lib.backends.onnxruntime`), listed in
:mod:`~edsr_lib.backends.table`, which makes a :data:`Runner`: a callable that maps a float
``N x C x H x W`` batch in [0, 1] to the upscaled batch, as the PyTorch model does, so that
tiling, batching, alpha, gray, 16-bit, bad-input isolation and folder jobs stay the same
whichever backend computes the convolutions. The rest is one module per job: which
backend and precision run (:mod:`~edsr_lib.backends.choice`), the runtimes' exported files
and their cache (:mod:`~edsr_lib.backends.cache`), ``"auto"``'s measurement
(:mod:`~edsr_lib.backends.auto`), the machine (:mod:`~edsr_lib.backends.machine`), and what
is kept per model until its weights change (:mod:`~edsr_lib.backends.memo`).

Precisions: ``"fp32"`` everywhere; ``"bf16"`` in PyTorch (accelerators, CPUs with native
bf16) and through OpenVINO's inference precision hint, only on a CPU with native bfloat16
(:func:`edsr_lib._device.cpu_has_native_bf16`); ``"fp16"`` in PyTorch on accelerators;
``"int8"`` runs, through OpenVINO, an int8 model shipped for the model's weights
(:mod:`edsr_lib.weights.int8`), on an x86 CPU with AVX2. ONNX Runtime runs fp32 only.

The runtimes are optional extras: ``pip install "edsr-lib[openvino]"`` or ``"edsr-lib[onnx]"``.
"""

from __future__ import annotations

from .auto import auto_measurement, fastest_backend
from .base import Backend, BackendError, Runner
from .cache import EXPORT_TOLERANCE, FileBackend, RuntimeModel, cache_dir, int8_model, weights_sha256
from .choice import choose, default_precision, defaults, make_runner, resolve, resolve_backend
from .machine import CPUInfo, cpu_info, installed_runtimes, runtime_versions
from .pytorch import torch_runner
from .table import BACKENDS, PRECISIONS, RUNTIMES, get_backend, load_runtime

__all__ = [
    "BACKENDS",
    "EXPORT_TOLERANCE",
    "PRECISIONS",
    "RUNTIMES",
    "Backend",
    "BackendError",
    "CPUInfo",
    "FileBackend",
    "Runner",
    "RuntimeModel",
    "auto_measurement",
    "cache_dir",
    "choose",
    "cpu_info",
    "default_precision",
    "defaults",
    "fastest_backend",
    "get_backend",
    "installed_runtimes",
    "int8_model",
    "load_runtime",
    "make_runner",
    "resolve",
    "resolve_backend",
    "runtime_versions",
    "torch_runner",
    "weights_sha256",
]
