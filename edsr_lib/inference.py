"""Upscale images with a model: exact tiling, self-ensemble and the fast inference path.

:func:`upscale` is the one function that the command line, the evaluator and the
examples use. Every call runs under :func:`torch.inference_mode` on a fused copy of the
model (``res_scale`` and the mean shifts folded into convolutions) in ``channels_last``
memory format; the copy is cached per model and rebuilt when the model's weights change.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import math
import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import backends
from ._device import cpu_has_native_bf16, resolve_device, resolve_half
from .hub import resolve_weights
from .io import array_to_image, carry_metadata, image_to_array, to_tensor
from .models import SRModel
from .ops import ensemble
from .ops.color import round_half_away
from .ops.imresize import imresize
from .ops.tiling import tiled_apply

__all__ = [
    "NonFiniteError",
    "Runner",
    "activation_bytes_per_pixel",
    "auto_tile_size",
    "available_memory",
    "check_finite_weights",
    "cpu_has_native_bf16",
    "load_model",
    "memory_budget",
    "plan_passes",
    "resolve_device",
    "resolve_half",
    "torch_runner",
    "upscale",
]

ImageT = TypeVar("ImageT", torch.Tensor, np.ndarray, Image.Image)

#: The seam between the run loop and the network: a float32 batch of windows ``(B, C, h, w)`` in
#: [0, 1] to the model's float32 output ``(B, C, scale * h, scale * w)``.
Runner = Callable[[torch.Tensor], torch.Tensor]

#: Measured peak activation memory of EDSR-baseline windows on CPU (x2, x3, x4) is
#: 1.02-1.17 times the live-tensor count of :func:`activation_bytes_per_pixel`; the factor
#: covers that, allocator fragmentation and convolution workspaces.
_SAFETY_FACTOR = 1.5
#: What "auto" plans for activations on a CPU, whatever the machine has free (see
#: :func:`memory_budget`). EDSR-baseline tiles are then 485 (x2), 311 (x3) and 219 (x4) LR
#: pixels; a 2000x2000 image costs 1.24x (x2) to 1.8x (x3) the one-pass work in recomputed
#: overlap, and x4 peaks at 1.9 GB RSS through the command line (the whole pass would need
#: about 50 GB). Pass a larger ``tile`` to trade memory for speed.
_CPU_BUDGET_CAP = 1 << 30
#: Fraction of the available memory that "auto" plans to use.
_MEMORY_FRACTION = 0.5
_MIN_AUTO_TILE = 16


# ---------------------------------------------------------------------------- models
def load_model(model: SRModel | str | os.PathLike[str]) -> SRModel:
    """Return ``model`` itself, a registered model with pretrained weights, or a saved model.

    Args:
        model: An :class:`~edsr_lib.SRModel`; a registered name, optionally with a tag
            (``"edsr_baseline_x2"``, ``"edsr_baseline_x2.t291"``), created with
            ``pretrained=True``; or a folder written by :meth:`~edsr_lib.SRModel.save_pretrained`
            (or its ``model.safetensors``), as :func:`edsr_lib.hub.resolve_weights` reads them.

    Raises:
        ValueError: If the name is neither a registered model nor a folder, or the model
            has no pretrained weights.
        TypeError: If ``model`` is of another type.
    """
    if isinstance(model, SRModel):
        return model
    if isinstance(model, str | os.PathLike):
        return resolve_weights(model).load_model()
    raise TypeError(f"expected an SRModel, a model name or a folder, got {type(model).__name__}")


def _weights_state(model: nn.Module) -> tuple[tuple[int, int], ...]:
    # Every in-place update (optimiser step, load_state_dict) bumps a tensor's version.
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


_fast_copies: weakref.WeakKeyDictionary[SRModel, dict[tuple, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def _fast_model(
    model: SRModel, device: torch.device, channels_last: bool, compile: bool, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A fused, inference-only copy of ``model`` on ``device`` in ``dtype``, cached until its weights change."""
    key = (device, channels_last, compile, dtype)
    state = _weights_state(model)
    cached = _fast_copies.setdefault(model, {}).get(key)
    if cached is not None and cached[0] == state:
        return cached[1]
    check_finite_weights(model)
    fast = copy.deepcopy(model).eval().requires_grad_(False)
    fast.fuse()
    fast.to(device, dtype)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    if compile:
        fast = torch.compile(fast)
    _fast_copies[model][key] = (state, fast)
    return fast


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def torch_runner(
    model: SRModel,
    scale: int,
    *,
    device: torch.device,
    half: torch.dtype | None = None,
    channels_last: bool = True,
    compile: bool = False,
) -> Runner:
    """PyTorch's :data:`Runner`: the fused fast copy of ``model`` at ``scale`` on ``device``.

    On a CPU, bf16 runs a bf16 copy of the model: every op of these networks (convolution,
    ReLU, add, pixel shuffle) would run in bf16 under autocast too, and the copy saves
    autocast's per-call weight casts (1.7x against 1.4x the fp32 path, measured
    alternately). On an accelerator, ``half`` runs under autocast.

    Args:
        model: The model (not modified).
        scale: A scale the model serves (not checked again).
        device: Where the model runs.
        half: The half-precision dtype (:func:`resolve_half`), or ``None`` for float32.
        channels_last: Run in ``channels_last`` memory format.
        compile: Run a :func:`torch.compile` d copy.
    """
    weights_dtype = half if device.type == "cpu" and half is not None else torch.float32
    autocast = half if weights_dtype == torch.float32 else None
    net = _fast_model(model, device, channels_last, compile, weights_dtype)

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, weights_dtype, non_blocking=True)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext():
            y = net(batch, scale=scale)
        return y.float()

    return run


def _runtime_model(model: SRModel, scale: int, backend: str, precision: str) -> backends.RuntimeModel:
    """:func:`edsr_lib.backends.load_runtime`, kept per model like the fast copies until its weights change."""
    key = ("runtime", backend, scale, precision)
    state = _weights_state(model)
    cached = _fast_copies.setdefault(model, {}).get(key)
    if cached is not None and cached[0] == state:
        return cached[1]
    check_finite_weights(model)
    runtime = backends.load_runtime(model, scale, backend, precision)
    _fast_copies[model][key] = (state, runtime)
    return runtime


def _runner(
    model: SRModel,
    scale: int,
    backend: str,
    *,
    device: torch.device,
    half: torch.dtype | None,
    channels_last: bool,
    compile: bool,
) -> Runner:
    """The :data:`Runner` of ``backend``: PyTorch's (:func:`torch_runner`) or a runtime's (:mod:`edsr_lib.backends`)."""
    precision = "bf16" if half == torch.bfloat16 else "fp32"
    backend = backends.resolve_backend(backend, precision, device)

    def pytorch() -> Runner:
        return torch_runner(model, scale, device=device, half=half, channels_last=channels_last, compile=compile)

    if backend == "auto":
        if device.type != "cpu" or compile or half == torch.float16:
            return pytorch()  # the runtimes run on the CPU, and compile asks for PyTorch
        runner = pytorch()
        backend = backends.fastest_backend(model, scale, precision, runner)
        if backend == "torch":
            return runner
    if backend == "torch":
        return pytorch()
    if compile:
        raise ValueError(f"compile=True compiles the PyTorch model; it does not apply to backend={backend!r}")
    return _runtime_model(model, scale, backend, precision)


# ---------------------------------------------------------------------------- memory
def activation_bytes_per_pixel(model: SRModel, scale: int | None = None, dtype: torch.dtype = torch.float32) -> int:
    """Estimated peak memory of a forward pass, in bytes per input (LR) pixel.

    The largest set of live activations is in the upsampler: its input and the
    global-residual features (``F`` channels), a convolution's output (``scale**2 * F``
    channels per LR pixel at the last stage) and the pixel-shuffled copy of it, about
    ``(2 * scale**2 + 1) * F`` values per LR pixel (the body holds ``4 * F``). This is
    multiplied by a safety factor of 1.5, which covers the measured peak of windows on CPU
    (1.02 to 1.17 times the count) plus workspaces.

    Args:
        model: The model (its ``n_feats`` config entry gives ``F``).
        scale: The scale to run.
        dtype: Activation dtype.
    """
    scale = model.resolve_scale(scale)
    n_feats = int(model.config.get("n_feats", 64))
    values = max(4, 2 * scale * scale + 1) * n_feats
    return math.ceil(_SAFETY_FACTOR * values * torch.empty((), dtype=dtype).element_size())


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes that a computation on ``device`` can still allocate.

    CUDA and XPU: the free device memory (``mem_get_info``) plus what PyTorch's caching
    allocator holds unused. MPS: Metal's recommended working set less what it holds. CPU:
    ``MemAvailable`` from ``/proc/meminfo``, or the
    available physical pages where that file does not exist.
    """
    device = torch.device(device)
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(backend, "mem_get_info"):  # cuda, xpu
        free, _ = backend.mem_get_info(device)
        return int(free + backend.memory_reserved(device) - backend.memory_allocated(device))
    if device.type == "mps":  # unified memory: what Metal recommends, less what it holds
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_budget(
    model: SRModel,
    scale: int | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    overlap: int | None = None,
) -> int:
    """Bytes that ``tile="auto"`` plans to use for activations.

    On an accelerator (CUDA, XPU, MPS), half of :func:`available_memory`. On a CPU, 1 GiB, or what a window with a
    tile of four times the overlap needs if that is more (the large EDSR: a smaller tile
    would spend most of the time recomputing overlap), and never more than half of the
    available memory.

    Args:
        model: The model.
        scale: The scale to run.
        device: Where the model runs.
        dtype: Activation dtype.
        overlap: Context around each tile; default the receptive radius.
    """
    half = int(_MEMORY_FRACTION * available_memory(device))
    if torch.device(device).type != "cpu":
        return half
    overlap = model.receptive_radius(scale) if overlap is None else overlap
    useful_window = (6 * overlap) ** 2 * activation_bytes_per_pixel(model, scale, dtype)
    return min(half, max(_CPU_BUDGET_CAP, useful_window))


def auto_tile_size(
    model: SRModel,
    scale: int | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    budget: int | None = None,
    overlap: int | None = None,
) -> int:
    """The largest tile (in LR pixels) whose window fits a memory budget, for ``tile="auto"``.

    A window is the tile plus ``overlap`` on each side; the tile ``t`` is the largest with
    ``(t + 2 * overlap)**2 * activation_bytes_per_pixel(...) <= budget`` (and at least 16).
    :func:`upscale` then runs as many such windows per batch as the budget allows (one,
    unless the image is smaller than a window).

    Args:
        model: The model.
        scale: The scale to run.
        device: Where the model runs.
        dtype: Activation dtype (``float16`` halves the estimate).
        budget: Bytes a window may use; default :func:`memory_budget`.
        overlap: Context around each tile; default the receptive radius.
    """
    scale = model.resolve_scale(scale)
    overlap = model.receptive_radius(scale) if overlap is None else overlap
    if budget is None:
        budget = memory_budget(model, scale, device=device, dtype=dtype, overlap=overlap)
    window = math.isqrt(max(budget, 0) // activation_bytes_per_pixel(model, scale, dtype))
    return max(_MIN_AUTO_TILE, window - 2 * overlap)


# ---------------------------------------------------------------------------- errors
class NonFiniteError(ValueError):
    """A model's weights or output hold NaN or infinite values: nothing is written from them."""


def check_finite_weights(model: nn.Module) -> None:
    """Refuse a model whose weights hold NaN or infinity (its output would be garbage).

    Raises:
        NonFiniteError: Naming the tensors (the first five, and how many more).
    """
    bad = [
        name
        for name, t in model.state_dict().items()
        if t.is_floating_point() and t.device.type != "meta" and not bool(torch.isfinite(t).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteError(f"the model's weights hold NaN or infinite values in {shown}; its output would be garbage")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# ---------------------------------------------------------------------------- upscale
def _as_tensor(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The input as float ``(N, C, H, W)``: tensors as given (3-D gets a batch dimension), integer arrays scaled."""
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise TypeError(f"expected a float tensor with values in [0, 1], got dtype {image.dtype}")
        if image.dim() not in (3, 4):
            raise ValueError(f"expected a CHW or NCHW tensor, got shape {tuple(image.shape)}")
        if image.numel():
            low, high = torch.aminmax(image.detach())
            if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
                raise ValueError("the image tensor holds NaN or infinite values")
            # Model outputs are not clamped and may overshoot [0, 1] a little; 0..255 data does not.
            if high > 2 or low < -1:
                raise ValueError(
                    f"the image tensor has values in [{low.item():g}, {high.item():g}]; expected [0, 1] "
                    "(divide 0..255 data by 255)"
                )
        return image if image.dim() == 4 else image.unsqueeze(0)
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(
                f"expected a uint8 or uint16 NumPy image (H, W, C); got dtype {image.dtype} (use a float tensor)"
            )
        if image.ndim not in (2, 3, 4):
            raise ValueError(f"expected a NumPy image (H, W), (H, W, C) or a batch (N, H, W, C), got {image.shape}")
        if image.ndim == 4:
            return torch.cat([to_tensor(i) for i in image])
        return to_tensor(image if image.ndim == 3 else image[:, :, None])
    raise TypeError(f"expected a float torch.Tensor, a uint8 numpy.ndarray or a PIL image, got {type(image).__name__}")


def plan_passes(scales: tuple[int, ...] | list[int], outscale: float) -> tuple[int, ...]:
    """The model scales to chain for an output ``outscale`` times larger (bicubic finishes the rest).

    The fewest passes whose product reaches ``outscale``, and among those the smallest
    product (least to shrink afterwards); ``outscale`` 8 with scales (2, 3, 4) gives
    ``(4, 2)``, 1.5 with (2,) gives ``(2,)``, 6 gives ``(3, 2)``.

    Raises:
        ValueError: If ``outscale`` is not a real number above 1.
    """
    if isinstance(outscale, bool) or not isinstance(outscale, int | float) or not math.isfinite(outscale):
        raise ValueError(f"outscale must be a real number above 1, got {outscale!r}")
    if outscale <= 1:
        raise ValueError(f"outscale must be above 1 (to shrink, use edsr_lib.imresize), got {outscale!r}")
    top = max(scales)
    n_passes = max(1, math.ceil(math.log(outscale) / math.log(top) - 1e-9))
    candidates = itertools.combinations_with_replacement(sorted(scales, reverse=True), n_passes)
    return min(
        (c for c in candidates if math.prod(c) >= outscale - 1e-9), key=lambda c: (math.prod(c), [-s for s in c])
    )


def upscale(
    model: SRModel | str | os.PathLike[str],
    image: ImageT,
    scale: int | None = None,
    *,
    outscale: float | None = None,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    half: bool | str | torch.dtype = False,
    channels_last: bool = True,
    compile: bool = False,
    backend: str = "torch",
    progress: bool = False,
) -> ImageT:
    """Upscale an image (or a batch) with a super-resolution model.

    The model runs as a fused, ``channels_last`` copy under :func:`torch.inference_mode`
    (the copy is cached per model and device, and rebuilt when the weights change; the
    model passed in is never modified). By default (``tile="auto"``) an image that would
    not fit the memory budget in one pass is processed in windows that overlap by the
    model's receptive radius, so the result equals the one-pass result to float rounding;
    an out-of-memory error halves the tile and retries.

    Channels: an image with the model's channel count is upscaled as it is. For an RGB
    model, a grayscale image (1 channel) is replicated to RGB, upscaled, and reduced back
    to one channel by the mean of the three outputs; an alpha channel (2 or 4 channels)
    is resized with MATLAB bicubic :func:`~edsr_lib.ops.imresize` (clamped to [0, 1])
    while the colour goes through the model.

    Args:
        model: An :class:`~edsr_lib.SRModel`, a registered name (created with pretrained
            weights) or a folder written by ``save_pretrained``; see :func:`load_model`.
        image: A float tensor ``(C, H, W)`` or ``(N, C, H, W)`` with values in [0, 1], on
            any device; a uint8 or uint16 NumPy image ``(H, W, C)`` or ``(H, W)`` (or a batch
            ``(N, H, W, C)``) as :func:`edsr_lib.io.read_image` returns it; a PIL image; or
            a list of PIL images of one size and mode, run as one batch.
        scale: The scale; may be omitted for a single-scale model.
        outscale: Instead of ``scale``: any output factor above 1 (``1.5``, ``8``). The
            model runs the scales of :func:`plan_passes` (chained when ``outscale`` is above
            the largest) and MATLAB bicubic :func:`~edsr_lib.ops.imresize` shrinks the result
            to ``ceil(outscale * size)`` pixels.
        tile: Tile size in LR pixels; ``"auto"`` (the default) picks it, and the number of
            windows per batch, from the memory budget (:func:`auto_tile_size`,
            :func:`memory_budget`) and runs a small image in one window; ``None`` forces one
            pass per image, whatever it costs.
        tile_overlap: Context around each tile, in LR pixels; default (and the least that
            is exact) the model's :meth:`~edsr_lib.SRModel.receptive_radius`.
        self_ensemble: Average over the eight flips and rotations (the paper's "+" models,
            about +0.1 dB, eight times the work).
        batch_size: Most tiles (or ensemble members) per forward pass (with ``tile="auto"``,
            fewer if the memory budget requires).
        device: Where the model runs, any torch device (``"cuda:1"``, ``"mps"``); default the
            device of the model's weights. The result stays where ``image`` is, so a big image
            can live on the CPU while its tiles run on a GPU.
        half: Run under autocast in ``float16`` (``True`` or ``"fp16"``, accelerators only) or
            ``bfloat16`` (``"bf16"``: on accelerators, and on CPUs with native bf16, see
            :func:`cpu_has_native_bf16`).
        channels_last: Run in ``channels_last`` memory format (1.4-1.5x faster on CPU).
        compile: Run a :func:`torch.compile` d copy (first call compiles).
        backend: What computes the network: ``"torch"`` (the default: PyTorch, any device);
            ``"openvino"`` or ``"onnxruntime"`` (on the CPU, with their extras; the model is
            exported once and cached on disk, see :mod:`edsr_lib.backends`); or ``"auto"``,
            the fastest of PyTorch and the installed runtimes on this CPU, measured once and
            remembered (:func:`~edsr_lib.backends.fastest_backend`; PyTorch on an
            accelerator). Tiling, batching, alpha, gray and 16-bit are the same with each;
            ``half="bf16"`` runs OpenVINO in bf16 on a CPU with native bf16.
        progress: Show a progress bar over tiles when there are several batches.

    Returns:
        For a tensor: a float tensor ``scale`` times larger, of the input's shape kind,
        dtype and device, not clamped (as the model returns it; the alpha channel is
        clamped). For an array: an array of the same dtype ``scale`` times larger with the
        same channels, clamped and rounded (halves away from zero) as
        :func:`~edsr_lib.ops.quantize` does. For a PIL image: a PIL image of the same mode
        (see :func:`edsr_lib.io.image_to_array`) with the ICC profile, EXIF (orientation
        reset) and DPI (scaled) carried over; for a list, a list.

    Raises:
        TypeError: If ``image`` or ``model`` is of an unsupported type.
        ValueError: For a scale the model does not serve, an unsupported channel count,
            values outside [0, 1], a bad tile size, or ``half`` where it cannot run.
        NonFiniteError: If the model's weights or its output hold NaN or infinity.

    Example:
        >>> from edsr_lib.io import load_image, write_image
        >>> sr = upscale("edsr_baseline_x2", load_image("photo.jpg"))
        >>> write_image("photo_x2.png", sr)
    """
    options = {
        "tile": tile,
        "tile_overlap": tile_overlap,
        "self_ensemble": self_ensemble,
        "batch_size": batch_size,
        "device": device,
        "half": half,
        "channels_last": channels_last,
        "compile": compile,
        "backend": backend,
        "progress": progress,
    }
    model = load_model(model)
    if outscale is not None and scale is not None:
        raise ValueError(f"give scale or outscale, not both (scale={scale}, outscale={outscale})")
    if isinstance(image, Image.Image) or (
        isinstance(image, list | tuple) and image and all(isinstance(i, Image.Image) for i in image)
    ):
        return _upscale_pil(model, image, scale, outscale, options)
    if outscale is not None:
        return _upscale_to(model, image, outscale, options)
    return _upscale(model, image, scale, **options)


def _upscale_pil(
    model: SRModel,
    images: Image.Image | list[Image.Image],
    scale: int | None,
    outscale: float | None,
    options: dict[str, Any],
) -> Image.Image | list[Image.Image]:
    """PIL in, PIL out: the pixels by :func:`~edsr_lib.io.image_to_array`, the metadata carried over."""
    single = isinstance(images, Image.Image)
    batch = [images] if single else list(images)
    if len({(img.size, img.mode) for img in batch}) > 1:
        raise ValueError("a list of images to upscale together must share one size and mode")
    factor = float(outscale) if outscale is not None else model.resolve_scale(scale)
    pixels = image_to_array(batch[0])[None] if single else np.stack([image_to_array(img) for img in batch])
    if pixels.dtype == np.float32:  # float images go through the tensor path, and are clamped at the end
        pixels = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    if outscale is not None:
        result = _upscale_to(model, pixels, outscale, options)
    else:
        result = _upscale(model, pixels, scale, **options)
    if isinstance(result, torch.Tensor):
        result = result.clamp_(0.0, 1.0).permute(0, 2, 3, 1).numpy()
    out = [carry_metadata(img, array_to_image(r, like=img), factor) for img, r in zip(batch, result, strict=True)]
    return out[0] if single else out


def _upscale_to(model: SRModel, image: ImageT, outscale: float, options: dict[str, Any]) -> ImageT:
    """Chain the model passes of :func:`plan_passes`, then shrink to ``outscale`` with MATLAB bicubic."""
    passes = plan_passes(model.scales, outscale)
    is_array = isinstance(image, np.ndarray)
    height, width = (image.shape[-3:-1] if image.ndim == 4 else image.shape[:2]) if is_array else image.shape[-2:]
    y = image
    for s in passes:
        y = _upscale(model, y, s, **options)
    if math.prod(passes) == outscale:
        return y
    size = (math.ceil(outscale * height - 1e-6), math.ceil(outscale * width - 1e-6))
    if is_array and y.ndim == 4:
        return np.stack([_resize_array(i, size) for i in y])
    return _resize_array(y, size) if is_array else imresize(y, size=size)


def _resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.dtype == np.uint16:  # imresize has MATLAB's uint8 semantics only; 16 bits go through float
        resized = imresize(array.astype(np.float64) / 65535.0, size=size)
        return np.clip(np.floor(resized * 65535.0 + 0.5), 0, 65535).astype(np.uint16)
    return imresize(array, size=size)


def _upscale(
    model: SRModel,
    image: ImageT,
    scale: int | None,
    *,
    tile: int | Literal["auto"] | None,
    tile_overlap: int | None,
    self_ensemble: bool,
    batch_size: int,
    device: torch.device | str | None,
    half: bool | str | torch.dtype,
    channels_last: bool,
    compile: bool,
    backend: str,
    progress: bool,
) -> ImageT:
    """One model pass at one of the model's scales (see :func:`upscale`)."""
    scale = model.resolve_scale(scale)
    x = _as_tensor(image)
    device = resolve_device(device) if device is not None else _model_device(model)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    amp_dtype = resolve_half(half, device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    n_in = x.shape[1]
    n_colors = model.n_colors
    if n_in == n_colors:
        gray, has_alpha = False, False
    elif n_colors == 3 and n_in in (1, 2, 4):
        gray, has_alpha = n_in < 3, n_in % 2 == 0
    else:
        raise ValueError(
            f"the image has {n_in} channels; this model takes {n_colors} "
            + ("(or 1 gray, 2 gray+alpha, 4 with alpha)" if n_colors == 3 else "")
        )
    colour = x[:, :1].expand(-1, 3, -1, -1) if gray else x[:, : n_in - has_alpha]
    height, width = x.shape[-2:]
    if height == 0 or width == 0:
        raise ValueError(f"the image is empty: shape {tuple(x.shape)}")

    overlap = model.receptive_radius(scale) if tile_overlap is None else tile_overlap
    dtype = amp_dtype or torch.float32
    if tile == "auto":
        budget = memory_budget(model, scale, device=device, dtype=dtype, overlap=overlap)
        tile = auto_tile_size(model, scale, device=device, dtype=dtype, budget=budget, overlap=overlap)
        window = min(height, tile + 2 * overlap) * min(width, tile + 2 * overlap)
        batch_size = max(1, min(batch_size, budget // (window * activation_bytes_per_pixel(model, scale, dtype))))
    elif tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive number of LR pixels, 'auto' or None, got {tile!r}")
    if tile is not None and tile < overlap and max(height, width) > tile + 2 * overlap:
        cost = (tile + 2 * overlap) ** 2 / tile**2
        warnings.warn(
            f"tile {tile} is smaller than the overlap {overlap} that exactness needs: each window computes "
            f"{cost:.1f} times the pixels it keeps; a larger tile is faster",
            stacklevel=3,
        )

    # The output is allocated outside inference mode, so callers get an ordinary tensor.
    numpy_out: np.ndarray | None = None
    if isinstance(image, np.ndarray):
        batch_dims = (x.shape[0],) if image.ndim == 4 else ()
        numpy_out = np.empty((*batch_dims, scale * height, scale * width, n_in), dtype=image.dtype)
        view = torch.from_numpy(numpy_out)
        out = view.permute(0, 3, 1, 2) if batch_dims else view.permute(2, 0, 1).unsqueeze(0)
    else:
        out = torch.empty((x.shape[0], n_in, scale * height, scale * width), dtype=x.dtype, device=x.device)
    n_out_colours = 1 if gray else colour.shape[1]
    peak = 65535.0 if numpy_out is not None and numpy_out.dtype == np.uint16 else 255.0

    def convert(core: torch.Tensor) -> torch.Tensor:
        if not bool(torch.isfinite(core).all()):
            raise NonFiniteError(
                "the model produced NaN or infinite values (from its weights, or half-precision overflow); "
                "nothing was written"
            )
        if gray:
            core = core.mean(dim=0, keepdim=True)
        if numpy_out is None:
            return core
        levels = round_half_away(core.to(torch.float64).clamp_(0.0, 1.0).mul_(peak))
        return levels.to(torch.int32) if peak > 255 else levels.to(torch.uint8)

    run = _runner(model, scale, backend, device=device, half=amp_dtype, channels_last=channels_last, compile=compile)

    while True:
        fn = functools.partial(ensemble.self_ensemble, run, batch_size=batch_size) if self_ensemble else run
        try:
            with torch.inference_mode():
                tiled_apply(
                    fn,
                    colour,
                    scale,
                    tile,
                    overlap,
                    batch_size=max(1, batch_size // 8) if self_ensemble else batch_size,
                    out=out[:, :n_out_colours],
                    convert=convert,
                    progress=progress,
                )
            break
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            current = tile if tile is not None else max(height, width)
            if current <= _MIN_AUTO_TILE and batch_size == 1:
                raise MemoryError(
                    f"out of memory on {device} even with {current}-pixel tiles, one per batch ({exc})"
                ) from None
            if batch_size > 1:
                batch_size = 1
            else:
                tile = max(_MIN_AUTO_TILE, current // 2)
            del exc
            _release_cached_memory(device)
            warnings.warn(
                f"out of memory on {device}; retrying with tile {tile} and batch size {batch_size}", stacklevel=3
            )
    if has_alpha:
        _resize_alpha(image, x, scale, out, numpy_out)

    if numpy_out is not None:
        return numpy_out if image.ndim >= 3 else numpy_out[:, :, 0]
    return out if image.dim() == 4 else out[0]


def _release_cached_memory(device: torch.device) -> None:
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(backend, "empty_cache"):
        backend.empty_cache()


def _resize_alpha(
    image: torch.Tensor | np.ndarray, x: torch.Tensor, scale: int, out: torch.Tensor, numpy_out: np.ndarray | None
) -> None:
    """Write the MATLAB-bicubic resized alpha channel of ``image`` into the last output channel."""
    if numpy_out is not None and numpy_out.dtype == np.uint8:
        # uint8 in, uint8 out: MATLAB's uint8 semantics (rounded and clamped after each pass).
        for n, single in enumerate(image if image.ndim == 4 else image[None]):
            target = numpy_out[n] if image.ndim == 4 else numpy_out
            target[:, :, -1] = imresize(np.ascontiguousarray(single[:, :, -1]), scale)
    else:
        alpha = imresize(x[:, -1:], scale).clamp_(0.0, 1.0)
        if numpy_out is not None:
            alpha = round_half_away(alpha.to(torch.float64) * 65535.0).to(torch.int32)
        out[:, -1:] = alpha
