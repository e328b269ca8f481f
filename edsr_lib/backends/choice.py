"""Which backend runs, in which precision: the checks of ``backend=`` and ``precision=``, and the runner they make.

:func:`resolve` checks a backend and a precision against the device and this machine once
(:class:`edsr_lib.Upscaler` calls it when it is made) and :func:`make_runner` builds the
:data:`~edsr_lib.backends.Runner` (for ``"auto"``, after :func:`~edsr_lib.backends.fastest_backend`
has measured the candidates once).
"""

from __future__ import annotations

import torch

from .._device import cpu_has_native_bf16
from ..models import SRModel
from ..options import BACKENDS, PRECISIONS
from .auto import fastest_backend
from .base import BackendError, Runner
from .table import get_backend

__all__ = ["choose", "default_precision", "defaults", "make_runner", "resolve", "resolve_backend"]


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


def default_precision(device: torch.device) -> str:
    """The precision an :class:`~edsr_lib.Upscaler` runs when none is asked: the fastest that keeps quality.

    On a CPU, ``"bf16"`` where it computes bfloat16 natively
    (:func:`~edsr_lib.inference.cpu_has_native_bf16`: AVX-512 BF16 or AMX), measured 1.9-2.6x
    faster than fp32 and within 0.01 dB of it on Set5, Set14 and B100, its mean level within
    0.01 grey levels of fp32's; ``"fp32"`` elsewhere (emulated bf16 is slower than fp32). On
    CUDA, half precision as Real-ESRGAN and chaiNNer run it: ``"bf16"`` on a GPU that has it
    (no float16 overflow), else ``"fp16"``; ``"fp16"`` on the other accelerators. In half
    precision the input mean shift, head and tail run in float32. ``precision="fp32"`` gives
    the exact float32 result; int8 is never a default.
    """
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp16"


def defaults(backend: str | None, precision: str | None, device: torch.device) -> tuple[str | None, str]:
    """``backend=`` and ``precision=`` with the fast defaults filled in: what :class:`~edsr_lib.Upscaler` runs.

    With neither asked, the precision is :func:`default_precision` and the backend ``"auto"``
    (the fastest installed backend on this CPU, measured once and remembered,
    :func:`~edsr_lib.backends.fastest_backend`; PyTorch on an accelerator). A backend named
    that does not run the default precision gets fp32. A precision asked for
    (``precision="fp32"``, ``--fp32``) keeps ``backend=None``, which :func:`resolve` makes
    PyTorch: the exact result.
    """
    if precision is not None:
        return backend, precision  # a precision asked for: PyTorch unless a backend is asked for too
    precision = default_precision(device)
    if backend not in (None, "auto") and precision not in get_backend(backend).precisions:
        precision = "fp32"  # a backend asked for by name that does not run the default (ONNX Runtime and bf16)
    return backend or "auto", precision


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
