"""What every super-resolution model of the library shares: scales, input checks, fusion, config."""

from __future__ import annotations

import collections.abc
import copy
import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .. import _hub
from .._registry import architectures, register_architecture
from ..layers import MeanShift, create_block, default_conv

if TYPE_CHECKING:
    from .._pretrained import PretrainedCfg

__all__ = ["SRModel", "TrunkModel", "architectures", "scale_key"]


def scale_key(scale: int) -> str:
    """The key of a scale's branch in a model's per-scale module dicts (``"x2"`` for scale 2)."""
    return f"x{int(scale)}"


def _as_json(value: Any, hint: Any) -> Any:
    """``value`` in the JSON type its annotation ``hint`` names (``float``, ``int``, ``Sequence[...]``)."""
    if hint is float or hint is int:
        return hint(value)
    if typing.get_origin(hint) in (collections.abc.Sequence, list, tuple):
        item = (typing.get_args(hint) or (Any,))[0]
        return [_as_json(v, item) for v in value]
    return value


def _recording_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a model's ``__init__`` so that the model keeps the arguments it was built with."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: SRModel, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        try:
            hints = typing.get_type_hints(init)
        except (NameError, TypeError):  # an annotation that names what its module does not define
            hints = {}
        arguments: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[name] = _as_json(value, hints.get(name))
        # a subclass's __init__ returns last, so the arguments kept are those of the class built
        self._arguments = arguments

    return __init__


def _tracing() -> bool:
    """True while a model is traced, scripted, compiled or exported: data-dependent checks must not run."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


class SRModel(nn.Module):
    """Base class of the library's super-resolution models.

    Subclasses set :attr:`architecture` and build their modules in ``__init__``; the
    arguments ``__init__`` was called with (defaults included, in the JSON types their
    annotations name) become :attr:`config`, which :meth:`save_pretrained` writes to
    ``config.json`` and which rebuilds the model.

    They also declare their layout, for code that maps weights from one model to another
    (:func:`edsr_lib.train.load_init_weights`, the converter): :attr:`body_module`,
    :attr:`upsampler_module` and :attr:`scale_branch_modules`; :class:`TrunkModel`, the
    base of the EDSR trunk's families, declares :attr:`head_module` and :attr:`tail_module`
    too. A family on another trunk leaves them ``None``, and what needs them refuses it in
    one line (the converter's layouts); what the base class can do for any family works
    for it: :meth:`fuse` folds its blocks, :meth:`receptive_radius` (tiling) and
    :meth:`feature_channels` (the memory estimate) read the convolutions :meth:`_conv_path`
    yields, and :meth:`summary` (the model card) its config.

    Inputs are float NCHW tensors in [0, 1] with :attr:`n_colors` channels; outputs are
    float tensors of the same dtype, ``scale`` times larger, not clamped.
    """

    #: Name of the model family; ``config["architecture"]`` holds it.
    architecture: ClassVar[str] = ""
    #: The ``nn.Sequential`` of residual blocks, closed by one convolution.
    body_module: ClassVar[str] = "body"
    #: The upsampler: one module, or (multi-scale) an ``nn.ModuleDict`` of one per scale.
    upsampler_module: ClassVar[str] = "upsampler"
    #: The ``nn.ModuleDict``\ s that hold one branch per scale, keyed by :func:`scale_key`.
    scale_branch_modules: ClassVar[tuple[str, ...]] = ()
    #: The first convolution (colours to features) after the input mean shift; ``None``: no EDSR trunk.
    head_module: ClassVar[str | None] = None
    #: The last convolution (features to colours) before the output mean shift; ``None``: no EDSR trunk.
    tail_module: ClassVar[str | None] = None

    #: The registered variant the model was created as (``"edsr_baseline_x2"``), if any.
    variant: str | None = None
    #: The pretrained config whose weights were loaded, if any.
    pretrained_cfg: PretrainedCfg | None = None
    #: True once :meth:`fuse` has folded constants into the convolutions.
    fused: bool = False

    scales: tuple[int, ...]
    n_colors: int
    _arguments: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_architecture(cls)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_arguments(cls.__dict__["__init__"])

    @property
    def config(self) -> dict[str, Any]:
        """The architecture name and the keyword arguments that rebuild this model (a copy)."""
        return {"architecture": self.architecture, **copy.deepcopy(self._arguments)}

    def scale_branches(self) -> dict[str, dict[int, nn.Module]]:
        """Each per-scale module dict of :attr:`scale_branch_modules`, as ``{name: {scale: branch}}``."""
        return {
            name: {s: self.get_submodule(name)[scale_key(s)] for s in self.scales} for name in self.scale_branch_modules
        }

    # ------------------------------------------------------------------ checks
    def resolve_scale(self, scale: int | None) -> int:
        """Return the scale to run: ``scale`` if this model serves it, its only scale if ``None``.

        Raises:
            ValueError: If ``scale`` is not one of :attr:`scales`, or is ``None`` for a
                multi-scale model.
        """
        if scale is None:
            if len(self.scales) == 1:
                return self.scales[0]
            raise ValueError(f"this model serves several scales {self.scales}: pass scale= one of them")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale not in self.scales:
            raise ValueError(f"scale {scale!r} is not one of this model's scales {self.scales}")
        return int(scale)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a float NCHW tensor with :attr:`n_colors` channels in [0, 1].

        The values are checked as :func:`edsr_lib.upscale` checks them (0..255 data, NaN and
        infinities refused), except in a fused model (:meth:`fuse`: the library's fast path,
        whose input ``upscale`` has checked) and while the model is traced, compiled or exported.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"expected a 4-D NCHW tensor (batch, {self.n_colors}, height, width), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
        if x.shape[1] != self.n_colors:
            raise ValueError(
                f"expected {self.n_colors} colour channels in dimension 1 (NCHW), got shape {tuple(x.shape)}"
            )
        if x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"the input is empty: shape {tuple(x.shape)}")
        if not self.fused and x.device.type != "meta" and not _tracing() and x.numel():
            low, high = torch.aminmax(x.detach())
            if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
                raise ValueError("the input holds NaN or infinite values")
            # outputs of a model overshoot [0, 1] a little and may be fed back; 0..255 data does not
            if high > 2 or low < -1:
                raise ValueError(
                    f"the input has values in [{low.item():g}, {high.item():g}]; expected [0, 1] "
                    "(divide 0..255 data by 255)"
                )
        weights = next(self.parameters(), None)
        if weights is not None and x.dtype != weights.dtype and not torch.is_autocast_enabled(x.device.type):
            name = str(weights.dtype).removeprefix("torch.")
            raise TypeError(
                f"the input is {str(x.dtype).removeprefix('torch.')} but the model's weights are {name}: "
                f"convert the input (x.to(torch.{name})) or the model (model.to(torch.{str(x.dtype)[6:]}))"
            )

    # ------------------------------------------------------------- geometry
    def receptive_radius(self, scale: int | None = None) -> int:
        """How many LR pixels on each side can influence one output pixel (rounded up).

        Tiles that overlap by at least this much give the same result as one pass.
        """
        scale = self.resolve_scale(scale)
        radius = sum(conv.kernel_size[0] // 2 * lr_per_px for conv, lr_per_px in self._conv_path(scale))
        return math.ceil(radius - 1e-9)

    def feature_channels(self, scale: int | None = None) -> int:
        """``F``, the width of the features at LR resolution: the first convolution's output channels.

        The memory estimate (:func:`edsr_lib.memory.activation_bytes_per_pixel`) counts in it.
        """
        conv, _ = next(iter(self._conv_path(self.resolve_scale(scale))))
        return int(conv.out_channels)

    def _conv_path(self, scale: int) -> Iterable[tuple[nn.Conv2d, float]]:
        """Each convolution a forward pass at ``scale`` runs, with the size of its pixels in LR pixels."""
        raise NotImplementedError(
            f"{type(self).__name__} does not say which convolutions a forward pass runs (_conv_path): "
            "the receptive radius, exact tiling and the memory estimate need them"
        )

    def summary(self) -> str:
        """One line on the model's structure for its card: scales and parameters."""
        scales = ", ".join(f"x{s}" for s in self.scales)
        return f"scales {scales}; {self.num_parameters():,} parameters"

    # --------------------------------------------------------------- fusion
    @torch.no_grad()
    def fuse(self) -> SRModel:
        """Fold constants into convolutions for faster inference (in place; returns ``self``).

        Every submodule with a ``fuse()`` method folds its own (a ResBlock its
        ``res_scale``), then :meth:`_fuse_trunk` folds what the family's trunk holds
        (:class:`TrunkModel`: the mean shifts' range and output mean). A fused model is for
        inference: it cannot be saved with :meth:`save_pretrained`.
        """
        if self.fused:
            return self
        for module in self.modules():
            if module is not self and callable(getattr(module, "fuse", None)):
                module.fuse()
        self._fuse_trunk()
        self.fused = True
        return self

    def _fuse_trunk(self) -> None:
        """Fold the trunk's constants into its convolutions (nothing outside :class:`TrunkModel`)."""

    # ------------------------------------------------------------ weights I/O
    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> Path:
        """Write ``model.safetensors`` and ``config.json`` to ``save_directory`` (atomically).

        See :func:`edsr_lib.hub.save_pretrained` for the keyword arguments.
        """
        return _hub.save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload weights, config and model card to the Hugging Face Hub repository ``repo_id``.

        See :func:`edsr_lib.hub.push_to_hub` for the keyword arguments.
        """
        return _hub.push_to_hub(self, repo_id, **kwargs)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters; the fixed mean shifts hold none."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class TrunkModel(SRModel):
    """Base class of the families built on EDSR's trunk: one place builds, runs and fuses it.

    ``sub_mean`` -> ``head`` conv -> [per-scale pre-processing] -> ``body`` (residual blocks
    and a conv, global skip) -> upsampler -> ``tail`` conv -> ``add_mean``. A subclass builds
    the trunk with :meth:`_build_trunk`, its upsampler (and any pre-processing) itself, and
    says which of them a scale runs in :meth:`_branches`; :meth:`forward`, :meth:`_conv_path`,
    :meth:`fuse`, :meth:`summary` and the converter's library layout then come from here.
    """

    head_module: ClassVar[str | None] = "head"
    tail_module: ClassVar[str | None] = "tail"

    n_feats: int

    def _build_trunk(
        self,
        n_resblocks: int,
        n_feats: int,
        res_scale: float,
        rgb_range: float,
        rgb_mean: Sequence[float],
        n_colors: int,
        kernel_size: int,
        block: str,
        *,
        upsampler: Callable[[], nn.Module],
        preprocess: Callable[[], nn.Module] | None = None,
    ) -> None:
        """Build the trunk in the order it runs (the state dict's order; the seeded initialisation's too).

        The positional arguments are the families' constructor arguments of those names, in
        their order.

        Args:
            n_resblocks: Residual blocks in the body.
            n_feats: Feature channels ``F``.
            res_scale: Residual scaling of the body's blocks.
            rgb_range: Pixel range the network works in.
            rgb_mean: Per-channel mean in [0, 1] units (``n_colors`` values).
            n_colors: Image channels.
            kernel_size: Kernel size of head, body and tail.
            block: Registered name of the body block.
            upsampler: Builds what :attr:`upsampler_module` holds (after the body).
            preprocess: Builds the per-scale pre-processing between head and body, kept as
                the first of :attr:`scale_branch_modules` that is not the upsampler.
        """
        if len(rgb_mean) != n_colors:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {n_colors} colour channels")
        self.n_colors = n_colors
        self.n_feats = n_feats
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.head = default_conv(n_colors, n_feats, kernel_size)
        if preprocess is not None:
            name = next(m for m in self.scale_branch_modules if m != self.upsampler_module)
            self.add_module(name, preprocess())
        self.body = nn.Sequential(
            *[
                create_block(block, n_feats=n_feats, kernel_size=kernel_size, res_scale=res_scale)
                for _ in range(n_resblocks)
            ],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.add_module(self.upsampler_module, upsampler())
        self.tail = default_conv(n_feats, n_colors, kernel_size)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)

    def _branches(self, scale: int) -> tuple[nn.Module | None, nn.Module]:
        """The pre-processing (``None``: none) and the upsampler that a forward pass at ``scale`` runs."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """Upscale ``x`` (float NCHW in [0, 1]) by ``scale``, running only that scale's branches.

        Raises:
            ValueError: If ``scale`` is not one of :attr:`scales` (or missing when there
                are several), or ``x`` is not a float NCHW batch of :attr:`n_colors` channels.
        """
        preprocess, upsampler = self._branches(self.resolve_scale(scale))
        self.check_input(x)
        x = self.head(self.sub_mean(x))
        if preprocess is not None:
            x = preprocess(x)
        x = self.body(x) + x
        return self.add_mean(self.tail(upsampler(x)))

    def _conv_path(self, scale: int) -> Iterable[tuple[nn.Conv2d, float]]:
        preprocess, upsampler = self._branches(scale)
        yield self.head, 1.0
        for part in (preprocess, self.body):
            if part is not None:
                yield from ((m, 1.0) for m in part.modules() if isinstance(m, nn.Conv2d))
        yield from upsampler.conv_path()
        yield self.tail, 1.0 / scale

    def feature_channels(self, scale: int | None = None) -> int:
        """``F``, the number of feature channels of the trunk (``n_feats``)."""
        self.resolve_scale(scale)
        return self.n_feats

    def summary(self) -> str:
        """One line for the card: blocks, features, residual scaling, scales and parameters."""
        config = self.config
        return (
            f"{config.get('n_resblocks')} residual blocks, {config.get('n_feats')} features, "
            f"res_scale {config.get('res_scale')}; {super().summary()}"
        )

    def _fuse_trunk(self) -> None:
        """``rgb_range`` into the head; the output mean shift and ``1/rgb_range`` into the tail.

        The input mean is still subtracted (a few channels, negligible), because the head's
        zero padding makes folding it into the bias inexact at the borders.
        """
        sub_mean: MeanShift = self.sub_mean
        self.head.weight.mul_(sub_mean.rgb_range)
        sub_mean.rgb_range = 1.0
        add_mean: MeanShift = self.add_mean
        tail: nn.Conv2d = self.tail
        tail.weight.div_(add_mean.rgb_range)
        tail.bias.div_(add_mean.rgb_range).add_(add_mean.mean.view(-1).to(tail.bias.dtype))
        self.add_mean = nn.Identity()
