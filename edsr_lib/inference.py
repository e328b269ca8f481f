"""Upscale images with a model: :class:`Upscaler` (set up once, call per image) and :func:`upscale` (one call).

An :class:`Upscaler` takes the model and one :class:`~edsr_lib.options.UpscaleOptions`,
and resolves everything once, when it is made: the model (loaded by name or folder once
and kept, see :func:`load_model`), the scale or the passes of an ``outscale``, the device,
the backend and precision (:mod:`edsr_lib.backends`: the fused PyTorch copy, or a runtime's
exported file; ``"auto"`` measured), and what the tile planner needs. Calling it with an
image then only adapts the image (one adapter per image type, chosen once per type:
:mod:`edsr_lib.adapters`), plans the tiles of that size (:mod:`edsr_lib.memory`), runs the
windows (:mod:`edsr_lib.ops.tiling`, self-ensemble in :mod:`edsr_lib.ops.ensemble`, the
periodic border of ``wrap`` in :mod:`edsr_lib.ops.wrap`) and retries with smaller tiles
after an out-of-memory error. :func:`upscale` builds an :class:`Upscaler` and calls it once.

The network itself is behind one seam, a *runner* (:data:`~edsr_lib.backends.Runner`):
a function that takes a float32 batch of windows ``(B, C, h, w)`` in [0, 1] and returns
the model's float32 output ``(B, C, scale * h, scale * w)``; each backend of
:mod:`edsr_lib.backends` makes one. The model passed in is never moved or modified.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import adapters, backends
from ._device import cpu_has_native_bf16, resolve_device, resolve_half
from ._hub import NonFiniteError, check_finite_weights  # weights I/O owns the rule; re-exported here
from .backends import Runner, torch_runner
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
from .models import SRModel
from .ops import ensemble, wrap
from .ops.imresize import imresize
from .ops.tiling import tiled_apply
from .options import UpscaleOptions, precision_of

__all__ = [
    "NonFiniteError",
    "Runner",
    "UpscaleOptions",
    "Upscaler",
    "activation_bytes_per_pixel",
    "as_upscaler",
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

ImageT = TypeVar("ImageT", torch.Tensor, np.ndarray, Image.Image, Image16, list)

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
        model: An :class:`~edsr_lib.SRModel` (also inside ``nn.DataParallel``,
            ``DistributedDataParallel`` or :func:`torch.compile`, which are unwrapped: the
            model inside is returned); a registered name, optionally with a tag
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
        ValueError: If the model's weights are on the ``meta`` device (not loaded).
    """
    if isinstance(model, nn.Module):
        return _usable(model)
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


#: Attributes under which a wrapper keeps the model it wraps: ``nn.DataParallel``,
#: ``DistributedDataParallel`` and the like (``module``), :func:`torch.compile` (``_orig_mod``).
_WRAPPED = ("module", "_orig_mod")


def _usable(model: nn.Module) -> SRModel:
    """The :class:`SRModel` inside ``model`` (unwrapping ``DataParallel``-like wrappers), checked to hold weights.

    Raises:
        TypeError: If ``model`` is another kind of module.
        ValueError: If its weights are on the ``meta`` device (shapes without values).
    """
    inner = model
    while not isinstance(inner, SRModel):
        inner = next((getattr(inner, a) for a in _WRAPPED if isinstance(getattr(inner, a, None), nn.Module)), None)
        if inner is None:
            raise TypeError(f"expected an SRModel, a model name or a folder, got {type(model).__name__}")
    if any(t.is_meta for t in (*inner.parameters(), *inner.buffers())):
        raise ValueError(
            "the model's weights are on the meta device (shapes without values): load its weights first, "
            "e.g. model.to_empty(device='cpu') then model.load_state_dict(...)"
        )
    return inner


# ---------------------------------------------------------------------------- outscale
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


# ---------------------------------------------------------------------------- errors
def _check_finite_output(core: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(core).all()):
        raise NonFiniteError(
            "the model produced NaN or infinite values (from its weights, or half-precision overflow); "
            "nothing was written"
        )
    return core


def _warn(message: str) -> None:
    """Warn at the caller's line: the first frame outside this module and functools (the type dispatch)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename in (__file__, functools.__file__):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


_UNSUPPORTED = "expected a float torch.Tensor, a uint8 numpy.ndarray or a PIL image, got {}"


# ---------------------------------------------------------------------------- the Upscaler
class Upscaler:
    """A model made ready to upscale, once: call it with an image (or a batch) as many times as needed.

    Everything the options ask for is checked and resolved when the object is made, so a
    bad option fails here, in one line, before any image: the model (loaded by name or
    folder once, see :func:`load_model`), the scale (or the passes of ``outscale``,
    :func:`plan_passes`), the device, the backend and precision (the fused PyTorch copy, or
    the runtime's exported file, exported and checked on first use; ``"auto"`` measured
    once), and what the tile planner needs. The model passed in is never moved or modified:
    the backends run their own copy or export. So the weights are read once too: an
    ``Upscaler`` keeps running the weights the model had when it was made, whatever is done
    to the model afterwards (training on, ``load_state_dict``); make a new one to run new
    weights (the exports and the ``"auto"`` measurement of unchanged weights are reused).

    Args:
        model: An :class:`~edsr_lib.SRModel`, a registered name (created with pretrained
            weights) or a folder written by ``save_pretrained``; see :func:`load_model`. Any
            model works however it was made: built or loaded under :func:`torch.inference_mode`
            or ``no_grad``, frozen, wrapped in ``nn.DataParallel``, or with float16/bfloat16
            weights (run in float32 unless ``precision`` asks otherwise); one on the ``meta``
            device is refused.
        options: The options, one :class:`~edsr_lib.options.UpscaleOptions`; default all defaults.
        **changes: Options given by name instead (``scale=2, tile=None``), or changes to ``options``.

    Attributes:
        model: The model (the object passed in, or the one loaded by name).
        name: The model's name: the name or folder name it was given by, else its variant.
        options: The options.
        scale: The model scale of a plain run, or ``None`` with ``outscale``.
        passes: The model scales run one after the other (one, but with ``outscale``).
        device: Where the model runs.
        backend: What runs the network (``"torch"``, ``"openvino"``, ``"onnxruntime"``;
            ``"auto"`` resolved to the measured winner of the first pass).
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"int8"``.

    Raises:
        ValueError: For a bad option, a scale the model does not serve, a device that is
            not here, or a precision the device cannot run.
        edsr_lib.backends.BackendError: For a backend or precision that cannot run here.
        NonFiniteError: If the model's weights hold NaN or infinity.

    Example:
        >>> from edsr_lib import Upscaler
        >>> from edsr_lib.io import load_image, write_image
        >>> up = Upscaler("edsr_baseline_x2", tile=None)
        >>> write_image("photo_x2.png", up(load_image("photo.jpg")))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: SRModel | str | os.PathLike[str],
        options: UpscaleOptions | None = None,
        /,
        **changes: Any,
    ) -> None:
        if options is None:
            options = UpscaleOptions(**changes)
        elif not isinstance(options, UpscaleOptions):
            raise TypeError(f"options must be an UpscaleOptions, got {type(options).__name__}")
        elif changes:
            options = options.replace(**changes)
        by_name = isinstance(model, str | os.PathLike)
        self.model: SRModel = load_model(model, cache=True)
        self.name: str = Path(model).name if by_name else getattr(self.model, "variant", "") or "model"
        self.options = options
        if options.outscale is None:
            self.scale: int | None = self.model.resolve_scale(options.scale)
            self.passes: tuple[int, ...] = (self.scale,)
        else:
            self.scale = None
            self.passes = plan_passes(self.model.scales, options.outscale)
            if options.wrap and math.prod(self.passes) != options.outscale:
                raise ValueError(
                    f"wrap=True needs an outscale that the model's scales reach exactly (a product of "
                    f"{', '.join(map(str, self.model.scales))}); {options.outscale} would need a bicubic shrink"
                )
        device = options.device
        if device is None:
            device = resolve_device(None) if by_name else next(self.model.parameters()).device
        self.device: torch.device = resolve_device(device)
        backend, precision = backends.defaults(options.backend, options.precision, self.device)
        self._half = resolve_half(precision if precision in ("bf16", "fp16") else None, self.device)
        backend, self.precision = backends.resolve(backend, precision, self.device)
        self._runs: dict[int, Runner] = {}
        used = []
        for scale in dict.fromkeys(self.passes):
            self._runs[scale], name = backends.make_runner(
                self.model,
                scale,
                backend,
                self.precision,
                device=self.device,
                channels_last=options.channels_last,
                compile=options.compile,
            )
            used.append(name)
        self.backend: str = used[0]
        self._dtype = self._half or torch.float32

    def __repr__(self) -> str:
        name = getattr(self.model, "name", None) or type(self.model).__name__
        return (
            f"Upscaler({name}, passes={self.passes}, device={self.device}, backend={self.backend!r}, "
            f"precision={self.precision!r})"
        )

    @property
    def factor(self) -> int | float:
        """How many times larger the output is: the scale, or ``outscale``."""
        return self.options.outscale if self.options.outscale is not None else self.scale

    def __call__(self, image: ImageT) -> ImageT:
        """Upscale an image or a batch.

        Args:
            image: A float tensor ``(C, H, W)`` or ``(N, C, H, W)`` with values in [0, 1], on
                any device; a uint8 or uint16 NumPy image ``(H, W, C)`` or ``(H, W)`` (or a
                batch ``(N, H, W, C)``) as :func:`edsr_lib.io.read_image` returns it; a PIL
                image or an :class:`~edsr_lib.io.Image16` (16-bit colour, as
                :func:`edsr_lib.io.load_image` returns it); or a list of them of one size and
                mode, run as one batch.

        Returns:
            For a tensor: a float tensor ``scale`` times larger, of the input's shape kind,
            dtype and device, not clamped (as the model returns it; the alpha channel is
            clamped). For an array: an array of the same dtype with the same channels,
            clamped and rounded (halves away from zero) as :func:`~edsr_lib.ops.quantize`
            does. For a PIL image (an :class:`~edsr_lib.io.Image16`): one of the same mode
            with the ICC profile, EXIF (orientation reset) and DPI (scaled) carried over; for
            a list, a list.

        Channels: an image with the model's channel count is upscaled as it is. For an RGB
        model, a grayscale image is replicated to RGB, upscaled, and reduced back to one
        channel by the mean of the three outputs; an alpha channel (2 or 4 channels) is
        resized with MATLAB bicubic :func:`~edsr_lib.ops.imresize` (clamped to [0, 1]) while
        the colour goes through the model.

        Raises:
            TypeError: For an unsupported image type.
            ValueError: For an unsupported channel count, values outside [0, 1] or an empty image.
            NonFiniteError: If the model's output holds NaN or infinity.
            MemoryError: If even the smallest tiles do not fit.
        """
        return self._adapt(image)

    # one adapter per image type, chosen by the type once (singledispatch caches the choice)
    @functools.singledispatchmethod
    def _adapt(self, image: Any) -> Any:
        raise TypeError(_UNSUPPORTED.format(type(image).__name__))

    @_adapt.register(torch.Tensor)
    @_adapt.register(np.ndarray)
    def _pixels(self, image: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        if self.options.outscale is None:
            return self._pass(image, self.passes[0])
        return self._to_outscale(image)

    @_adapt.register(Image.Image)
    @_adapt.register(Image16)
    def _one_pil(self, image: AnyImage) -> AnyImage:
        return self._pil([image])[0]

    @_adapt.register(list)
    @_adapt.register(tuple)
    def _list(self, images: Sequence[Any]) -> list[AnyImage]:
        if not adapters.is_pil(images):
            raise TypeError(_UNSUPPORTED.format(type(images).__name__))
        return self._pil(images)

    def _pil(self, images: Sequence[AnyImage]) -> list[AnyImage]:
        """PIL in, PIL out: upright pixels by :func:`~edsr_lib.adapters.from_pil`, metadata carried over."""
        sources, pixels = adapters.from_pil(images)
        return adapters.to_pil(sources, self._pixels(pixels), float(self.factor))

    def _to_outscale(self, image: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Chain the model passes of :func:`plan_passes`, then shrink to ``outscale`` with MATLAB bicubic."""
        outscale = self.options.outscale
        is_array = isinstance(image, np.ndarray)
        height, width = (image.shape[-3:-1] if image.ndim == 4 else image.shape[:2]) if is_array else image.shape[-2:]
        y = image
        for scale in self.passes:
            y = self._pass(y, scale)
        if math.prod(self.passes) == outscale:
            return y
        size = (math.ceil(outscale * height - 1e-6), math.ceil(outscale * width - 1e-6))
        if is_array and y.ndim == 4:
            return np.stack([adapters.resize_array(i, size) for i in y])
        return adapters.resize_array(y, size) if is_array else imresize(y, size=size)

    def _pass(self, image: torch.Tensor | np.ndarray, scale: int) -> torch.Tensor | np.ndarray:
        """One model pass at ``scale``; with ``wrap``, on the image wrapped around by the receptive radius."""
        if not self.options.wrap:
            return self._run(image, scale)
        margin = wrap.margin(self.model.receptive_radius(scale))
        return wrap.crop(self._run(wrap.pad(image, margin), scale), scale * margin)

    def _run(self, image: torch.Tensor | np.ndarray, scale: int) -> torch.Tensor | np.ndarray:
        """Tile, batch and run one pass; out of memory, retry with smaller tiles."""
        options, device = self.options, self.device
        adapted = adapters.adapt(image, self.model.n_colors, scale)
        height, width = adapted.x.shape[-2:]
        overlap = self.model.receptive_radius(scale) if options.tile_overlap is None else options.tile_overlap
        tile, batch_size = options.tile, options.batch_size
        if tile == "auto":
            tile, batch_size = plan_tiles(
                self.model,
                scale,
                height,
                width,
                device=device,
                dtype=self._dtype,
                overlap=overlap,
                batch_size=batch_size,
            )
        elif tile is not None and tile < overlap and max(height, width) > tile + 2 * overlap:
            cost = (tile + 2 * overlap) ** 2 / tile**2
            _warn(
                f"tile {tile} is smaller than the overlap {overlap} that exactness needs: each window computes "
                f"{cost:.1f} times the pixels it keeps; a larger tile is faster"
            )
        run = self._runs[scale]

        def convert(core: torch.Tensor) -> torch.Tensor:
            return adapted.convert(_check_finite_output(core))

        while True:
            fn = functools.partial(ensemble.self_ensemble, run, batch_size=batch_size) if options.self_ensemble else run
            try:
                with torch.inference_mode():
                    tiled_apply(
                        fn,
                        adapted.colour,
                        scale,
                        tile,
                        overlap,
                        batch_size=max(1, batch_size // 8) if options.self_ensemble else batch_size,
                        out=adapted.out,
                        convert=convert,
                        progress=options.progress,
                    )
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                current = max(tile) if isinstance(tile, tuple) else tile if tile is not None else max(height, width)
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
                _warn(f"out of memory on {device}; retrying with tile {tile} and batch size {batch_size}")
        return adapted.finish()


def as_upscaler(
    model: SRModel | str | os.PathLike[str] | Upscaler,
    options: UpscaleOptions | None = None,
    /,
    *,
    half: bool | str | torch.dtype | None = False,
    int8: bool = False,
    **changes: Any,
) -> Upscaler:
    """The :class:`Upscaler` a surface's arguments describe: ``model`` itself if it is one, else one built from them.

    Every surface that takes a model or an :class:`Upscaler` (folder jobs, video, Ray, the
    demo) goes through here, so the options are checked in one place.

    Args:
        model: An :class:`Upscaler` (used as it is), or what :class:`Upscaler` takes.
        options: The options, for a model.
        half: The older spelling of ``precision`` (see :func:`edsr_lib.options.precision_of`).
        int8: The older spelling of ``precision="int8"``.
        **changes: Fields of :class:`~edsr_lib.options.UpscaleOptions` by name, for a model
            (``scale=None`` is the default and is ignored with an :class:`Upscaler`).

    Raises:
        ValueError: For options given with an :class:`Upscaler` (it carries its own), and
            whatever :class:`Upscaler` raises.
    """
    precision = precision_of(half, int8)
    if precision is not None:
        if changes.get("precision") not in (None, precision):
            raise ValueError(f"precision={changes['precision']!r} and half/int8 ask for two precisions; give one")
        changes["precision"] = precision
    if isinstance(model, Upscaler):
        if changes.get("scale", 0) is None:
            del changes["scale"]
        if options is not None or changes:
            given = ", ".join(sorted(changes)) or "options"
            raise ValueError(f"an Upscaler carries its own options; {given} cannot be given with it")
        return model
    return Upscaler(model, options, **changes)


def upscale(
    model: SRModel | str | os.PathLike[str],
    image: ImageT,
    scale: int | None = None,
    *,
    half: bool | str | torch.dtype = False,
    int8: bool = False,
    **options: Any,
) -> ImageT:
    """Upscale an image (or a batch) with a super-resolution model, in one call: ``Upscaler(model, ...)(image)``.

    Builds an :class:`Upscaler` with the options given and calls it once; to upscale
    several images, make the :class:`Upscaler` once and call it for each (nothing is
    resolved again). A model given by name or folder is loaded once and kept for the next
    calls (see :func:`load_model`), and the backends keep what they make from a model (its
    fused copy, its runtime file) until its weights change, so a second call neither reads,
    hashes nor fuses it again. By default (``tile="auto"``) an image that would not fit the
    memory budget in one pass is processed in windows that overlap by the model's
    receptive radius, so the result equals the one-pass result to float rounding; an
    out-of-memory error halves the tile and retries.

    Unlike an :class:`Upscaler` made with its defaults (the fast path: bf16 where the CPU
    has it natively, the fastest installed backend), this one-call function computes the
    exact float32 result with PyTorch unless ``precision``, ``half``, ``int8`` or
    ``backend`` ask otherwise, as :func:`edsr_lib.evaluate` and research code expect.

    Args:
        model: An :class:`~edsr_lib.SRModel`, a registered name or a model folder; see :func:`load_model`.
        image: What :meth:`Upscaler.__call__` takes.
        scale: The scale; may be omitted for a single-scale model.
        half: An older spelling of ``precision``: ``True`` or ``"fp16"`` (``precision="fp16"``),
            ``"bf16"`` (``precision="bf16"``).
        int8: An older spelling of ``precision="int8"``.
        **options: The other fields of :class:`~edsr_lib.options.UpscaleOptions`: ``outscale``,
            ``device``, ``backend``, ``precision``, ``tile``, ``tile_overlap``,
            ``self_ensemble``, ``wrap``, ``batch_size``, ``channels_last``, ``compile``,
            ``progress``.

    Returns:
        What :meth:`Upscaler.__call__` returns.

    Raises:
        TypeError: If ``image`` or ``model`` is of an unsupported type, or an option is unknown.
        ValueError: For a bad option, a scale the model does not serve, an unsupported
            channel count, values outside [0, 1], or a precision that cannot run here.
        NonFiniteError: If the model's weights or its output hold NaN or infinity.

    Example:
        >>> from edsr_lib.io import load_image, write_image
        >>> sr = upscale("edsr_baseline_x2", load_image("photo.jpg"))  # doctest: +SKIP
        >>> write_image("photo_x2.png", sr)  # doctest: +SKIP
    """
    if not isinstance(model, Upscaler):  # exact unless asked: fp32 in PyTorch (an Upscaler's default is fast)
        if precision_of(half, int8) is None and options.get("precision") is None:
            options["precision"] = "fp32"
        if options.get("backend") is None and options.get("precision") != "int8" and not int8:
            options["backend"] = "torch"
    return as_upscaler(model, half=half, int8=int8, scale=scale, **options)(image)
