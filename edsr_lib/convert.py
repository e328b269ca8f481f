"""Third-party EDSR/MDSR checkpoints: read them, detect what they hold, map them onto the library's models.

In the spirit of spandrel, :func:`detect` reads only key names and tensor shapes, infers
the hyperparameters, and refuses a state dict that it cannot map completely (a missing or
left-over key, a wrong shape, a scale the sub-pixel upsampler cannot make). Three layouts
are known:

- ``"edsr-pytorch"``: the reference code and its official checkpoints (``head.0``,
  ``body.N.body.{0,2}``, ``tail.0.<i>``, ``tail.1``, fixed ``sub_mean``/``add_mean``
  convolutions; MDSR adds ``pre_process.S`` and ``upsample.S``). Images in
  ``[0, rgb_range]``.
- ``"basicsr"``: BasicSR's ``EDSR`` (``conv_first``, ``body.N.conv1/conv2``,
  ``conv_after_body``, ``upsample.<i>``, ``conv_last``), usually wrapped in
  ``params``/``params_ema``. Its ``img_range`` and ``rgb_mean`` are options, not tensors.
- ``"super-image"``: the ``super-image`` package's ``EdsrModel`` (e.g.
  ``eugenesiow/edsr-base``). Same key names as EDSR-PyTorch, but its ``forward`` never
  applies ``sub_mean``/``add_mean`` and works on [0, 1] images, so the converted model gets
  ``rgb_range=1`` and a zero mean. Tensors cannot tell the two apart: :func:`convert`
  recognises super-image by the ``config.json`` (``"model_type": "EDSR"``) that the package
  writes beside its weights; otherwise pass ``layout="super-image"``.

The fixed mean shifts are not parameters of the library's models (their mean and range
come from the config): the converter checks them and carries their values into
``rgb_mean``/``rgb_range``. ``res_scale`` is stored nowhere: it is assumed (0.1 for EDSR
with 256 features and 32 blocks, as in the paper, else 1.0) and can be overridden.

Example:
    >>> from edsr_lib.convert import convert
    >>> model = convert("edsr_baseline_x2-1bc95232.pt", "converted/")  # doctest: +SKIP
    >>> model.conversion.notes  # doctest: +SKIP
    ('recognised official checkpoint edsr_baseline_x2-1bc95232.pt', ...)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .hub import sha256sum
from .layers import DIV2K_RGB_MEAN
from .models import SRModel, architectures
from .models.mdsr import scale_key
from .registry import create_model

__all__ = [
    "LAYOUTS",
    "OFFICIAL_CHECKPOINTS",
    "ConvertedSpec",
    "OfficialCheckpoint",
    "convert",
    "detect",
    "identify_file",
    "load_state_dict",
]

logger = logging.getLogger(__name__)

#: The third-party layouts :func:`detect` knows.
LAYOUTS: tuple[str, ...] = ("edsr-pytorch", "basicsr", "super-image")

#: Wrappers around a state dict, in order of preference (BasicSR's EMA weights first).
_WRAPPERS: tuple[str, ...] = ("params_ema", "params", "state_dict", "model")

#: MDSR's scale-specific pre-processing holds this many ResBlocks (the paper's two).
_PREPROCESS_BLOCKS = 2

_MEAN_SHIFTS: tuple[str, ...] = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")


# --------------------------------------------------------------------------- official files
@dataclass(frozen=True)
class OfficialCheckpoint:
    """An official EDSR-PyTorch checkpoint file.

    Attributes:
        filename: Its published file name.
        variant: The registered edsr-lib variant whose weights it holds.
        sha256: Its full hex digest or, where that is not recorded, the 8-digit prefix that
            its file name carries (the check ``torch.hub`` makes).
        size: Its size in bytes, where known.
    """

    filename: str
    variant: str
    sha256: str
    size: int | None = None

    @property
    def full_digest(self) -> bool:
        """True when :attr:`sha256` is the full digest rather than the file name's prefix."""
        return len(self.sha256) == 64


#: Digest (full, or the file name's 8-digit prefix) -> official checkpoint.
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    entry.sha256: entry
    for entry in (
        OfficialCheckpoint(
            "edsr_baseline_x2-1bc95232.pt",
            "edsr_baseline_x2",
            "1bc9523228fdc3b0a5ddb0d7062001e22b31bbb398ae09cfdefb97e8ee06e171",
            5_490_680,
        ),
        OfficialCheckpoint(
            "edsr_baseline_x3-abf2a44e.pt",
            "edsr_baseline_x3",
            "abf2a44e7a137228efa42a4264a23e12603168d43ac7596b1adef40c649b9240",
            6_229_240,
        ),
        OfficialCheckpoint(
            "edsr_baseline_x4-6b446fab.pt",
            "edsr_baseline_x4",
            "6b446fab734f4de74448d2fd1f3f990f5bae726e49dc7eff2ae9cefe444a1723",
            6_081_831,
        ),
        OfficialCheckpoint(
            "mdsr_baseline-a00cab12.pt",
            "mdsr_baseline",
            "a00cab12f80c2a7cf0a15c3b9fcae3cfe9273121e8942692303e5010d1dca5ef",
            12_924_933,
        ),
        OfficialCheckpoint(
            "mdsr-4a78bedf.pt",
            "mdsr",
            "4a78bedfdb8fb1ad81b4bce9e13a907c0355a2ab52adafe2da868f9bb9096311",
            31_869_146,
        ),
        OfficialCheckpoint("edsr_x2-0edfb8a3.pt", "edsr_x2", "0edfb8a3"),
        OfficialCheckpoint("edsr_x3-ea3ef2c6.pt", "edsr_x3", "ea3ef2c6"),
        OfficialCheckpoint("edsr_x4-4f62e9ef.pt", "edsr_x4", "4f62e9ef"),
    )
}


def identify_file(path: str | Path) -> OfficialCheckpoint | None:
    """Recognise an official EDSR-PyTorch checkpoint by the sha256 of its bytes.

    Args:
        path: The file to check.

    Returns:
        The matching entry of :data:`OFFICIAL_CHECKPOINTS`, or ``None``.
    """
    digest = sha256sum(path)
    return OFFICIAL_CHECKPOINTS.get(digest) or OFFICIAL_CHECKPOINTS.get(digest[:8])


# ------------------------------------------------------------------------------ reading
def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the state dict of a third-party checkpoint, unwrapped and without ``module.`` prefixes.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(map_location="cpu", weights_only=True)``, which never runs code from the
    file. The wrappers ``params_ema`` (preferred, BasicSR's EMA weights), ``params``,
    ``state_dict`` and ``model`` are unwrapped; what was done is logged at INFO level.

    Args:
        path: The checkpoint file.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file cannot be read as a checkpoint of tensors.
    """
    state_dict, notes = _read_checkpoint(Path(path))
    for note in notes:
        logger.info("%s: %s", path, note)
    return state_dict


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file: pass a checkpoint file (.pt, .pth or .safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"cannot read {path} with torch.load(weights_only=True): it is not a checkpoint of tensors "
            "(edsr-lib never unpickles other Python objects)"
        ) from exc
    except Exception as exc:  # torch.load and safetensors raise many types for a damaged file
        lines = str(exc).strip().splitlines()
        reader = "safetensors" if path.suffix == ".safetensors" else "torch.load"
        raise ValueError(f"cannot read {path} with {reader}: {lines[0] if lines else type(exc).__name__}") from exc
    return _unwrap(obj)


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], list[str]]:
    notes: list[str] = []
    for _ in range(len(_WRAPPERS) + 1):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        key = next((k for k in _WRAPPERS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)), None)
        if key is None:
            raise ValueError(f"expected a state dict (names -> tensors), found {_describe_object(obj)}")
        if key == "params_ema" and isinstance(obj.get("params"), Mapping):
            notes.append("used BasicSR's 'params_ema' (the EMA weights), not 'params'")
        else:
            notes.append(f"unwrapped '{key}'")
        obj = obj[key]
    else:
        raise ValueError(f"expected a state dict (names -> tensors), found {_describe_object(obj)}")
    state_dict = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
        notes.append("stripped the 'module.' prefix of DataParallel")
    return state_dict, notes


def _describe_object(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}"
    if not obj:
        return "an empty dict"
    odd = [f"{k} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    return f"a dict with non-tensor entries {_some(odd)} and none of the wrappers {', '.join(_WRAPPERS)}"


def _some(items: Iterable[str], limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


# ----------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class _Names:
    """Where one layout keeps each convolution (``{i}``: block, ``{b}``: MDSR branch, ``{k}``: index)."""

    head: str
    block: tuple[str, str]
    body_end: str
    upsampler: str
    tail: str
    preprocess: str = ""  # MDSR: conv {c} of pre-processing block {p} of branch {b}


# ResBlock convolutions: the reference code and edsr-lib share the Sequential indices 0 and 2
_RESBLOCK = ("body.{i}.body.0", "body.{i}.body.2")
_PREPROCESS = "pre_process.{b}.{p}.body.{c}"
_OFFICIAL_EDSR = _Names("head.0", _RESBLOCK, "body.{n}", "tail.0.{k}", "tail.1")
_OFFICIAL_MDSR = _Names("head.0", _RESBLOCK, "body.{n}", "upsample.{b}.{k}", "tail.0", _PREPROCESS)
_BASICSR = _Names("conv_first", ("body.{i}.conv1", "body.{i}.conv2"), "conv_after_body", "upsample.{k}", "conv_last")
_LIBRARY = {
    "edsr": _Names("head", _RESBLOCK, "body.{n}", "upsampler.{k}", "tail"),
    "mdsr": _Names("head", _RESBLOCK, "body.{n}", "upsample.{b}.{k}", "tail", _PREPROCESS),
}


def _conv_names(names: _Names, n_resblocks: int, branches: Sequence[tuple[str, int]]) -> list[str]:
    """Every convolution in a fixed order; ``branches`` holds (branch label, upsampler convolutions)."""
    convs = [names.head]
    if names.preprocess:
        convs += [
            names.preprocess.format(b=b, p=p, c=c)
            for b, _ in branches
            for p in range(_PREPROCESS_BLOCKS)
            for c in (0, 2)
        ]
    convs += [conv.format(i=i) for i in range(n_resblocks) for conv in names.block]
    convs.append(names.body_end.format(n=n_resblocks))
    convs += [names.upsampler.format(b=b, k=2 * j) for b, n_convs in branches for j in range(n_convs)]
    convs.append(names.tail)
    return convs


def _numbers(state_dict: Mapping[str, torch.Tensor], template: str) -> list[int]:
    """Sorted values of the one ``{field}`` of ``template`` among the state dict's ``.weight`` keys."""
    pattern = re.compile(re.sub(r"\\\{\w+\\\}", r"(\\d+)", re.escape(template + ".weight")))
    return sorted({int(m.group(1)) for key in state_dict if (m := pattern.fullmatch(key))})


def _upsampler_scale(weights: Sequence[torch.Tensor], n_feats: int, where: str) -> int:
    """The scale of a sub-pixel upsampler from its convolutions' output channels."""
    ratios = [w.shape[0] / n_feats if w.dim() else 0.0 for w in weights]
    if ratios == [9.0]:
        return 3
    if ratios and all(r == 4.0 for r in ratios):
        return 2 ** len(ratios)
    found = ", ".join(f"{r:g}F" for r in ratios) or "no convolutions"
    raise ValueError(
        f"unsupported upsampler at {where}: {found} (F = {n_feats} features); edsr-lib's sub-pixel upsampler "
        "has one 9F convolution (x3) or n 4F convolutions (x2^n)"
    )


@dataclass(frozen=True)
class ConvertedSpec:
    """What :func:`detect` read from a third-party state dict, and how it maps onto edsr-lib.

    Attributes:
        layout: The source layout, one of :data:`LAYOUTS`.
        architecture: ``"edsr"`` or ``"mdsr"``.
        kwargs: Keyword arguments of the library model that holds the weights
            (``scale`` or ``scales``, ``n_resblocks``, ``n_feats``, ``res_scale``,
            ``rgb_range``, ``rgb_mean``, ``n_colors``, ...).
        key_map: Source key -> library state-dict key, for every parameter.
        absorbed: Source keys that are not parameters of the library's model: fixed mean
            shifts, checked and carried into ``rgb_mean``/``rgb_range`` (or, for
            super-image, unused by the source model itself).
        notes: What was assumed, carried over or recognised, in words.
        official: The official checkpoint the file was recognised as (set by :func:`convert`).
        source: The file it was read from (set by :func:`convert`).
    """

    layout: str
    architecture: str
    kwargs: dict[str, Any]
    key_map: dict[str, str]
    absorbed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    official: OfficialCheckpoint | None = None
    source: str | None = None

    @property
    def scales(self) -> tuple[int, ...]:
        """The scales the model serves."""
        return tuple(self.kwargs["scales"]) if "scales" in self.kwargs else (int(self.kwargs["scale"]),)

    def describe(self) -> str:
        """One line: architecture, scales and sizes, e.g. ``"EDSR x2: 16 blocks, 64 features, res_scale 1"``."""
        scales = ", ".join(f"x{s}" for s in self.scales)
        k = self.kwargs
        return (
            f"{self.architecture.upper()} {scales}: {k['n_resblocks']} blocks, {k['n_feats']} features, "
            f"res_scale {k['res_scale']:g}"
        )

    def load(self, state_dict: Mapping[str, torch.Tensor]) -> SRModel:
        """Build the library model and load the source tensors into it (eval mode).

        The model's ``conversion`` attribute is this spec.

        Args:
            state_dict: The source state dict this spec was detected from.
        """
        model = architectures()[self.architecture](**self.kwargs)
        model.load_state_dict({lib: state_dict[src] for src, lib in self.key_map.items()}, strict=True)
        model.variant = self.official.variant if self.official else None
        model.pretrained_cfg = None
        model.conversion = self
        return model.eval()


def detect(state_dict: Mapping[str, torch.Tensor], layout: str | None = None, **overrides: Any) -> ConvertedSpec:
    """Infer which model a third-party state dict holds and how its keys map onto edsr-lib's.

    Only key names and tensor shapes are read (the values of the fixed mean shifts too).
    The state dict must map completely: every key used, every library parameter filled,
    every shape right.

    Args:
        state_dict: An unwrapped state dict (see :func:`load_state_dict`).
        layout: One of :data:`LAYOUTS`; by default read from the key names, where
            EDSR-PyTorch's names mean ``"edsr-pytorch"`` (super-image uses the same names:
            pass ``"super-image"`` for its checkpoints).
        **overrides: What the tensors do not fix: ``res_scale`` (any layout) and
            ``rgb_range`` (EDSR-PyTorch: how to split the mean shift into range and mean;
            BasicSR: its ``img_range``), ``rgb_mean`` (BasicSR without a ``mean`` tensor).

    Returns:
        The detected spec; :meth:`ConvertedSpec.load` builds the model.

    Raises:
        ValueError: For an unknown layout, an unsupported upsampler, an override the
            checkpoint fixes, or a state dict that does not map completely (the message
            names the missing, unexpected and wrongly shaped keys).
    """
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")
    keys = set(state_dict)
    looks_like = "basicsr" if "conv_first.weight" in keys else "edsr-pytorch" if "head.0.weight" in keys else None
    if looks_like is None:
        raise ValueError(_unknown_layout_message(keys))
    notes: list[str] = []
    layout_guessed = layout is None
    if layout is None:
        layout = looks_like
    elif (layout == "basicsr") != (looks_like == "basicsr"):
        raise ValueError(f"layout {layout!r} was asked for, but the key names are {looks_like}'s")
    mdsr = looks_like == "edsr-pytorch" and any(k.startswith(("pre_process.", "upsample.")) for k in keys)
    architecture = "mdsr" if mdsr else "edsr"
    if layout == "super-image" and mdsr:
        raise ValueError("super-image's MdsrModel is not supported: only its EdsrModel layout is known")
    names = _BASICSR if layout == "basicsr" else _OFFICIAL_MDSR if mdsr else _OFFICIAL_EDSR

    allowed = {"res_scale"} | ({"rgb_range"} if layout != "super-image" else set())
    if layout == "basicsr" and "mean" not in keys:
        allowed.add("rgb_mean")
    if refused := sorted(set(overrides) - allowed):
        raise ValueError(
            f"{', '.join(refused)} cannot be set for this {layout} checkpoint: it is read from the tensors or fixed "
            f"by the layout; what can be set here: {', '.join(sorted(allowed))}"
        )

    head = state_dict[f"{names.head}.weight"]
    if head.dim() != 4:
        raise ValueError(f"{names.head}.weight should be a 4-D convolution weight, got shape {tuple(head.shape)}")
    n_feats, n_colors, kernel_size = int(head.shape[0]), int(head.shape[1]), int(head.shape[-1])
    blocks = _numbers(state_dict, names.block[0])
    n_resblocks = blocks[-1] + 1 if blocks else 0

    labels = [""]
    if mdsr:
        found = set(_numbers(state_dict, "upsample.{b}.0")) | set(_numbers(state_dict, "pre_process.{b}.0.body.0"))
        labels = [str(b) for b in sorted(found)]
        if not labels:
            raise ValueError("an MDSR layout without branches: no 'upsample.<branch>.0.weight' keys")
    branches = _read_branches(state_dict, names, labels, n_feats)
    scales = [scale for *_, scale in branches]
    rgb_range, rgb_mean, absorbed = _range_and_mean(state_dict, layout, n_colors, overrides, notes)
    if layout == "edsr-pytorch" and layout_guessed and not mdsr:
        notes.append(
            "EDSR-PyTorch key names; super-image checkpoints share them but take [0, 1] images without "
            "mean shifts: convert those with layout='super-image'"
        )

    if "res_scale" in overrides:
        res_scale = float(overrides["res_scale"])
    else:
        large = architecture == "edsr" and n_feats == 256 and n_resblocks == 32
        res_scale = 0.1 if large else 1.0
        why = "the paper's value for EDSR with 32 blocks of 256 features" if large else "the paper's value"
        notes.append(f"res_scale is stored in no checkpoint: {res_scale:g} assumed ({why}); override with res_scale=")

    kwargs: dict[str, Any] = {"n_resblocks": n_resblocks, "n_feats": n_feats, "res_scale": res_scale}
    kwargs.update(rgb_range=rgb_range, rgb_mean=rgb_mean, n_colors=n_colors, kernel_size=kernel_size)
    if architecture == "edsr":
        kwargs = {"scale": scales[0], **kwargs}
    else:
        kwargs = {"scales": sorted(scales), **kwargs}
        pre = state_dict.get(names.preprocess.format(b=labels[0], p=0, c=0) + ".weight")
        kwargs["preprocess_kernel_size"] = int(pre.shape[-1]) if pre is not None and pre.dim() == 4 else 5

    source = _conv_names(names, n_resblocks, [(label, n) for label, _, n, _ in branches])
    target = _conv_names(_LIBRARY[architecture], n_resblocks, [(lib, n) for _, lib, n, _ in branches])
    key_map = {f"{s}.{p}": f"{t}.{p}" for s, t in zip(source, target, strict=True) for p in ("weight", "bias")}
    _check_complete(state_dict, layout, architecture, kwargs, key_map, absorbed)
    return ConvertedSpec(layout, architecture, kwargs, key_map, tuple(absorbed), tuple(notes))


def _read_branches(
    state_dict: Mapping[str, torch.Tensor], names: _Names, labels: Sequence[str], n_feats: int
) -> list[tuple[str, str, int, int]]:
    """Per upsampling branch: source label, library label, number of convolutions, scale."""
    branches = []
    for label in labels:
        template = names.upsampler.format(b=label, k="{k}")
        weights = [state_dict[f"{template.format(k=k)}.weight"] for k in _numbers(state_dict, template)]
        scale = _upsampler_scale(weights, n_feats, template.format(k="*"))
        branches.append((label, scale_key(scale), len(weights), scale))
    scales = [scale for *_, scale in branches]
    if len(set(scales)) != len(scales):
        raise ValueError(f"two MDSR branches upsample by the same scale: branch scales {scales}")
    return branches


def _range_and_mean(
    state_dict: Mapping[str, torch.Tensor], layout: str, n_colors: int, overrides: Mapping[str, Any], notes: list[str]
) -> tuple[float, list[float], list[str]]:
    """``rgb_range``, ``rgb_mean`` and the source keys they were read from (or that go unused)."""
    if layout == "edsr-pytorch":
        rgb_range, rgb_mean = _official_mean_shift(state_dict, n_colors, overrides.get("rgb_range"), notes)
        return rgb_range, rgb_mean, list(_MEAN_SHIFTS)
    if layout == "super-image":
        notes.append("super-image's EdsrModel works on [0, 1] images and never applies its sub_mean/add_mean")
        return 1.0, [0.0] * n_colors, [k for k in _MEAN_SHIFTS if k in state_dict]
    rgb_range, rgb_mean = _basicsr_mean(state_dict, n_colors, overrides, notes)
    return rgb_range, rgb_mean, ["mean"] if "mean" in state_dict else []


def _unknown_layout_message(keys: set[str]) -> str:
    sample = _some(sorted(keys), 6)
    if {"head.weight", "tail.weight"} <= keys:
        return (
            f"this looks like edsr-lib's own format (keys {sample}): load it with edsr_lib.from_pretrained or "
            "create_model(..., weights=...)"
        )
    return (
        f"unknown layout: neither 'head.0.weight' (EDSR-PyTorch, super-image) nor 'conv_first.weight' (BasicSR) "
        f"is among the keys ({sample})"
    )


def _snap_to_div2k(mean: torch.Tensor) -> list[float] | None:
    """The DIV2K mean if ``mean`` is it to float32 rounding, else ``None``."""
    div2k = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    if mean.shape == div2k.shape and torch.allclose(mean.double(), div2k, rtol=0, atol=1e-6):
        return list(DIV2K_RGB_MEAN)
    return None


def _official_mean_shift(
    state_dict: Mapping[str, torch.Tensor], n_colors: int, rgb_range: float | None, notes: list[str]
) -> tuple[float, list[float]]:
    """``rgb_range`` and ``rgb_mean`` from EDSR-PyTorch's fixed 1x1 mean-shift convolutions.

    Their bias is ``-/+ rgb_range * mean``: with the DIV2K mean the range follows from the
    ratio; any other mean is carried with ``rgb_range`` 255 (or the one given).
    """
    if not all(k in state_dict for k in _MEAN_SHIFTS):
        return float(rgb_range or 255.0), list(DIV2K_RGB_MEAN)  # the completeness check names what is missing
    eye = torch.eye(n_colors, dtype=torch.float64).view(n_colors, n_colors, 1, 1)
    shifts = []
    for name, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        weight, bias = state_dict[f"{name}.weight"].double(), state_dict[f"{name}.bias"].double()
        if weight.shape != eye.shape or bias.shape != (n_colors,):
            raise ValueError(
                f"{name} should be a {n_colors}-channel 1x1 mean shift (weight {tuple(eye.shape)}, bias "
                f"({n_colors},)), got weight {tuple(weight.shape)} and bias {tuple(bias.shape)}"
            )
        if not torch.allclose(weight, eye, rtol=0, atol=1e-6):
            raise ValueError(
                f"{name}.weight is not the identity: the checkpoint divides by an rgb_std, which edsr-lib's "
                "MeanShift does not do"
            )
        shifts.append(sign * bias)
    if not torch.allclose(shifts[0], shifts[1], rtol=1e-5, atol=1e-6):
        raise ValueError(
            f"sub_mean and add_mean hold different means ({_fmt(shifts[0])} and {_fmt(shifts[1])}); "
            "edsr-lib's models use one"
        )
    shift = shifts[1]  # rgb_range * mean
    if rgb_range is None and n_colors == len(DIV2K_RGB_MEAN):
        ratio = shift / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
        if torch.allclose(ratio, ratio.mean(), rtol=1e-5, atol=0) and ratio.mean() > 0:
            rgb_range = float(ratio.mean())
            if math.isclose(rgb_range, round(rgb_range), rel_tol=1e-5):
                rgb_range = float(round(rgb_range))
            if rgb_range != 255.0:
                notes.append(f"rgb_range {rgb_range:g} read from the mean shifts (the DIV2K mean times {rgb_range:g})")
    if rgb_range is None:
        rgb_range = 255.0
        notes.append("the mean shifts do not hold the DIV2K mean: rgb_range 255 assumed; override with rgb_range=")
    mean = shift / rgb_range
    rgb_mean = _snap_to_div2k(mean)
    if rgb_mean is None:
        rgb_mean = [float(m) for m in mean]
        notes.append(f"carried the checkpoint's mean into rgb_mean: {_fmt(mean)} (not the DIV2K mean)")
    return float(rgb_range), rgb_mean


def _basicsr_mean(
    state_dict: Mapping[str, torch.Tensor], n_colors: int, overrides: Mapping[str, Any], notes: list[str]
) -> tuple[float, list[float]]:
    """BasicSR keeps ``img_range`` (and usually ``rgb_mean``) in its options, not in the state dict."""
    if "mean" in state_dict:
        mean = state_dict["mean"].double().flatten()
        if mean.numel() != n_colors:
            raise ValueError(f"the 'mean' tensor holds {mean.numel()} values for {n_colors} colour channels")
        rgb_mean = _snap_to_div2k(mean)
        if rgb_mean is None:
            rgb_mean = [float(m) for m in mean]
            notes.append(f"carried BasicSR's mean into rgb_mean: {_fmt(mean)} (not the DIV2K mean)")
    elif "rgb_mean" in overrides:
        rgb_mean = [float(m) for m in overrides["rgb_mean"]]
    else:
        rgb_mean = list(DIV2K_RGB_MEAN)
        notes.append("BasicSR keeps rgb_mean out of the state dict: the DIV2K mean assumed (its default)")
    if "rgb_range" in overrides:
        return float(overrides["rgb_range"]), rgb_mean
    notes.append("BasicSR keeps img_range out of the state dict: 255 assumed (its default); override with rgb_range=")
    return 255.0, rgb_mean


def _fmt(values: torch.Tensor) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def _check_complete(
    state_dict: Mapping[str, torch.Tensor],
    layout: str,
    architecture: str,
    kwargs: Mapping[str, Any],
    key_map: Mapping[str, str],
    absorbed: Sequence[str],
) -> None:
    """Refuse, naming every problem, unless each key is used, each parameter filled, each shape right."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = architectures()[architecture](**kwargs).state_dict()
    missing = [k for k in (*key_map, *absorbed) if k not in state_dict]
    unexpected = sorted(set(state_dict) - set(key_map) - set(absorbed))
    wrong = [
        f"{src} {tuple(state_dict[src].shape)} (expected {tuple(reference[lib].shape)})"
        for src, lib in key_map.items()
        if src in state_dict and lib in reference and state_dict[src].shape != reference[lib].shape
    ]
    wrong += [
        f"{src} has dtype {state_dict[src].dtype}"
        for src in key_map
        if src in state_dict and not state_dict[src].is_floating_point()
    ]
    unfilled = sorted(set(reference) - set(key_map.values()))
    unplaced = [src for src, lib in key_map.items() if lib not in reference]
    problems = [
        f"{label}: {_some(items)}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes or dtypes", wrong),
            ("library parameters without a source", unfilled),
            ("keys without a library parameter", unplaced),
        )
        if items
    ]
    if problems:
        scales = "/".join(f"x{s}" for s in kwargs.get("scales", [kwargs.get("scale")]))
        raise ValueError(
            f"cannot map this state dict completely (it looks like {architecture.upper()} {scales} in the {layout} "
            f"layout, {kwargs['n_resblocks']} blocks of {kwargs['n_feats']} features): " + "; ".join(problems)
        )


# ------------------------------------------------------------------------------ convert
def convert(
    src: str | Path,
    dst_dir: str | Path | None = None,
    *,
    layout: str | None = None,
    variant: str | None = None,
    **overrides: Any,
) -> SRModel:
    """Convert a third-party checkpoint file into the library's model (and format).

    Reads the file (:func:`load_state_dict`), recognises official EDSR-PyTorch files by
    sha256 (:func:`identify_file`) and checks that they hold the variant they should,
    recognises super-image checkpoints by the ``config.json`` beside them, detects the
    model (:func:`detect`) and loads the weights.

    Args:
        src: The checkpoint file (``.pt``, ``.pth`` or ``.safetensors``).
        dst_dir: If given, the model is written there with ``save_pretrained``
            (``model.safetensors`` + ``config.json``).
        layout: Force a layout (one of :data:`LAYOUTS`) instead of detecting it.
        variant: A registered variant name (``"edsr_baseline_x2"``) the checkpoint must
            match; a mismatch raises.
        **overrides: What the tensors do not fix (see :func:`detect`).

    Returns:
        The model in eval mode; ``model.conversion`` is the :class:`ConvertedSpec`, whose
        ``notes`` say what was recognised, assumed and carried over.

    Raises:
        FileNotFoundError: If ``src`` does not exist.
        ValueError: If it cannot be read or mapped, or does not match the expected variant.
    """
    path = Path(src)
    state_dict, notes = _read_checkpoint(path)
    official = identify_file(path)
    if official is not None:
        how = "sha256" if official.full_digest else "the sha256 prefix in its name"
        notes.append(f"recognised official checkpoint {official.filename} (by {how})")
    sidecar = _super_image_config(path, layout)
    if sidecar is not None and layout is None:
        layout = "super-image"
        notes.append(f"{path.with_name('config.json')} says super-image {sidecar['model_type']}")
    if sidecar is not None and layout == "super-image" and "res_scale" in sidecar and "res_scale" not in overrides:
        overrides["res_scale"] = float(sidecar["res_scale"])
        notes.append(f"res_scale {overrides['res_scale']:g} read from config.json")
    spec = detect(state_dict, layout=layout, **overrides)
    if sidecar is not None and spec.layout == "super-image":
        _check_super_image_config(spec, sidecar)
    if official is not None:
        _check_variant(spec, official.variant, f"recognised as the official {official.filename}, but it does not hold")
    if variant is not None:
        _check_variant(spec, variant, "the checkpoint does not hold")
    spec = dataclasses.replace(spec, notes=(*notes, *spec.notes), official=official, source=str(path))
    for note in spec.notes:
        logger.info("%s: %s", path, note)
    model = spec.load(state_dict)
    if variant is not None:
        model.variant = variant
    if dst_dir is not None:
        model.save_pretrained(dst_dir)
    return model


def _super_image_config(path: Path, layout: str | None) -> dict[str, Any] | None:
    """The super-image config (``"model_type": "EDSR"``) beside ``path``, if there is one."""
    config_path = path.with_name("config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        return None
    model_type = config["model_type"].upper()
    if model_type == "MDSR" and layout is None:
        raise ValueError(f"{config_path} describes a super-image MdsrModel, whose layout edsr-lib does not support")
    return config if model_type == "EDSR" else None


def _check_super_image_config(spec: ConvertedSpec, config: Mapping[str, Any]) -> None:
    checks = {"n_resblocks": spec.kwargs["n_resblocks"], "n_feats": spec.kwargs["n_feats"]}
    checks["n_colors"] = spec.kwargs["n_colors"]
    if config.get("scale") is not None:
        checks["scale"] = spec.scales[0]
    diffs = [f"{k} {config[k]!r} (the tensors say {v!r})" for k, v in checks.items() if k in config and config[k] != v]
    if diffs:
        raise ValueError(f"the super-image config.json beside the checkpoint disagrees with it: {'; '.join(diffs)}")


def _check_variant(spec: ConvertedSpec, variant: str, prefix: str) -> None:
    """Refuse unless the detected model has the configuration of the registered ``variant``."""
    with torch.device("meta"):
        expected = create_model(variant).config
    got = {"architecture": spec.architecture, **spec.kwargs}
    if got["architecture"] != expected["architecture"]:
        diffs = [f"architecture {got['architecture']!r} (expected {expected['architecture']!r})"]
    else:
        diffs = [f"{k} {got[k]!r} (expected {v!r})" for k, v in expected.items() if k in got and not _same(got[k], v)]
    if diffs:
        raise ValueError(f"{prefix} {variant}: {'; '.join(diffs)}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b
