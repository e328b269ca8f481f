"""What every layout shares: the :class:`Layout` interface, where a layout keeps each convolution, pixel conventions.

A layout's own module (``edsr_pytorch``, ``torchsr``, ``super_image``, ``basicsr``) states
only what differs for its code base; the maths of the fixed mean shifts, shared by three of
them, lives here once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..layers import DIV2K_RGB_MEAN
from .spec import ConvertedSpec

__all__ = ["Layout"]

#: MDSR's scale-specific pre-processing holds this many ResBlocks (the paper's two).
_PREPROCESS_BLOCKS = 2

#: Where a checkpoint that edsr-lib wrote records so: the key, in the root entry of its state dict's
#: ``_metadata`` (which ``torch.save`` keeps and ``load_state_dict`` ignores), of ``{"layout": name,
#: "settings": {...}}``, the settings being those the layout's tensors do not hold. Reading it back
#: needs no ``--layout`` (EDSR-PyTorch's key names are also super-image's and torchSR's).
WRITTEN_BY = "edsr_lib"

#: EDSR-PyTorch's fixed mean-shift convolutions (torchSR and super-image keep them too).
MEAN_SHIFTS: tuple[str, ...] = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")


def some(items: Iterable[str], limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


# ------------------------------------------------------------------------- key names
@dataclass(frozen=True)
class Names:
    """Where one layout keeps each convolution (``{i}``: block, ``{b}``: MDSR branch, ``{k}``: index)."""

    head: str
    block: tuple[str, str]
    body_end: str
    upsampler: str
    tail: str
    preprocess: str = ""  # MDSR: conv {c} of pre-processing block {p} of branch {b}


# ResBlock convolutions: the reference code and edsr-lib share the Sequential indices 0 and 2
RESBLOCK = ("body.{i}.body.0", "body.{i}.body.2")
PREPROCESS = "pre_process.{b}.{p}.body.{c}"


def conv_names(names: Names, n_resblocks: int, branches: Sequence[tuple[str, int]]) -> list[str]:
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


def upsampler_convs(scale: int) -> int:
    """How many convolutions the sub-pixel upsampler has at ``scale`` (one for x3, n for x2^n)."""
    return 1 if scale == 3 else int(math.log2(scale))


def key_numbers(state_dict: Mapping[str, torch.Tensor], template: str) -> list[int]:
    """Sorted values of the one ``{field}`` of ``template`` among the state dict's ``.weight`` keys."""
    pattern = re.compile(re.sub(r"\\\{\w+\\\}", r"(\\d+)", re.escape(template + ".weight")))
    return sorted({int(m.group(1)) for key in state_dict if (m := pattern.fullmatch(key))})


def upsampler_scale(weights: Sequence[torch.Tensor], n_feats: int, where: str) -> int:
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
def fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def least_precise(state_dict: Mapping[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype with the largest epsilon among the tensors (float32 if there are none)."""
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()} or {torch.float32}
    return max(dtypes, key=lambda d: torch.finfo(d).eps)


def relative_tolerance(dtype: torch.dtype) -> float:
    """How closely two values read from tensors of ``dtype`` can be expected to agree."""
    return max(1e-6, torch.finfo(dtype).eps)


def _snap_to_div2k(mean: torch.Tensor) -> list[float] | None:
    """The DIV2K mean if ``mean`` is it to float32 rounding, else ``None``."""
    div2k = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    if mean.shape == div2k.shape and torch.allclose(mean.double(), div2k, rtol=0, atol=1e-6):
        return list(DIV2K_RGB_MEAN)
    return None


def mean_shift_tensors(rgb_range: float, rgb_mean: Sequence[float]) -> dict[str, torch.Tensor]:
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


def read_mean_shifts(state_dict: Mapping[str, torch.Tensor], n_colors: int) -> torch.Tensor | None:
    """``rgb_range * mean`` from EDSR-PyTorch's mean-shift convolutions; ``None`` if a key is missing.

    Raises:
        ValueError: If they are not identity 1x1 convolutions with opposite biases.
    """
    if not all(k in state_dict for k in MEAN_SHIFTS):
        return None  # the completeness check names what is missing
    tol = relative_tolerance(least_precise({k: state_dict[k] for k in MEAN_SHIFTS}))
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
            f"sub_mean and add_mean hold different means ({fmt(shifts[0])} and {fmt(shifts[1])}); "
            "edsr-lib's models use one"
        )
    return shifts[1]


def mean_from_shift(
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
    if mean.shape == div2k.shape and torch.allclose(mean, div2k, rtol=relative_tolerance(dtype), atol=0):
        notes.append(
            f"the mean shifts hold the DIV2K mean rounded to {str(dtype).removeprefix('torch.')}: carried as stored "
            f"{fmt(mean)}, so the conversion is exact"
        )
    else:
        notes.append(f"carried {source} mean into rgb_mean: {fmt(mean)} (not the DIV2K mean)")
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
    edsr: Names
    mdsr: Names | None = None
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

    def names(self, architecture: str) -> Names:
        """Where this layout keeps each convolution of ``architecture`` (``"edsr"`` or ``"mdsr"``).

        Raises:
            ValueError: For an architecture this layout's code base does not have.
        """
        if architecture == "edsr":
            return self.edsr
        if architecture != "mdsr":
            raise ValueError(f"{self.title} has no {architecture!r} model")
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


def same_values(a: Any, b: Any, rel_tol: float = 1e-6) -> bool:
    """Equal, floats to ``rel_tol`` (lists element by element)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_values(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)
    return a == b
