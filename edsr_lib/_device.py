"""Devices and arithmetic precision: the one owner of how a device name or a precision name is read.

Inference (:func:`edsr_lib.upscale`, the ``upscale`` and ``evaluate`` commands, Ray) and
training (:class:`edsr_lib.train.Trainer`) both read a device and a precision from the
user; both go through this module, so that ``"cuda:1"``, ``"mps"`` or ``"bf16"`` mean
the same everywhere and are refused with the same message where they cannot run.
:mod:`edsr_lib.inference` re-exports the inference names (``resolve_device``,
``resolve_half``, ``cpu_has_native_bf16``). It imports only torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .options import AMP_CHOICES  # the names --amp offers, owned where --help reads them

__all__ = [
    "AMP_CHOICES",
    "amp_dtype",
    "cpu_has_native_bf16",
    "full_float32",
    "resolve_amp",
    "resolve_device",
    "resolve_half",
    "uses_tf32",
]


#: Names of the half-precision dtypes, as the options and ``half=`` take them.
_HALF_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """The device to run on: ``device`` checked to exist, or by default the accelerator if any, else the CPU.

    Any torch device string works (``"cuda:1"``, ``"mps"``, ``"xpu"``); ``None`` and
    ``"auto"`` pick the current accelerator (:mod:`torch.accelerator`), else the CPU. A
    device whose backend is not available, or whose index is past the device count, is
    refused.

    Raises:
        ValueError: If ``device`` is not a device name, or that device is not available.
    """
    if device is None or device == "auto":
        accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
        return accelerator or torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{str(device)!r} is not a torch device ({exc})") from None
    if device.type in ("cpu", "meta"):
        return device
    backend = getattr(torch, device.type, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        backend_name = {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU"}.get(device.type, device.type)
        raise ValueError(
            f"device {device} was asked for, but {backend_name} is not available here "
            f"(torch.{device.type}.is_available() is false)"
        )
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if device.index is not None and device.index >= count:
        raise ValueError(f"device {device} does not exist: this machine has {count} {device.type} device(s)")
    if device.index is None and hasattr(backend, "current_device"):
        device = torch.device(device.type, backend.current_device())
    return device


def bind_local_gpu(device: torch.device | str | None = "auto") -> int | None:
    """Under ``torchrun``, make this process's GPU (``LOCAL_RANK``) the current CUDA device.

    Call it first, before anything touches CUDA: otherwise every process of the machine
    creates its first CUDA context (hundreds of MB) on GPU 0, whichever GPU it works on.
    A single process, a run that is not on CUDA, or one that names its GPU (``"cuda:1"``)
    is left alone. The trainer and the folder engine both call it.

    Args:
        device: The run's device setting (``None`` or ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"cpu"``...).

    Returns:
        The GPU index made current, or ``None``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "LOCAL_RANK" not in os.environ:
        return None
    # torch.device(...) only parses: resolve_device would ask CUDA for its current device, i.e. open GPU 0
    try:
        wanted = None if device in (None, "auto") else torch.device(device)
    except (RuntimeError, ValueError):
        return None  # the caller names the bad device
    if (wanted is not None and (wanted.type != "cuda" or wanted.index is not None)) or not torch.cuda.is_available():
        return None
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    return local_rank


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX-512 BF16 or AMX; on ARM, the BF16 extension).

    This is what oneDNN reports (``torch.ops.mkldnn._is_mkldnn_bf16_supported``); elsewhere
    bfloat16 is emulated and slower than float32.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_half(half: bool | str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that ``half`` asks for on ``device`` for inference, or ``None`` for float32.

    Args:
        half: ``False`` or ``None``; ``True`` or ``"fp16"`` (float16); ``"bf16"``
            (bfloat16); or a dtype.
        device: Where the model runs.

    Raises:
        ValueError: For another value, float16 on a CPU, or bfloat16 on a CPU without
            native bf16 (:func:`cpu_has_native_bf16`).
    """
    if half is False or half is None:
        return None
    dtype = torch.float16 if half is True else _HALF_DTYPES.get(half, half) if isinstance(half, str) else half
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"half must be True (float16), 'fp16', 'bf16' or a half dtype, got {half!r}")
    if device.type == "cpu":
        if dtype == torch.float16:
            raise ValueError("float16 runs on CUDA (or another accelerator) only; on a CPU use half='bf16'")
        if not cpu_has_native_bf16():
            raise ValueError(
                "bfloat16 on a CPU needs native bf16 support (AVX-512 BF16 or AMX), which this CPU lacks; "
                "use float32 here (half=False), or bf16 on CUDA"
            )
    return dtype


def resolve_amp(amp: str, device_type: str, bf16_supported: bool | None = None) -> str:
    """The autocast precision a training run uses: ``"bf16"``, ``"fp16"`` or ``"none"``.

    ``"auto"`` is bfloat16 on a CUDA GPU that has it, float16 on one that does not, and
    float32 elsewhere (on the CPU, bfloat16 training is a choice: ``"bf16"``).

    Args:
        amp: The setting, one of :data:`AMP_CHOICES`.
        device_type: The device type of the run (``"cuda"``, ``"cpu"``, ...).
        bf16_supported: Whether the GPU has bfloat16; by default asked of CUDA.

    Raises:
        ValueError: For another setting, or fp16 off CUDA.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp == "fp16" and device_type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; use amp='bf16' or 'none' on the CPU")
    if amp != "auto":
        return amp
    if device_type != "cuda":
        return "none"
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16" if bf16_supported else "fp16"


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (:func:`resolve_amp`): ``None`` for ``"none"``."""
    if amp == "none":
        return None
    return _HALF_DTYPES[amp]


def uses_tf32(device: torch.device | str) -> bool:
    """Whether float32 convolutions on ``device`` run in TF32 (10-bit mantissa) rather than full float32.

    True on CUDA while cuDNN's TF32 is allowed (PyTorch's default, used by the GPUs that
    have it: Ampere and later); a float32 result there differs from a CPU one by about 1e-3.
    """
    return torch.device(device).type == "cuda" and bool(torch.backends.cudnn.allow_tf32)


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for CUDA convolutions and matrix products inside the block (the settings are restored after).

    For checks that compare two float32 computations (a CPU and a CUDA one, PyTorch and
    ONNX): under TF32 they differ by about 1e-3, which would hide or fake a real difference.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
