"""Third-party EDSR/MDSR checkpoints: read them into the library's models, and write the library's models out.

Each third-party layout is one :class:`Layout` object, which owns everything about it:
how its key names are recognised, where it keeps each convolution, its defaults, and
its pixel convention (range and mean). The same object reads and writes. Four are known:

- ``"edsr-pytorch"``: the reference code and its official checkpoints (``head.0``,
  ``body.N.body.{0,2}``, ``tail.0.<i>``, ``tail.1``, fixed ``sub_mean``/``add_mean``
  convolutions; MDSR adds ``pre_process.S`` and ``upsample.S``). Images in
  ``[0, rgb_range]``.
- ``"torchsr"``: torchSR's ``EDSR``, which keeps EDSR-PyTorch's key names and mean shifts
  and always works at ``rgb_range`` 255 on [0, 1] inputs. It has no MDSR.
- ``"basicsr"``: BasicSR's ``EDSR`` (``conv_first``, ``body.N.conv1/conv2``,
  ``conv_after_body``, ``upsample.<i>``, ``conv_last``), usually wrapped in
  ``params``/``params_ema``. Its ``img_range`` and ``rgb_mean`` are options, not tensors.
- ``"super-image"``: the ``super-image`` package's ``EdsrModel`` (e.g.
  ``eugenesiow/edsr-base``). Same key names as EDSR-PyTorch, but its ``forward`` never
  applies ``sub_mean``/``add_mean`` and works on [0, 1] images, so the converted model gets
  ``rgb_range=1`` and a zero mean.

Reading never guesses in silence. :func:`detect` reads only key names and tensor shapes
(and the values of the fixed mean shifts), infers the hyperparameters, and refuses a
state dict that it cannot map completely. Where the key names fit several layouts that
read them differently (EDSR-PyTorch's names are also super-image's), it raises
:class:`AmbiguousLayoutError`, naming them, unless ``layout=`` says which. :func:`convert`
also uses what lies beside a file: an official EDSR-PyTorch file is recognised by its
sha256, and a super-image checkpoint by the ``config.json`` that the package writes.

:func:`convert_state_dict` is the one function that maps a foreign state dict in memory
onto the library's model (integrations such as spandrel use it); :func:`convert` does
the same for a file. :func:`export_state_dict` and :func:`export_checkpoint` write a
library model in the EDSR-PyTorch, torchSR or BasicSR layout.

The fixed mean shifts are not parameters of the library's models (their mean and range
come from the config): the converter checks them and carries their values into
``rgb_mean``/``rgb_range``. ``res_scale`` is stored nowhere: it is assumed (0.1 for EDSR
with 256 features and 32 blocks, as in the paper, else 1.0) and can be overridden.

Example:
    >>> from edsr_lib.convert import convert
    >>> model = convert("edsr_baseline_x2-1bc95232.pt", "converted/")  # doctest: +SKIP
    >>> model.conversion.notes  # doctest: +SKIP
    ('recognised official checkpoint edsr_baseline_x2-1bc95232.pt (by sha256)', ...)
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ._registry import create_model
from .hub import atomic_write, diff_state_dicts, resolve_weights, sha256sum
from .layers import DIV2K_RGB_MEAN
from .models import SRModel, architectures
from .models.mdsr import scale_key

__all__ = [
    "LAYOUTS",
    "OFFICIAL_CHECKPOINTS",
    "SUPER_IMAGE_MDSR",
    "WRITABLE_LAYOUTS",
    "AmbiguousLayoutError",
    "ConvertedSpec",
    "ExportedCheckpoint",
    "Layout",
    "OfficialCheckpoint",
    "convert",
    "convert_state_dict",
    "detect",
    "export_checkpoint",
    "export_state_dict",
    "get_layout",
    "identify_file",
    "load_state_dict",
]

logger = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------- key names
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


def _upsampler_convs(scale: int) -> int:
    """How many convolutions the sub-pixel upsampler has at ``scale`` (one for x3, n for x2^n)."""
    return 1 if scale == 3 else int(math.log2(scale))


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


# --------------------------------------------------------------------- pixel conventions
def _fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def _least_precise(state_dict: Mapping[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype with the largest epsilon among the tensors (float32 if there are none)."""
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()} or {torch.float32}
    return max(dtypes, key=lambda d: torch.finfo(d).eps)


def _rel_tol(dtype: torch.dtype) -> float:
    """How closely two values read from tensors of ``dtype`` can be expected to agree."""
    return max(1e-6, torch.finfo(dtype).eps)


def _snap_to_div2k(mean: torch.Tensor) -> list[float] | None:
    """The DIV2K mean if ``mean`` is it to float32 rounding, else ``None``."""
    div2k = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    if mean.shape == div2k.shape and torch.allclose(mean.double(), div2k, rtol=0, atol=1e-6):
        return list(DIV2K_RGB_MEAN)
    return None


def _mean_shift_tensors(rgb_range: float, rgb_mean: Sequence[float]) -> dict[str, torch.Tensor]:
    """EDSR-PyTorch's fixed 1x1 mean-shift convolutions, computed as its ``MeanShift`` does (float32)."""
    n = len(rgb_mean)
    eye = torch.eye(n).view(n, n, 1, 1)
    mean = torch.tensor([float(m) for m in rgb_mean], dtype=torch.float32)
    return {
        "sub_mean.weight": eye.clone(),
        "sub_mean.bias": -1 * rgb_range * mean,
        "add_mean.weight": eye.clone(),
        "add_mean.bias": 1 * rgb_range * mean,
    }


def _read_mean_shifts(state_dict: Mapping[str, torch.Tensor], n_colors: int) -> torch.Tensor | None:
    """``rgb_range * mean`` from EDSR-PyTorch's mean-shift convolutions; ``None`` if a key is missing.

    Raises:
        ValueError: If they are not identity 1x1 convolutions with opposite biases.
    """
    if not all(k in state_dict for k in _MEAN_SHIFTS):
        return None  # the completeness check names what is missing
    tol = _rel_tol(_least_precise({k: state_dict[k] for k in _MEAN_SHIFTS}))
    eye = torch.eye(n_colors, dtype=torch.float64).view(n_colors, n_colors, 1, 1)
    shifts = []
    for name, sign in (("sub_mean", -1.0), ("add_mean", 1.0)):
        weight, bias = state_dict[f"{name}.weight"].double(), state_dict[f"{name}.bias"].double()
        if weight.shape != eye.shape or bias.shape != (n_colors,):
            raise ValueError(
                f"{name} should be a {n_colors}-channel 1x1 mean shift (weight {tuple(eye.shape)}, bias "
                f"({n_colors},)), got weight {tuple(weight.shape)} and bias {tuple(bias.shape)}"
            )
        if not torch.allclose(weight, eye, rtol=0, atol=tol):
            raise ValueError(
                f"{name}.weight is not the identity: the checkpoint divides by an rgb_std, which edsr-lib's "
                "MeanShift does not do"
            )
        shifts.append(sign * bias)
    if not torch.allclose(shifts[0], shifts[1], rtol=max(1e-5, tol), atol=1e-6):
        raise ValueError(
            f"sub_mean and add_mean hold different means ({_fmt(shifts[0])} and {_fmt(shifts[1])}); "
            "edsr-lib's models use one"
        )
    return shifts[1]


def _mean_from_shift(
    shift: torch.Tensor, rgb_range: float, dtype: torch.dtype, notes: list[str], source: str = "the checkpoint's"
) -> list[float]:
    """``rgb_mean`` from ``rgb_range * mean``, snapped to the DIV2K mean where it is that to float32 rounding.

    A mean that is the DIV2K mean only to the rounding of a lower precision (a float16
    file) is carried as stored, so that the conversion stays exact, and said so.
    """
    mean = shift / rgb_range
    if (snapped := _snap_to_div2k(mean)) is not None:
        return snapped
    div2k = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    if mean.shape == div2k.shape and torch.allclose(mean, div2k, rtol=_rel_tol(dtype), atol=0):
        notes.append(
            f"the mean shifts hold the DIV2K mean rounded to {str(dtype).removeprefix('torch.')}: carried as stored "
            f"{_fmt(mean)}, so the conversion is exact"
        )
    else:
        notes.append(f"carried {source} mean into rgb_mean: {_fmt(mean)} (not the DIV2K mean)")
    return [float(m) for m in mean]


# ------------------------------------------------------------------------------ layouts
class Layout:
    """One third-party checkpoint layout: how it is recognised, its key names, defaults and pixel convention.

    The same object reads a foreign state dict (:func:`detect`) and writes one
    (:func:`export_state_dict`); :func:`get_layout` returns it by name. Each subclass
    states what differs for its code base.

    Attributes:
        name: The layout's name, one of :data:`LAYOUTS`.
        title: The code base, in words (``"EDSR-PyTorch"``).
        edsr: Where its EDSR keeps each convolution.
        mdsr: Where its MDSR does; ``None`` where it has no MDSR that edsr-lib knows.
        no_mdsr: Why an MDSR state dict is not read in this layout.
        mdsr_prefixes: Key prefixes that only its MDSR has.
        rgb_range: The pixel range its code runs at; files written in this layout use it.
        convention: How its forward pass treats pixels, in words.
        overrides: What a caller may set when reading, because the tensors do not fix it.
        wrapper: The key under which its own code saves a state dict (``None``: bare).
        writable: Whether :func:`export_state_dict` writes this layout.
    """

    name: str = ""
    title: str = ""
    edsr: _Names = _OFFICIAL_EDSR
    mdsr: _Names | None = None
    no_mdsr: str = ""
    mdsr_prefixes: tuple[str, ...] = ("pre_process.", "upsample.")
    rgb_range: float = 255.0
    convention: str = ""
    overrides: frozenset[str] = frozenset({"res_scale"})
    wrapper: str | None = None
    writable: bool = True

    def __repr__(self) -> str:
        return f"<Layout {self.name!r} ({self.title})>"

    # ------------------------------------------------------------ recognition
    def architecture(self, keys: Iterable[str]) -> str | None:
        """``"edsr"`` or ``"mdsr"`` where the key names are this layout's, else ``None``."""
        keys = set(keys)
        if f"{self.edsr.head}.weight" not in keys:
            return None
        mdsr = bool(self.mdsr_prefixes) and any(k.startswith(self.mdsr_prefixes) for k in keys)
        return "mdsr" if mdsr else "edsr"

    def fits(self, keys: Iterable[str]) -> bool:
        """Whether this layout can hold a state dict with these key names."""
        architecture = self.architecture(keys)
        return architecture == "edsr" or (architecture == "mdsr" and self.mdsr is not None)

    def names(self, architecture: str) -> _Names:
        """Where this layout keeps each convolution of ``architecture`` (``"edsr"`` or ``"mdsr"``)."""
        if architecture == "edsr":
            return self.edsr
        if self.mdsr is None:
            raise ValueError(self.no_mdsr)
        return self.mdsr

    # ---------------------------------------------------------------- reading
    def allowed_overrides(self, keys: Iterable[str]) -> set[str]:
        """What may be set when reading a state dict with these keys."""
        return set(self.overrides)

    def read_range_and_mean(
        self, state_dict: Mapping[str, torch.Tensor], n_colors: int, overrides: Mapping[str, Any], notes: list[str]
    ) -> tuple[float, list[float], list[str], dict[str, Any]]:
        """``rgb_range``, ``rgb_mean``, the source keys they come from, and which of the two were assumed."""
        raise NotImplementedError

    def sidecar(self, path: Path, layout: str | None) -> dict[str, Any] | None:
        """What this layout's own code saved beside ``path`` (e.g. a ``config.json``), if anything."""
        return None

    def sidecar_overrides(
        self, config: Mapping[str, Any], given: Mapping[str, Any], notes: list[str]
    ) -> dict[str, Any]:
        """Settings that the tensors do not hold, read from the sidecar where ``given`` does not set them."""
        return {}

    def file_scale(self, path: Path) -> int | None:
        """The scale that this layout's own file names give (``None``: they give none)."""
        return None

    def check_file(self, spec: ConvertedSpec, path: Path, sidecar: Mapping[str, Any] | None) -> ConvertedSpec:
        """Refuse a file whose name or sidecar contradicts its tensors; returns ``spec`` with any notes added."""
        return spec

    # ---------------------------------------------------------------- writing
    def extra_tensors(self, rgb_mean: Sequence[float]) -> dict[str, torch.Tensor]:
        """Tensors this layout stores beside the convolutions (the fixed mean shifts)."""
        return {}

    def options(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of this layout's own model class that rebuild a written model."""
        raise NotImplementedError

    def write_notes(self, config: Mapping[str, Any]) -> list[str]:
        """What a user of the written file must know."""
        return []

    def unwritable(self, config: Mapping[str, Any]) -> list[str]:
        """Why this layout's code cannot hold a model with this config (empty: it can)."""
        problems = []
        if config.get("block", "resblock") != "resblock" or config.get("upsampler", "upsampler") != "upsampler":
            problems.append(f"block {config.get('block')!r} / upsampler {config.get('upsampler')!r} (only ResBlocks)")
        if config.get("preprocess", "scale_preprocess") != "scale_preprocess":
            problems.append(f"preprocess {config['preprocess']!r} (only ResBlocks)")
        if config.get("kernel_size") != 3:
            problems.append(f"kernel_size {config.get('kernel_size')} (its code has 3x3 convolutions)")
        if config.get("n_colors") != 3:
            problems.append(f"n_colors {config.get('n_colors')} (its code has 3 colour channels)")
        return problems


class _EDSRPyTorch(Layout):
    name = "edsr-pytorch"
    title = "EDSR-PyTorch"
    mdsr = _OFFICIAL_MDSR
    convention = "images in [0, rgb_range], the mean shifts applied"
    overrides = frozenset({"res_scale", "rgb_range"})

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """The mean shifts' bias is ``-/+ rgb_range * mean``.

        With the DIV2K mean, the range follows from the ratio; any other mean is carried
        with ``rgb_range`` 255 (or the one given).
        """
        shift = _read_mean_shifts(state_dict, n_colors)
        rgb_range = overrides.get("rgb_range")
        if shift is None:
            return float(rgb_range or 255.0), list(DIV2K_RGB_MEAN), list(_MEAN_SHIFTS), {}
        dtype = _least_precise({k: state_dict[k] for k in _MEAN_SHIFTS})
        tol = max(1e-5, _rel_tol(dtype))
        assumed: dict[str, Any] = {}
        if rgb_range is None and n_colors == len(DIV2K_RGB_MEAN):
            ratio = shift / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
            if torch.allclose(ratio, ratio.mean(), rtol=tol, atol=0) and ratio.mean() > 0:
                rgb_range = float(ratio.mean())
                if math.isclose(rgb_range, round(rgb_range), rel_tol=tol):
                    rgb_range = float(round(rgb_range))
                if rgb_range != 255.0:
                    notes.append(
                        f"rgb_range {rgb_range:g} read from the mean shifts (the DIV2K mean times {rgb_range:g})"
                    )
        if rgb_range is None:
            rgb_range = assumed["rgb_range"] = 255.0
            notes.append("the mean shifts do not hold the DIV2K mean: rgb_range 255 assumed; override with rgb_range=")
        return float(rgb_range), _mean_from_shift(shift, float(rgb_range), dtype, notes), list(_MEAN_SHIFTS), assumed

    def extra_tensors(self, rgb_mean):
        return _mean_shift_tensors(self.rgb_range, rgb_mean)

    def options(self, config):
        scales = config.get("scales", [config.get("scale")])
        options: dict[str, Any] = {"model": config["architecture"].upper(), "scale": "+".join(map(str, scales))}
        options.update(n_resblocks=config["n_resblocks"], n_feats=config["n_feats"])
        if config["architecture"] == "edsr":
            options["res_scale"] = config["res_scale"]
        return {**options, "rgb_range": self.rgb_range}

    def write_notes(self, config):
        how = " ".join(
            f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}" for k, v in self.options(config).items()
        )
        notes = [f"EDSR-PyTorch options for this file: {how}"]
        if config["architecture"] == "mdsr":
            notes.append(f"MDSR branch i is scale {config['scales']}[i]: pass --scale in that order")
        return notes

    def unwritable(self, config):
        problems = super().unwritable(config)
        if config["architecture"] == "mdsr":
            if config.get("preprocess_kernel_size") != 5:
                problems.append(f"preprocess_kernel_size {config.get('preprocess_kernel_size')} (its MDSR has 5)")
            if config.get("res_scale") != 1.0:
                problems.append(f"res_scale {config.get('res_scale'):g} (its MDSR has no residual scaling)")
        return problems


class _TorchSR(_EDSRPyTorch):
    name = "torchsr"
    title = "torchSR"
    mdsr = None
    no_mdsr = "torchSR has no MDSR"
    convention = "images in [0, 1], scaled to [0, 255] inside, the mean shifts applied"
    overrides = frozenset({"res_scale"})

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """torchSR's ``EDSR`` always multiplies its input by 255: the bias is ``-/+ 255 * mean``."""
        shift = _read_mean_shifts(state_dict, n_colors)
        if shift is None:
            return self.rgb_range, list(DIV2K_RGB_MEAN), list(_MEAN_SHIFTS), {}
        dtype = _least_precise({k: state_dict[k] for k in _MEAN_SHIFTS})
        return self.rgb_range, _mean_from_shift(shift, self.rgb_range, dtype, notes), list(_MEAN_SHIFTS), {}

    def options(self, config):
        keys = ("n_resblocks", "n_feats", "scale", "res_scale")
        return {k: config[k] for k in keys}

    def write_notes(self, config):
        args = ", ".join(f"{k}={v!r}" for k, v in self.options(config).items())
        return [f"load it into torchsr.models.edsr.EDSR({args})"]


#: Why super-image's MDSR files (``eugenesiow/mdsr``, ``eugenesiow/mdsr-bam``) are refused, whatever reads them.
SUPER_IMAGE_MDSR = (
    "this is a super-image MdsrModel file (eugenesiow/mdsr or eugenesiow/mdsr-bam), which is not the paper's MDSR: "
    "one scale per file, 3x3 pre-processing with residual scaling 0.1; edsr-lib has no such model and does not "
    "convert it (edsr_lib's mdsr and mdsr_baseline are the paper's, with their own weights)"
)
#: A key only super-image's MdsrModel has: its convolutions are wrapped in a Sequential (``....body.0.0.weight``).
_SUPER_IMAGE_MDSR_KEY = re.compile(r"pre_process\.\d+\.\d+\.body\.\d+\.0\.weight")


def _is_super_image_mdsr(keys: Iterable[str]) -> bool:
    """True for the key names of super-image's MdsrModel (``head.0.0``, ``pre_process.<scale>.<i>.body.<j>.0``)."""
    keys = set(keys)
    return "head.0.0.weight" in keys and any(_SUPER_IMAGE_MDSR_KEY.fullmatch(k) for k in keys)


class _SuperImage(Layout):
    name = "super-image"
    title = "super-image"
    no_mdsr = "super-image's MdsrModel is not supported: only its EdsrModel layout is known"
    rgb_range = 1.0
    convention = "images in [0, 1], its sub_mean/add_mean never applied"
    writable = False
    #: How super-image names a weights file saved with a scale (``WEIGHTS_NAME_SCALE``).
    file_name = re.compile(r"pytorch_model_(\d+)x\.pt")

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        notes.append("super-image's EdsrModel works on [0, 1] images and never applies its sub_mean/add_mean")
        return 1.0, [0.0] * n_colors, list(_MEAN_SHIFTS), {}

    def sidecar(self, path, layout):
        """The super-image config (``"model_type": "EDSR"``) beside ``path``, if there is one."""
        config_path = path.with_name("config.json")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
            return None
        model_type = config["model_type"].upper()
        if model_type == "MDSR" and layout in (None, self.name):
            raise ValueError(f"{config_path} says {SUPER_IMAGE_MDSR}")
        return config if model_type == "EDSR" else None

    def sidecar_overrides(self, config, given, notes):
        if "res_scale" not in config or "res_scale" in given:
            return {}
        notes.append(f"res_scale {float(config['res_scale']):g} read from config.json")
        return {"res_scale": float(config["res_scale"])}

    def file_scale(self, path):
        """The scale in a super-image file name (``pytorch_model_4x.pt``: 4), if it has one."""
        match = self.file_name.fullmatch(path.name)
        return int(match.group(1)) if match else None

    def check_file(self, spec, path, sidecar):
        """The file name's scale, then config.json, against the tensors.

        super-image rewrites ``config.json`` at each save, so in a folder of several
        scales it holds the last one: where the file name gives the scale, the name (and
        the tensors) win and the config's scale is only noted.
        """
        tensors = spec.scales[0]
        named = self.file_scale(path)
        if named is not None and named != tensors:
            raise ValueError(f"{path.name} is named for scale {named}, but its tensors hold an x{tensors} upsampler")
        if sidecar is None:
            return spec
        checks = {k: spec.kwargs[k] for k in ("n_resblocks", "n_feats", "n_colors")}
        diffs = [f"{k} {sidecar[k]!r} (the tensors say {v!r})" for k, v in checks.items() if sidecar.get(k, v) != v]
        notes = []
        if sidecar.get("scale") is not None and sidecar["scale"] != tensors:
            if named is None:
                diffs.append(f"scale {sidecar['scale']!r} (the tensors say {tensors!r})")
            else:
                notes.append(
                    f"config.json says scale {sidecar['scale']} (super-image rewrites it at each save); "
                    f"{path.name} and its tensors say {tensors}: converted as x{tensors}"
                )
        if diffs:
            raise ValueError(f"the super-image config.json beside the checkpoint disagrees with it: {'; '.join(diffs)}")
        return dataclasses.replace(spec, notes=(*spec.notes, *notes))


class _BasicSR(Layout):
    name = "basicsr"
    title = "BasicSR"
    edsr = _BASICSR
    no_mdsr = "BasicSR has no MDSR"
    mdsr_prefixes = ()
    convention = "images in [0, 1], its rgb_mean option subtracted and the result scaled by its img_range option"
    overrides = frozenset({"res_scale", "rgb_range"})
    wrapper = "params"

    def allowed_overrides(self, keys):
        return set(self.overrides) | ({"rgb_mean"} if "mean" not in set(keys) else set())

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """BasicSR keeps ``img_range`` (and usually ``rgb_mean``) in its options, not in the state dict."""
        assumed: dict[str, Any] = {}
        if "mean" in state_dict:
            mean = state_dict["mean"].double().flatten()
            if mean.numel() != n_colors:
                raise ValueError(f"the 'mean' tensor holds {mean.numel()} values for {n_colors} colour channels")
            rgb_mean = _mean_from_shift(mean, 1.0, state_dict["mean"].dtype, notes, source="BasicSR's")
        elif "rgb_mean" in overrides:
            rgb_mean = [float(m) for m in overrides["rgb_mean"]]
            if len(rgb_mean) != n_colors:
                raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {n_colors} colour channels")
            notes.append(f"rgb_mean {_fmt(rgb_mean)} as given")
        else:
            rgb_mean = assumed["rgb_mean"] = list(DIV2K_RGB_MEAN)
            notes.append(
                "BasicSR keeps rgb_mean out of the state dict: the DIV2K mean assumed (its default); "
                "override with rgb_mean="
            )
        absorbed = ["mean"] if "mean" in state_dict else []
        if "rgb_range" in overrides:
            notes.append(f"rgb_range (BasicSR's img_range) {float(overrides['rgb_range']):g} as given")
            return float(overrides["rgb_range"]), rgb_mean, absorbed, assumed
        assumed["rgb_range"] = 255.0
        notes.append(
            "BasicSR keeps img_range out of the state dict: 255 assumed (its default); override with rgb_range="
        )
        return 255.0, rgb_mean, absorbed, assumed

    def options(self, config):
        return {
            "num_in_ch": config["n_colors"],
            "num_out_ch": config["n_colors"],
            "num_feat": config["n_feats"],
            "num_block": config["n_resblocks"],
            "upscale": config["scale"],
            "res_scale": config["res_scale"],
            "img_range": self.rgb_range,
            "rgb_mean": list(config["rgb_mean"]),
        }

    def write_notes(self, config):
        notes = [
            "BasicSR keeps img_range and rgb_mean in its options, not in the file: "
            f"network_g: type EDSR, {', '.join(f'{k}: {v}' for k, v in self.options(config).items())}"
        ]
        if not _same(list(config["rgb_mean"]), list(DIV2K_RGB_MEAN)):
            notes.append(
                f"this model's rgb_mean {_fmt(config['rgb_mean'])} is not BasicSR's default (the DIV2K mean): "
                "set it in network_g, or the output is wrong"
            )
        return notes


_REGISTRY: dict[str, Layout] = {
    layout.name: layout for layout in (_EDSRPyTorch(), _BasicSR(), _SuperImage(), _TorchSR())
}

#: The third-party layouts :func:`detect` knows (EDSR-PyTorch's key names first, as before).
LAYOUTS: tuple[str, ...] = tuple(_REGISTRY)

#: The layouts :func:`export_state_dict` writes.
WRITABLE_LAYOUTS: tuple[str, ...] = tuple(name for name, layout in _REGISTRY.items() if layout.writable)


def get_layout(name: str) -> Layout:
    """The :class:`Layout` object of a layout name (one of :data:`LAYOUTS`).

    Raises:
        ValueError: For an unknown name.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return _REGISTRY[name]


# ----------------------------------------------------------------------------- detection
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
        assumed: The settings that neither the tensors nor the caller fixed, with the
            values assumed for them (``{"rgb_range": 255.0, "res_scale": 1.0}``).
        dtype: The least precise floating dtype among the source tensors (``"float16"``).
    """

    layout: str
    architecture: str
    kwargs: dict[str, Any]
    key_map: dict[str, str]
    absorbed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    official: OfficialCheckpoint | None = None
    source: str | None = None
    assumed: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"

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


class AmbiguousLayoutError(ValueError):
    """The key names fit several layouts that read the tensors differently; ``layout=`` must say which.

    Attributes:
        layouts: The layouts whose key names these are, in :data:`LAYOUTS` order.
        readings: Each of them -> what it makes of the state dict, or why it cannot read it.
        specs: What each layout that can read the state dict makes of it.
    """

    def __init__(self, readings: Mapping[str, ConvertedSpec | ValueError], hint: str = "") -> None:
        self.readings: dict[str, ConvertedSpec | ValueError] = dict(readings)
        self.layouts: tuple[str, ...] = tuple(readings)
        self.specs: dict[str, ConvertedSpec] = {k: v for k, v in readings.items() if isinstance(v, ConvertedSpec)}
        groups: list[tuple[list[str], ConvertedSpec | ValueError]] = []
        for name, reading in readings.items():
            alike = next((g for g in groups if _same_reading(g[1], reading)), None)
            if alike is None:
                groups.append(([name], reading))
            else:
                alike[0].append(name)
        parts = []
        for names, reading in groups:
            who = " and ".join(names) + (" (alike)" if len(names) > 1 else "")
            conventions = "; ".join(f"{get_layout(n).title}: {get_layout(n).convention}" for n in names)
            if isinstance(reading, ConvertedSpec):
                k = reading.kwargs
                what = f"{reading.describe()}, rgb_range {k['rgb_range']:g}, rgb_mean {_fmt(k['rgb_mean'])}"
            else:
                what = f"cannot read it ({reading})"
            parts.append(f"{who} [{conventions}] -> {what}")
        choices = " or ".join(repr(n) for n in self.layouts)
        super().__init__(
            f"the key names fit {len(self.layouts)} layouts that read these tensors differently: "
            + "; ".join(parts)
            + (f". {hint}" if hint else "")
            + f". Say which with layout={choices} (edsr-lib convert --layout)"
        )


def _same_reading(a: ConvertedSpec | ValueError, b: ConvertedSpec | ValueError) -> bool:
    if isinstance(a, ValueError) or isinstance(b, ValueError):
        return isinstance(a, ValueError) and isinstance(b, ValueError) and str(a) == str(b)
    return (
        a.architecture == b.architecture
        and a.kwargs.keys() == b.kwargs.keys()
        and all(_same(a.kwargs[k], b.kwargs[k]) for k in a.kwargs)
        and a.key_map == b.key_map
        and set(a.absorbed) == set(b.absorbed)
    )


def detect(state_dict: Mapping[str, torch.Tensor], layout: str | None = None, **overrides: Any) -> ConvertedSpec:
    """Infer which model a third-party state dict holds and how its keys map onto edsr-lib's.

    Only key names and tensor shapes are read (the values of the fixed mean shifts too).
    The state dict must map completely: every key used, every library parameter filled,
    every shape right.

    Args:
        state_dict: An unwrapped state dict (see :func:`load_state_dict`).
        layout: One of :data:`LAYOUTS`; by default read from the key names. Where they fit
            several layouts that read the tensors differently (EDSR-PyTorch's names are
            also super-image's and torchSR's), :class:`AmbiguousLayoutError` is raised
            unless this says which; layouts that read them alike (EDSR-PyTorch and torchSR,
            for the DIV2K mean in [0, 255]) are no ambiguity.
        **overrides: What the tensors do not fix: ``res_scale`` (any layout) and
            ``rgb_range`` (EDSR-PyTorch: how to split the mean shift into range and mean;
            BasicSR: its ``img_range``), ``rgb_mean`` (BasicSR without a ``mean`` tensor).

    Returns:
        The detected spec; :meth:`ConvertedSpec.load` builds the model.

    Raises:
        AmbiguousLayoutError: If the key names fit layouts that read them differently
            and ``layout`` is not given.
        ValueError: For an unknown layout, an unsupported upsampler, an override the
            checkpoint fixes, or a state dict that does not map completely (the message
            names the missing, unexpected and wrongly shaped keys).
    """
    keys = set(state_dict)
    if _is_super_image_mdsr(keys):
        raise ValueError(SUPER_IMAGE_MDSR)
    if layout is not None:
        chosen = get_layout(layout)
        if chosen.architecture(keys) is None:
            theirs = [name for name, other in _REGISTRY.items() if other.architecture(keys)]
            if not theirs:
                raise ValueError(_unknown_layout_message(keys))
            whose = f"{theirs[0]}'s" if len(theirs) == 1 else f"those of {', '.join(theirs)}"
            raise ValueError(f"layout {layout!r} was asked for, but the key names are {whose}")
        return _read(chosen, state_dict, overrides)

    readings: dict[str, ConvertedSpec | ValueError] = {}
    for candidate in _REGISTRY.values():
        if candidate.fits(keys):
            try:
                readings[candidate.name] = _read(candidate, state_dict, overrides)
            except ValueError as exc:
                readings[candidate.name] = exc
    if not readings:
        raise ValueError(_unknown_layout_message(keys))
    first = next(iter(readings.values()))
    if all(isinstance(r, ValueError) for r in readings.values()):
        raise first  # no layout can read it: the first one's reasons
    if not all(_same_reading(first, r) for r in readings.values()):
        raise AmbiguousLayoutError(readings)
    assert isinstance(first, ConvertedSpec)
    if len(readings) > 1:
        others = ", ".join(list(readings)[1:])
        first = dataclasses.replace(first, notes=(*first.notes, f"read as {first.layout}; {others} reads it alike"))
    return first


def _read(layout: Layout, state_dict: Mapping[str, torch.Tensor], overrides: Mapping[str, Any]) -> ConvertedSpec:
    """Read ``state_dict`` in ``layout``, whose key names it has."""
    keys = set(state_dict)
    architecture = layout.architecture(keys)
    assert architecture is not None
    names = layout.names(architecture)
    allowed = layout.allowed_overrides(keys)
    if refused := sorted(set(overrides) - allowed):
        raise ValueError(
            f"{', '.join(refused)} cannot be set for this {layout.name} checkpoint: it is read from the tensors or "
            f"fixed by the layout; what can be set here: {', '.join(sorted(allowed))}"
        )

    head = state_dict[f"{names.head}.weight"]
    if head.dim() != 4:
        raise ValueError(f"{names.head}.weight should be a 4-D convolution weight, got shape {tuple(head.shape)}")
    n_feats, n_colors, kernel_size = int(head.shape[0]), int(head.shape[1]), int(head.shape[-1])
    blocks = _numbers(state_dict, names.block[0])
    n_resblocks = blocks[-1] + 1 if blocks else 0

    labels = [""]
    if architecture == "mdsr":
        found = set(_numbers(state_dict, names.upsampler.format(b="{b}", k=0)))
        found |= set(_numbers(state_dict, names.preprocess.format(b="{b}", p=0, c=0)))
        labels = [str(b) for b in sorted(found)]
        if not labels:
            raise ValueError("an MDSR layout without branches: no 'upsample.<branch>.0.weight' keys")
    branches = _read_branches(state_dict, names, labels, n_feats)
    scales = [scale for *_, scale in branches]
    notes: list[str] = []
    rgb_range, rgb_mean, absorbed, assumed = layout.read_range_and_mean(state_dict, n_colors, overrides, notes)

    if "res_scale" in overrides:
        res_scale = float(overrides["res_scale"])
    else:
        large = architecture == "edsr" and n_feats == 256 and n_resblocks == 32
        res_scale = assumed["res_scale"] = 0.1 if large else 1.0
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
    _check_complete(state_dict, layout.name, architecture, kwargs, key_map, absorbed)
    dtype = str(_least_precise(state_dict)).removeprefix("torch.")
    return ConvertedSpec(
        layout.name, architecture, kwargs, key_map, tuple(absorbed), tuple(notes), assumed=assumed, dtype=dtype
    )


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


def _unknown_layout_message(keys: set[str]) -> str:
    sample = _some(sorted(keys), 6)
    if {"head.weight", "tail.weight"} <= keys:
        return (
            f"this looks like edsr-lib's own format (keys {sample}): load it with edsr_lib.from_pretrained or "
            "create_model(..., weights=...)"
        )
    return (
        "unknown layout: neither 'head.0.weight' (EDSR-PyTorch, torchSR, super-image) nor 'conv_first.weight' "
        f"(BasicSR) is among the keys ({sample})"
    )


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
    # the source's keys, each with the shape of the library parameter it fills (absorbed ones: any shape)
    wanted = {src: reference.get(lib) for src, lib in key_map.items()} | dict.fromkeys(absorbed)
    diff = diff_state_dicts(wanted, state_dict)
    missing = diff.missing
    unexpected = sorted(diff.unexpected)
    wrong = [f"{src} {got} (expected {want})" for src, got, want in diff.wrong_shapes]
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
def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    layout: str | None = None,
    variant: str | None = None,
    **overrides: Any,
) -> SRModel:
    """Map a third-party state dict in memory onto the library's model.

    This is the one entry point for reading foreign weights that are already loaded (an
    integration such as spandrel, which hands over a state dict, uses it):
    :func:`detect`, then the variant check, then :meth:`ConvertedSpec.load`.

    Args:
        state_dict: An unwrapped state dict (see :func:`load_state_dict`).
        layout: One of :data:`LAYOUTS`, where the key names cannot tell (see :func:`detect`).
        variant: A registered variant name (``"edsr_baseline_x2"``) the weights must
            match; a mismatch raises.
        **overrides: What the tensors do not fix (see :func:`detect`).

    Returns:
        The model in eval mode; ``model.conversion`` is the :class:`ConvertedSpec`.

    Raises:
        AmbiguousLayoutError: If the key names fit layouts that read them differently
            and ``layout`` is not given (``err.specs`` holds each reading).
        ValueError: If the state dict cannot be mapped or does not match ``variant``.
    """
    return _load(detect(state_dict, layout=layout, **overrides), state_dict, variant)


def _load(spec: ConvertedSpec, state_dict: Mapping[str, torch.Tensor], variant: str | None) -> SRModel:
    if spec.official is not None:
        name = spec.official.filename
        _check_variant(spec, spec.official.variant, f"recognised as the official {name}, but it does not hold")
    if variant is not None:
        _check_variant(spec, variant, "the checkpoint does not hold")
    for note in spec.notes:
        logger.info("%s: %s", spec.source or "state dict", note)
    model = spec.load(state_dict)
    if variant is not None:
        model.variant = variant
    return model


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
    sha256 (:func:`identify_file`; their layout is then known, and the variant they
    should hold is checked), recognises super-image checkpoints by the ``config.json``
    beside them, detects the model (:func:`detect`) and loads the weights. A super-image
    file named for its scale (``pytorch_model_2x.pt``) converts at that scale even where
    the one ``config.json`` of a folder of several scales names another.

    Args:
        src: The checkpoint file (``.pt``, ``.pth`` or ``.safetensors``).
        dst_dir: If given, the model is written there with ``save_pretrained``
            (``model.safetensors`` + ``config.json``).
        layout: Force a layout (one of :data:`LAYOUTS`) instead of detecting it; needed
            where the key names fit several layouts and nothing beside the file tells.
        variant: A registered variant name (``"edsr_baseline_x2"``) the checkpoint must
            match; a mismatch raises. Means stored in float16 match to float16 rounding.
        **overrides: What the tensors do not fix (see :func:`detect`).

    Returns:
        The model in eval mode; ``model.conversion`` is the :class:`ConvertedSpec`, whose
        ``notes`` say what was recognised, assumed and carried over.

    Raises:
        FileNotFoundError: If ``src`` does not exist.
        AmbiguousLayoutError: If the layout cannot be told and ``layout`` is not given.
        ValueError: If it cannot be read or mapped, or does not match the expected variant.
    """
    path = Path(src)
    state_dict, notes = _read_checkpoint(path)
    official = identify_file(path)
    if official is not None:
        how = "sha256" if official.full_digest else "the sha256 prefix in its name"
        notes.append(f"recognised official checkpoint {official.filename} (by {how})")
        layout = layout or "edsr-pytorch"
    sidecars = {name: found for name, known in _REGISTRY.items() if (found := known.sidecar(path, layout)) is not None}
    if layout is None and len(sidecars) == 1:
        layout = next(iter(sidecars))
        notes.append(f"{path.with_name('config.json')} says {layout} {sidecars[layout].get('model_type', '')}".rstrip())
    sidecar = sidecars.get(layout) if layout is not None else None
    if sidecar is not None:
        overrides = {**get_layout(layout).sidecar_overrides(sidecar, overrides, notes), **overrides}
    try:
        spec = detect(state_dict, layout=layout, **overrides)
    except AmbiguousLayoutError as exc:
        named = [
            f"{path.name} is named as {get_layout(n).title} names its files"
            for n in exc.layouts
            if get_layout(n).file_scale(path) is not None
        ]
        hint = "; ".join(named) + (", but has no config.json beside it" if named else "")
        raise AmbiguousLayoutError(exc.readings, hint=hint) from None
    spec = get_layout(spec.layout).check_file(spec, path, sidecar)
    spec = dataclasses.replace(spec, notes=(*notes, *spec.notes), official=official, source=str(path))
    model = _load(spec, state_dict, variant)
    if dst_dir is not None:
        model.save_pretrained(dst_dir)
    return model


def _check_variant(spec: ConvertedSpec, variant: str, prefix: str) -> None:
    """Refuse unless the detected model has the configuration of the registered ``variant``.

    Values read from tensors are compared to the precision the tensors were stored in.
    """
    with torch.device("meta"):
        expected = create_model(variant).config
    got = {"architecture": spec.architecture, **spec.kwargs}
    rel_tol = _rel_tol(getattr(torch, spec.dtype, torch.float32))
    if got["architecture"] != expected["architecture"]:
        diffs = [f"architecture {got['architecture']!r} (expected {expected['architecture']!r})"]
    else:
        diffs = [
            f"{k} {got[k]!r} (expected {v!r})"
            for k, v in expected.items()
            if k in got and not _same(got[k], v, rel_tol)
        ]
    if diffs:
        raise ValueError(f"{prefix} {variant}: {'; '.join(diffs)}")


def _same(a: Any, b: Any, rel_tol: float = 1e-6) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)
    return a == b


# ------------------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportedCheckpoint:
    """A library model written in a third-party layout (by :func:`export_state_dict`).

    Attributes:
        layout: The layout, one of :data:`WRITABLE_LAYOUTS`.
        state_dict: The tensors under the layout's key names, mean shifts included where
            the layout stores them.
        options: The arguments of the layout's own model class (or command line) that
            rebuild the model around these tensors.
        notes: What a user of the file must know, in words.
        wrapper: The key the layout's own code saves the state dict under (``None``: bare).
    """

    layout: str
    state_dict: dict[str, torch.Tensor]
    options: dict[str, Any]
    notes: tuple[str, ...] = ()
    wrapper: str | None = None

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What the layout's own code saves with ``torch.save``: the state dict, wrapped where it wraps it."""
        return {self.wrapper: self.state_dict} if self.wrapper else self.state_dict


def export_state_dict(model: SRModel, layout: str) -> ExportedCheckpoint:
    """Write a library model's weights in a third-party layout (the reverse of :func:`convert_state_dict`).

    The tensors are renamed to the layout's keys (:class:`Layout` holds them, the same
    tables reading uses), the fixed mean shifts are added where the layout has them, and
    a model whose ``rgb_range`` differs from the one the layout's code runs at (255) is
    rescaled exactly: the head weights times ``rgb_range / 255``, the tail weights and
    bias divided by it.

    Args:
        model: An unfused edsr-lib EDSR or MDSR.
        layout: One of :data:`WRITABLE_LAYOUTS` (``"edsr-pytorch"``, ``"basicsr"``,
            ``"torchsr"``). Only EDSR-PyTorch has an MDSR.

    Returns:
        The state dict, the options that rebuild the layout's model around it, and notes.

    Raises:
        TypeError: If ``model`` is not an edsr-lib model.
        ValueError: If the layout is not written, or its code cannot hold this model
            (another block, kernel size or number of colours; MDSR outside EDSR-PyTorch).
    """
    target = get_layout(layout)
    if not target.writable:
        raise ValueError(f"edsr-lib does not write the {layout} layout; it writes {', '.join(WRITABLE_LAYOUTS)}")
    if not isinstance(model, SRModel):
        raise TypeError(f"expected an edsr-lib model, got {type(model).__name__}")
    if model.fused:
        raise ValueError("this model is fused (for inference): write the unfused model")
    config = model.config
    architecture = config["architecture"]
    if architecture not in _LIBRARY:
        raise ValueError(f"{target.title} has no {architecture!r} model")
    names = target.names(architecture)
    if problems := target.unwritable(config):
        raise ValueError(f"{target.title}'s {architecture.upper()} cannot hold this model: {'; '.join(problems)}")

    scales = config["scales"] if architecture == "mdsr" else [config["scale"]]
    ours = [(scale_key(s), _upsampler_convs(s)) for s in scales]
    theirs = [(str(i) if architecture == "mdsr" else "", _upsampler_convs(s)) for i, s in enumerate(scales)]
    source = _conv_names(_LIBRARY[architecture], config["n_resblocks"], ours)
    destination = _conv_names(names, config["n_resblocks"], theirs)
    tensors = model.state_dict()
    out = {
        f"{d}.{p}": tensors[f"{s}.{p}"].detach().cpu().clone()
        for s, d in zip(source, destination, strict=True)
        for p in ("weight", "bias")
    }
    notes: list[str] = []
    factor = config["rgb_range"] / target.rgb_range
    if factor != 1.0:
        # head(r * (x - m)) = (head.weight * r / R) applied to R * (x - m); the tail's output is divided by r, not R
        out[f"{names.head}.weight"] = out[f"{names.head}.weight"] * factor
        out[f"{names.tail}.weight"] = out[f"{names.tail}.weight"] / factor
        out[f"{names.tail}.bias"] = out[f"{names.tail}.bias"] / factor
        notes.append(
            f"rescaled from rgb_range {config['rgb_range']:g} to the {target.rgb_range:g} that {target.title} works at "
            f"(head weights x {factor:g}, tail weights and bias / {factor:g})"
        )
    out.update(target.extra_tensors(config["rgb_mean"]))
    notes += target.write_notes(config)
    return ExportedCheckpoint(target.name, out, target.options(config), tuple(notes), target.wrapper)


def export_checkpoint(src: SRModel | str | Path, dst: str | Path, layout: str) -> ExportedCheckpoint:
    """Write a model of the library as a checkpoint file in a third-party layout (atomically).

    Args:
        src: A model, a registered name with pretrained weights (``"edsr_baseline_x2"``,
            ``"mdsr_baseline.t291"``), or a folder written by ``save_pretrained``.
        dst: The file to write with ``torch.save`` (``.pt``; BasicSR's are ``.pth``).
        layout: One of :data:`WRITABLE_LAYOUTS`.

    Returns:
        What was written (see :func:`export_state_dict`).

    Raises:
        ValueError: If ``src`` is neither a model, a registered name nor a folder, if
            ``dst`` is a folder or a ``.safetensors`` name, or if the layout cannot hold it.
    """
    model = _resolve_model(src)
    exported = export_state_dict(model, layout)
    path = Path(dst)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass the file to write, e.g. {path / 'model.pt'}")
    if path.suffix == ".safetensors":
        raise ValueError(f"{path}: the {layout} code loads torch.save files; name the file .pt or .pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(exported.checkpoint, buffer)
    atomic_write(path, buffer.getvalue())
    return exported


def _resolve_model(src: SRModel | str | Path) -> SRModel:
    if isinstance(src, SRModel):
        return src
    found = resolve_weights(src)
    if found.kind == "file" and found.folder is None:
        raise ValueError(
            f"{src} is a file: pass a registered model name or a folder written by save_pretrained "
            "(to read a third-party checkpoint, convert it without --to)"
        )
    return found.load_model()
