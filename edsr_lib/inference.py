"""Upscale images with a model: the run loop of exact tiling, self-ensemble and the fast inference path.

:func:`upscale` is the one function that the command line, the evaluator and the
examples use. It checks the scale once, then composes parts that live in their own
modules: the image kinds (tensors, 8 and 16-bit arrays, PIL images, gray, alpha) in
:mod:`edsr_lib.adapters`, the tile and batch size in :mod:`edsr_lib.memory`, windows and
self-ensemble in :mod:`edsr_lib.ops`, and the out-of-memory retry here.

The network itself is behind one seam, a *runner* (:data:`Runner`): a function that takes
a float32 batch of windows ``(B, C, h, w)`` in [0, 1] and returns the model's float32
output ``(B, C, scale * h, scale * w)``. :func:`torch_runner` is PyTorch's: a fused
copy of the model (``res_scale`` and the mean shifts folded into convolutions) in
``channels_last`` memory format under :func:`torch.inference_mode`, cached per model and
rebuilt when the model's weights change. Another runtime plugs in by making a runner;
tiling, batching, self-ensemble, alpha, gray, 16-bit output and the out-of-memory retry
stay around it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import itertools
import math
import os
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import adapters, backends
from ._device import cpu_has_native_bf16, resolve_device, resolve_half
from ._hub import NonFiniteError, check_finite_weights  # weights I/O owns the rule; re-exported here
from .hub import WeightsSource, resolve_weights
from .io import AnyImage, Image16
from .memory import (
    MIN_AUTO_TILE,
    activation_bytes_per_pixel,
    auto_tile_size,
    available_memory,
    is_out_of_memory,
    memory_budget,
    plan_tiles,
    release_cached_memory,
)
from .models import SRModel, TrunkModel
from .ops import ensemble
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
    "runner",
    "torch_runner",
    "upscale",
]

ImageT = TypeVar("ImageT", torch.Tensor, np.ndarray, Image.Image, Image16)

#: What runs a batch of windows through the network: a float32 ``(B, C, h, w)`` tensor in
#: [0, 1], on any device, to the float32 output ``(B, C, scale * h, scale * w)`` (on any
#: device; not clamped). :func:`torch_runner` makes PyTorch's.
Runner = Callable[[torch.Tensor], torch.Tensor]

#: How many models loaded by name or folder :func:`load_model` keeps for the next call (the least recently
#: used goes first): enough for a job that alternates two models, little memory for the large EDSR.
_MODEL_CACHE_SIZE = 2


# ---------------------------------------------------------------------------- models
_models: collections.OrderedDict[tuple, SRModel] = collections.OrderedDict()
_models_lock = threading.Lock()


def _cache_key(source: WeightsSource) -> tuple:
    """What identifies a model by name or folder: its name, and its weights (the pinned digest, or the files' stats)."""
    if source.cfg is not None:
        return ("pretrained", source.cfg.name, source.cfg.sha256, source.cfg.revision)
    folder = source.folder
    files = [source.weights_file] + ([] if folder is None else sorted(p for p in folder.iterdir() if p.is_file()))
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return (source.kind, str(source.path.resolve()), stats)


def load_model(model: SRModel | str | os.PathLike[str], *, cache: bool = False) -> SRModel:
    """Return ``model`` itself, a registered model with pretrained weights, or a saved model.

    Args:
        model: An :class:`~edsr_lib.SRModel`; a registered name, optionally with a tag
            (``"edsr_baseline_x2"``, ``"edsr_baseline_x2.t291"``), created with
            ``pretrained=True``; or a folder written by :meth:`~edsr_lib.SRModel.save_pretrained`
            (or its ``model.safetensors``), as :func:`edsr_lib.hub.resolve_weights` reads them.
        cache: Keep a model loaded by name or folder, and return the kept one while its
            name and weights are the same (a pretrained config's pinned sha256, a folder's
            files unchanged); the two most recent are kept. :func:`upscale` and
            :func:`edsr_lib.evaluate` load this way; the kept model must not be modified,
            so leave it off to get a model of your own.

    Raises:
        ValueError: If the name is neither a registered model nor a folder, or the model
            has no pretrained weights.
        TypeError: If ``model`` is of another type.
    """
    if isinstance(model, SRModel):
        return model
    if not isinstance(model, str | os.PathLike):
        raise TypeError(f"expected an SRModel, a model name or a folder, got {type(model).__name__}")
    source = resolve_weights(model)
    if not cache:
        return source.load_model()
    key = _cache_key(source)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded = source.load_model().eval()
    with _models_lock:
        _models[key] = loaded
        while len(_models) > _MODEL_CACHE_SIZE:
            _models.popitem(last=False)
    return loaded


def _weights_state(model: nn.Module) -> tuple[tuple[int, int], ...]:
    # Every in-place update (optimiser step, load_state_dict) bumps a tensor's version.
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


class _Float32(nn.Module):
    """A layer run in float32 outside autocast, its output cast to ``out_dtype`` (``None``: left float32).

    In half precision, the two ends of the network run in float32 (see :func:`_float32_ends`).
    """

    def __init__(self, layer: nn.Module, out_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.out_dtype = out_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            y = self.layer(x.float())
        return y if self.out_dtype is None else y.to(self.out_dtype)


def _float32_ends(model: SRModel) -> tuple[str, ...]:
    """The modules that run in float32 when the rest runs in half precision: the input mean shift, head and tail.

    Rounding there shows in every pixel: an 8-bit input level is not a bfloat16 number
    (bf16 has 8 significant bits, so ``x - mean`` loses up to half a level), and the fused
    tail's bias holds the output mean (0.4488 becomes 0.4492 in bf16, +0.1 level on every
    pixel), and float16 flushes about 40% of the fused tail's weights (which carry
    ``1 / rgb_range``) to zero. Kept in float32, the mean difference from float32 falls from
    0.05-0.17 to under 0.01 grey levels and the largest difference to a third, for under 2% of
    the time: the head has ``n_colors`` input channels and the tail ``n_colors`` outputs.
    A family without an EDSR trunk keeps only a declared convolutional tail in float32.
    """
    tail = model.tail_module
    ends = (tail,) if tail is not None and isinstance(getattr(model, tail, None), nn.Conv2d) else ()
    if isinstance(model, TrunkModel) and isinstance(getattr(model, model.head_module, None), nn.Conv2d):
        ends = ("sub_mean", model.head_module, *ends)
    return ends


_fast_copies: weakref.WeakKeyDictionary[SRModel, dict[tuple, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def _fast_model(
    model: SRModel,
    device: torch.device,
    channels_last: bool,
    compile: bool,
    dtype: torch.dtype = torch.float32,
    autocast: torch.dtype | None = None,
) -> nn.Module:
    """A fused, inference-only copy of ``model`` on ``device`` in ``dtype``, cached until its weights change.

    In half precision (bfloat16 weights, or float16/bfloat16 ``autocast``) the ends of
    :func:`_float32_ends` stay in float32; the copy then takes a float32 input.
    """
    ends = _float32_ends(model) if dtype != torch.float32 or autocast is not None else ()
    key = (device, channels_last, compile, dtype, ends)
    state = _weights_state(model)
    cached = _fast_copies.setdefault(model, {}).get(key)
    if cached is not None and cached[0] == state:
        return cached[1]
    check_finite_weights(model)
    fast = copy.deepcopy(model).eval().requires_grad_(False)
    fast.fuse()
    float32 = {name: copy.deepcopy(getattr(fast, name)) for name in ends}
    fast.to(device, dtype)
    head = model.head_module if isinstance(model, TrunkModel) else None
    for name, layer in float32.items():
        # the head hands the half-precision body its input; the mean shift hands the head a float32 one
        out_dtype = dtype if name == head and dtype != torch.float32 else None
        setattr(fast, name, _Float32(layer.to(device), out_dtype))
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
    alternately). On an accelerator, ``half`` runs under autocast. Either way the input mean
    shift, the head and the tail run in float32 (see :func:`_float32_ends`), which keeps the
    output's mean within 0.01 grey levels of float32's.

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
    net = _fast_model(model, device, channels_last, compile, weights_dtype, autocast)
    # the input goes in as float32 where the copy's first layers run in float32 (see _float32_ends)
    input_dtype = torch.float32 if "sub_mean" in _float32_ends(model) else weights_dtype

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, input_dtype, non_blocking=True)
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


def runner(
    model: SRModel,
    scale: int,
    backend: str | None = None,
    *,
    device: torch.device,
    half: torch.dtype | None = None,
    int8: bool = False,
    channels_last: bool = True,
    compile: bool = False,
) -> Runner:
    """The :data:`Runner` of ``backend``: PyTorch's (:func:`torch_runner`) or a runtime's (:mod:`edsr_lib.backends`).

    Args:
        model: The model (not modified).
        scale: A scale the model serves (not checked again).
        backend: ``"torch"``, ``"openvino"``, ``"onnxruntime"`` or ``"auto"`` (the fastest of
            them on this CPU, :func:`edsr_lib.backends.fastest_backend`; PyTorch on an accelerator
            or with ``compile``); ``None`` is ``"torch"``, or ``"openvino"`` with ``int8``.
        device: Where the model runs (the runtimes run on the CPU).
        half: ``torch.bfloat16`` for bf16 (OpenVINO on a CPU with native bf16, or PyTorch), or
            ``None`` for float32; float16 runs in PyTorch only.
        int8: Run the int8 model shipped for the model's weights, in OpenVINO
            (:func:`edsr_lib.backends.int8_model`).
        channels_last: PyTorch's memory format.
        compile: Run a :func:`torch.compile` d PyTorch copy.

    Raises:
        edsr_lib.backends.BackendError: If ``backend`` cannot run here (see
            :func:`edsr_lib.backends.resolve_backend`).
        ValueError: For ``compile`` with a runtime.
    """
    backend, precision = backends.choose(backend, half=half, int8=int8, device=device)

    def pytorch() -> Runner:
        return torch_runner(model, scale, device=device, half=half, channels_last=channels_last, compile=compile)

    if backend == "auto":
        if device.type != "cpu" or compile or half == torch.float16:
            return pytorch()  # the runtimes run on the CPU, and compile asks for PyTorch
        fast = pytorch()
        backend = backends.fastest_backend(model, scale, precision, fast)
        if backend == "torch":
            return fast
    if backend == "torch":
        return pytorch()
    if compile:
        raise ValueError(f"compile=True compiles the PyTorch model; it does not apply to backend={backend!r}")
    return _runtime_model(model, scale, backend, precision)


# ---------------------------------------------------------------------------- errors
def _check_finite_output(core: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(core).all()):
        raise NonFiniteError(
            "the model produced NaN or infinite values (from its weights, or half-precision overflow); "
            "nothing was written"
        )
    return core


# ---------------------------------------------------------------------------- upscale
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
    backend: str | None = None,
    int8: bool = False,
    progress: bool = False,
) -> ImageT:
    """Upscale an image (or a batch) with a super-resolution model.

    The model runs as a fused, ``channels_last`` copy under :func:`torch.inference_mode`
    (the copy is cached per model and device, and rebuilt when the weights change; the
    model passed in is never modified). A model given by name or folder is loaded once and
    kept for the next calls (see :func:`load_model`), so a second call neither reads,
    hashes nor fuses it again. By default (``tile="auto"``) an image that would
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
            ``(N, H, W, C)``) as :func:`edsr_lib.io.read_image` returns it; a PIL image or an
            :class:`~edsr_lib.io.Image16` (16-bit colour, as :func:`edsr_lib.io.load_image`
            returns it); or a list of them of one size and mode, run as one batch.
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
            device of the model's weights for a model object, and the accelerator (as
            :func:`~edsr_lib.inference.resolve_device` picks it, else the CPU) for a model
            given by name or folder. The result stays where ``image`` is, so a big image
            can live on the CPU while its tiles run on a GPU.
        half: Run under autocast in ``float16`` (``True`` or ``"fp16"``, accelerators only;
            the last convolution stays in float32, as its fused weights are too small for
            float16) or ``bfloat16`` (``"bf16"``: on accelerators, and on CPUs with native bf16, see
            :func:`cpu_has_native_bf16`).
        channels_last: Run in ``channels_last`` memory format (1.4-1.5x faster on CPU).
        compile: Run a :func:`torch.compile` d copy (first call compiles).
        backend: What computes the network: ``"torch"`` (the default: PyTorch, any device);
            ``"openvino"`` or ``"onnxruntime"`` (on the CPU, with their extras; the model is
            exported once and cached on disk, see :mod:`edsr_lib.backends`); or ``"auto"``,
            the fastest of PyTorch and the installed runtimes on this CPU, measured once and
            remembered (:func:`~edsr_lib.backends.fastest_backend`; PyTorch on an
            accelerator). ``None`` (the default) is ``"torch"``, or ``"openvino"`` with
            ``int8``. Tiling, batching, alpha, gray and 16-bit are the same with each;
            ``half="bf16"`` runs OpenVINO in bf16 on a CPU with native bf16.
        int8: Run the int8 model shipped for the model's weights, in OpenVINO on an x86 CPU
            with AVX2 (``pip install "edsr-lib[openvino]"``): measured at least 1.3x the
            fastest fp32 path and within 0.05 dB of fp32 on Set5, Set14 and B100
            (:mod:`edsr_lib.weights.int8`). Weights without one are refused.
        progress: Show a progress bar over tiles when there are several batches.

    Returns:
        For a tensor: a float tensor ``scale`` times larger, of the input's shape kind,
        dtype and device, not clamped (as the model returns it; the alpha channel is
        clamped). For an array: an array of the same dtype ``scale`` times larger with the
        same channels, clamped and rounded (halves away from zero) as
        :func:`~edsr_lib.ops.quantize` does. For a PIL image (an :class:`~edsr_lib.io.Image16`):
        a PIL image of the same mode (an :class:`~edsr_lib.io.Image16`; see
        :func:`edsr_lib.io.image_to_array`) with the ICC profile, EXIF (orientation reset)
        and DPI (scaled) carried over; for a list, a list.

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
    by_name = isinstance(model, str | os.PathLike)
    model = load_model(model, cache=True)
    if outscale is not None and scale is not None:
        raise ValueError(f"give scale or outscale, not both (scale={scale}, outscale={outscale})")
    if outscale is None:
        scale = model.resolve_scale(scale)
    if device is None:
        device = resolve_device(None) if by_name else _model_device(model)
    options = {
        "tile": tile,
        "tile_overlap": tile_overlap,
        "self_ensemble": self_ensemble,
        "batch_size": batch_size,
        "device": resolve_device(device),
        "half": half,
        "channels_last": channels_last,
        "compile": compile,
        "backend": backend,
        "int8": int8,
        "progress": progress,
    }
    if adapters.is_pil(image):
        return _upscale_pil(model, image, scale, outscale, options)
    if outscale is not None:
        return _upscale_to(model, image, outscale, options)
    return _upscale(model, image, scale, **options)


def _upscale_pil(
    model: SRModel,
    images: AnyImage | list[AnyImage],
    scale: int | None,
    outscale: float | None,
    options: dict[str, Any],
) -> AnyImage | list[AnyImage]:
    """PIL in, PIL out: upright pixels by :func:`~edsr_lib.adapters.from_pil`, metadata carried over."""
    sources, pixels = adapters.from_pil(images)
    if outscale is not None:
        result = _upscale_to(model, pixels, outscale, options)
    else:
        result = _upscale(model, pixels, scale, **options)
    out = adapters.to_pil(sources, result, float(outscale) if outscale is not None else scale)
    return out[0] if isinstance(images, Image.Image | Image16) else out


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
        return np.stack([adapters.resize_array(i, size) for i in y])
    return adapters.resize_array(y, size) if is_array else imresize(y, size=size)


def _upscale(
    model: SRModel,
    image: ImageT,
    scale: int,
    *,
    tile: int | Literal["auto"] | None,
    tile_overlap: int | None,
    self_ensemble: bool,
    batch_size: int,
    device: torch.device,
    half: bool | str | torch.dtype,
    channels_last: bool,
    compile: bool,
    backend: str | None,
    int8: bool,
    progress: bool,
) -> ImageT:
    """One model pass at ``scale``, a scale the model serves (see :func:`upscale`)."""
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    amp_dtype = resolve_half(half, device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    adapted = adapters.adapt(image, model.n_colors, scale)
    height, width = adapted.x.shape[-2:]

    overlap = model.receptive_radius(scale) if tile_overlap is None else tile_overlap
    if tile == "auto":
        dtype = amp_dtype or torch.float32
        tile, batch_size = plan_tiles(
            model, scale, height, width, device=device, dtype=dtype, overlap=overlap, batch_size=batch_size
        )
    elif tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive number of LR pixels, 'auto' or None, got {tile!r}")
    if tile is not None and tile < overlap and max(height, width) > tile + 2 * overlap:
        cost = (tile + 2 * overlap) ** 2 / tile**2
        warnings.warn(
            f"tile {tile} is smaller than the overlap {overlap} that exactness needs: each window computes "
            f"{cost:.1f} times the pixels it keeps; a larger tile is faster",
            stacklevel=3,
        )

    run = runner(
        model, scale, backend, device=device, half=amp_dtype, int8=int8, channels_last=channels_last, compile=compile
    )

    def convert(core: torch.Tensor) -> torch.Tensor:
        return adapted.convert(_check_finite_output(core))

    while True:
        fn = functools.partial(ensemble.self_ensemble, run, batch_size=batch_size) if self_ensemble else run
        try:
            with torch.inference_mode():
                tiled_apply(
                    fn,
                    adapted.colour,
                    scale,
                    tile,
                    overlap,
                    batch_size=max(1, batch_size // 8) if self_ensemble else batch_size,
                    out=adapted.out,
                    convert=convert,
                    progress=progress,
                )
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            current = tile if tile is not None else max(height, width)
            if current <= MIN_AUTO_TILE and batch_size == 1:
                raise MemoryError(
                    f"out of memory on {device} even with {current}-pixel tiles, one per batch ({exc})"
                ) from None
            if batch_size > 1 and tile is not None:  # one pass is one window: a smaller batch would repeat it
                batch_size = 1
            else:
                tile = max(MIN_AUTO_TILE, current // 2)
            del exc
            release_cached_memory(device)
            warnings.warn(
                f"out of memory on {device}; retrying with tile {tile} and batch size {batch_size}", stacklevel=3
            )
    return adapted.finish()
