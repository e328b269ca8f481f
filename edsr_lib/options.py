"""The options of an :class:`~edsr_lib.Upscaler`, as one typed object: :class:`UpscaleOptions`.

Every surface that upscales (:func:`edsr_lib.upscale`, the command line, folder jobs,
video, Ray, the demo, the ComfyUI node) builds one :class:`UpscaleOptions` and hands it
to an :class:`~edsr_lib.Upscaler`; each option is defined here once, with its meaning,
its default and its check, and checked once, when the object is made. What needs the
machine (is the device there, is the runtime installed, does the CPU have bf16) is
resolved once too, by the :class:`~edsr_lib.Upscaler` that receives the options.

This module owns the choice lists that the command line offers (:data:`BACKENDS`,
:data:`PRECISIONS`, :data:`OUTPUT_FORMATS`, :data:`AMP_CHOICES`) and the library checks
against, and imports nothing, so that ``edsr-lib --help`` needs no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = [
    "AMP_CHOICES",
    "BACKENDS",
    "OUTPUT_FORMATS",
    "PRECISIONS",
    "RUNTIMES",
    "WRITE_FORMATS",
    "BackendError",
    "UpscaleOptions",
    "precision_of",
]

#: The runtimes that can stand in for PyTorch, and the pip extra that installs each.
RUNTIMES: dict[str, str] = {"openvino": "openvino", "onnxruntime": "onnx"}
#: What ``backend=`` takes: PyTorch, a runtime of :data:`RUNTIMES`, or ``"auto"`` (the fastest installed, measured).
BACKENDS: tuple[str, ...] = ("torch", *RUNTIMES, "auto")
#: What ``precision=`` takes: float32; bfloat16 (accelerators, CPUs with native bf16); float16
#: (accelerators); int8 (the int8 model shipped for the weights, in OpenVINO).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
#: Suffix -> Pillow format that :func:`edsr_lib.io.write_image` writes.
WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
#: The output formats, by their usual suffix (``edsr-lib upscale --format``): one per format of :data:`WRITE_FORMATS`.
OUTPUT_FORMATS: tuple[str, ...] = tuple(
    next(suffix[1:] for suffix, f in WRITE_FORMATS.items() if f == fmt) for fmt in dict.fromkeys(WRITE_FORMATS.values())
)
#: The precision settings of training (``TrainConfig.amp``, ``edsr-lib train --amp``).
AMP_CHOICES: tuple[str, ...] = ("auto", "none", "bf16", "fp16")


class BackendError(ValueError):
    """A backend or precision that cannot run here (runtime not installed, no native bf16, no int8 model, not a CPU)."""


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True, kw_only=True)
class UpscaleOptions:
    """How an :class:`~edsr_lib.Upscaler` upscales: every option, defined, documented and checked here once.

    Making the object checks every value on its own (a bad one raises :class:`ValueError`
    in one line naming the option); :class:`~edsr_lib.Upscaler` then resolves them against
    the model and the machine once. Use :func:`dataclasses.replace` (or
    :meth:`replace`) for a changed copy.

    Attributes:
        scale: The model scale to run; ``None`` for a single-scale model's only scale.
        outscale: Instead of ``scale``: any output factor above 1 (``1.5``, ``8``). The model
            runs the scales of :func:`edsr_lib.inference.plan_passes` (chained above its
            largest scale) and MATLAB bicubic shrinks the result to ``ceil(outscale * size)``.
        device: Where the model runs, any torch device (``"cuda:1"``, ``"mps"``) or
            ``"auto"``; ``None``: the device of the model's weights for a model object, the
            accelerator (else the CPU) for a model given by name or folder. The result stays
            where the image is.
        backend: What computes the network, one of :data:`BACKENDS`: ``"torch"`` (any
            device), ``"openvino"`` or ``"onnxruntime"`` (the CPU; exported once and
            cached, see :mod:`edsr_lib.backends`), ``"auto"`` (the fastest of them here,
            measured once and remembered). ``None``: ``"auto"`` when ``precision`` is also
            ``None`` (on an accelerator that is PyTorch), ``"openvino"`` for int8, else
            ``"torch"`` (:func:`edsr_lib.backends.defaults`).
        precision: One of :data:`PRECISIONS`: ``"fp32"``; ``"bf16"`` (accelerators, and CPUs
            with native bf16); ``"fp16"`` (accelerators; the last convolution stays fp32);
            ``"int8"`` (the int8 model shipped for the weights, OpenVINO on an x86 CPU with
            AVX2). ``None``: the fastest that keeps quality
            (:func:`edsr_lib.backends.default_precision`): bf16 on a CPU with native bf16,
            fp32 on other CPUs, half precision on an accelerator. ``"fp32"`` gives the exact
            float32 result.
        tile: Tile size in LR pixels; ``"auto"`` picks it and the batch from the memory
            budget (:mod:`edsr_lib.memory`) and runs a small image in one window; ``None``
            forces one pass per image. Tiling is exact: the same result as one pass.
        tile_overlap: Context around each tile in LR pixels; ``None``: the model's receptive
            radius, the least that is exact.
        self_ensemble: Average over the eight flips and rotations (eight times the work).
        wrap: Treat the image as periodic (a seamless texture): the model sees the image
            wrapped around at every border, so the output tiles seamlessly, exactly.
        batch_size: Most windows (or ensemble members, or same-size images) per forward pass.
        channels_last: Run PyTorch in ``channels_last`` memory format (faster on CPU).
        compile: Run a :func:`torch.compile` d PyTorch copy (the first call compiles).
        progress: ``True`` shows a progress bar over tiles when there are several batches.
            A function ``progress(done, total)`` is called instead with the windows done and
            their number in the pass (:data:`edsr_lib.ops.tiling.Progress`), before the first
            batch and after each (a chained ``outscale`` pass or an out-of-memory retry
            starts again from 0); what it raises stops the upscale and comes out unchanged,
            so it can also cancel (the ComfyUI node checks ComfyUI's cancel button there).
    """

    scale: int | None = None
    outscale: float | None = None
    device: torch.device | str | None = None
    backend: str | None = None
    precision: str | None = None
    tile: int | Literal["auto"] | None = "auto"
    tile_overlap: int | None = None
    self_ensemble: bool = False
    wrap: bool = False
    batch_size: int = 4
    channels_last: bool = True
    compile: bool = False
    progress: bool | Callable[[int, int], None] = False

    def __post_init__(self) -> None:
        if self.scale is not None and not _positive_int(self.scale):
            raise ValueError(f"scale must be a positive integer or None, got {self.scale!r}")
        if self.outscale is not None:
            if self.scale is not None:
                raise ValueError(f"give scale or outscale, not both (scale={self.scale}, outscale={self.outscale})")
            real = isinstance(self.outscale, int | float) and not isinstance(self.outscale, bool)
            if not real or not math.isfinite(self.outscale):
                raise ValueError(f"outscale must be a real number above 1, got {self.outscale!r}")
            if self.outscale <= 1:
                raise ValueError(f"outscale must be above 1 (to shrink, use edsr_lib.imresize), got {self.outscale!r}")
        if self.device is not None and not isinstance(self.device, str) and type(self.device).__name__ != "device":
            raise ValueError(f"device must be a torch device or its name, got {self.device!r}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.tile is not None and self.tile != "auto" and not _positive_int(self.tile):
            raise ValueError(f"tile must be a positive number of LR pixels, 'auto' or None, got {self.tile!r}")
        overlap = self.tile_overlap
        if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0):
            raise ValueError(f"tile_overlap must be a non-negative number of LR pixels or None, got {overlap!r}")
        if not _positive_int(self.batch_size):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        for name in ("self_ensemble", "wrap", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.progress, bool) and not callable(self.progress):
            raise ValueError(f"progress must be True, False or a function (done, total), got {self.progress!r}")
        if self.compile and self.backend in RUNTIMES:
            raise ValueError(f"compile=True compiles the PyTorch model; it does not apply to backend={self.backend!r}")

    def replace(self, **changes: Any) -> UpscaleOptions:
        """A copy with ``changes`` (checked like a new object)."""
        return dataclasses.replace(self, **changes)


def precision_of(half: bool | str | torch.dtype | None = False, int8: bool = False) -> str | None:
    """The ``precision`` that the older spellings ``half=`` and ``int8=`` of :func:`edsr_lib.upscale` ask for.

    Args:
        half: ``False``/``None`` (the default precision), ``True``, ``"fp16"``, ``"float16"`` or
            ``torch.float16`` (fp16), ``"bf16"``, ``"bfloat16"`` or ``torch.bfloat16`` (bf16).
        int8: Run the int8 model shipped for the weights.

    Raises:
        ValueError: For another ``half``.
        BackendError: For both half precision and int8.
    """
    if half is None or half is False:
        return "int8" if int8 else None
    name = {"True": "fp16", "fp16": "fp16", "float16": "fp16", "torch.float16": "fp16"}.get(str(half))
    name = name or {"bf16": "bf16", "bfloat16": "bf16", "torch.bfloat16": "bf16"}.get(str(half))
    if name is None:
        raise ValueError(f"half must be True (float16), 'fp16', 'bf16' or a half dtype, got {half!r}")
    if int8:
        raise BackendError("int8 and half precision are two precisions; ask for one of them")
    return name
