"""Which backend runs, in which precision: the checks of ``backend=`` and ``precision=``, and the runner they make.

:func:`resolve` checks a backend and a precision against the device and this machine once
(:class:`edsr_lib.Upscaler` calls it when it is made) and :func:`make_runner` builds the
:data:`~edsr_lib.backends.Runner` (for ``"auto"``, after :func:`~edsr_lib.backends.fastest_backend`
has measured the candidates once).
"""

from __future__ import annotations

import torch

from ..models import SRModel
from ..options import BACKENDS, PRECISIONS
from .auto import fastest_backend
from .base import BackendError, Runner
from .table import get_backend

__all__ = ["choose", "make_runner", "resolve", "resolve_backend"]


def resolve_backend(backend: str, precision: str = "fp32", device: torch.device | str = "cpu") -> str:
    """Check that ``backend`` can run ``precision`` on ``device``; returns it (``"auto"`` stays ``"auto"``).

    Args:
        backend: One of :data:`~edsr_lib.options.BACKENDS`.
        precision: One of :data:`~edsr_lib.options.PRECISIONS`.
        device: Where the computation runs; the runtimes run on the CPU.

    Raises:
        BackendError: For an unknown backend or precision, a runtime that is not installed,
            a runtime on another device than the CPU, a precision the backend does not run,
            bf16 on a CPU without native bf16, or int8 on a CPU without AVX2.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if backend == "auto" or (backend == "torch" and precision != "int8"):
        return backend  # half precision's rule on the device is resolve_half's
    get_backend(backend).check(precision, torch.device(device))
    return backend


def resolve(backend: str | None, precision: str | None, device: torch.device) -> tuple[str, str]:
    """The backend and precision that ``backend=`` and ``precision=`` ask for on ``device``, checked.

    ``None`` is the default: ``"torch"`` (``"openvino"`` for int8) and ``"fp32"``; int8
    with ``"auto"`` is OpenVINO (the only runtime that runs it); fp16 and ``"auto"`` is
    PyTorch, as is ``"auto"`` off the CPU.

    Raises:
        BackendError: As :func:`resolve_backend`.
    """
    precision = precision or "fp32"
    if precision == "int8":
        backend = "openvino" if backend in (None, "auto") else backend
    backend = backend or "torch"
    if backend == "auto" and (device.type != "cpu" or precision == "fp16"):
        backend = "torch"  # the runtimes run on the CPU, and fp16 only in PyTorch
    return resolve_backend(backend, precision, device), precision


def choose(
    backend: str | None,
    *,
    half: torch.dtype | None = None,
    int8: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[str, str]:
    """The backend and precision that :func:`edsr_lib.upscale`'s older ``half`` and ``int8`` ask for, checked.

    Returns:
        ``(backend, precision)`` as :func:`resolve`, except that fp16 is ``"fp32"`` here
        (the runtimes' precision: only PyTorch runs fp16, under autocast).
    """
    if int8 and half is not None:
        raise BackendError("int8 and half precision are two precisions; ask for one of them")
    precision = "int8" if int8 else {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(half, "fp32")
    backend, precision = resolve(backend, precision, torch.device(device))
    return backend, "fp32" if precision == "fp16" else precision


def make_runner(
    model: SRModel,
    scale: int,
    backend: str,
    precision: str,
    *,
    device: torch.device,
    channels_last: bool = True,
    compile: bool = False,
) -> tuple[Runner, str]:
    """The :data:`~edsr_lib.backends.Runner` of a resolved backend and precision (:func:`resolve`), and its backend.

    ``"auto"`` is the fastest of PyTorch and the installed runtimes on this CPU
    (:func:`~edsr_lib.backends.fastest_backend`, measured once and remembered), or PyTorch
    with ``compile``.

    Returns:
        The runner and the backend that runs it (never ``"auto"``).
    """
    pytorch = get_backend("torch")
    if backend == "auto":
        fast = pytorch.runner(model, scale, precision, device=device, channels_last=channels_last, compile=compile)
        if compile:
            return fast, "torch"
        backend = fastest_backend(model, scale, precision, fast)
        if backend == "torch":
            return fast, "torch"
    run = get_backend(backend).runner(
        model, scale, precision, device=device, channels_last=channels_last, compile=compile
    )
    return run, backend
