"""Detection: which model a third-party state dict holds, in which layout, and how its keys map onto the library's.

:func:`detect` reads only key names and tensor shapes (and the values of the fixed mean
shifts), infers the hyperparameters, and refuses a state dict that it cannot map
completely; :func:`convert_state_dict` then builds the library's model from it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .._hub import diff_state_dicts
from .._registry import create_model
from ..models import SRModel, architectures
from ..models.base import scale_key
from .base import (
    Layout,
    Names,
    conv_names,
    fmt,
    key_numbers,
    least_precise,
    relative_tolerance,
    same_values,
    some,
    upsampler_scale,
)
from .layouts import REGISTRY, get_layout
from .library import is_library_state_dict, library_names
from .spec import ConvertedSpec
from .super_image import SUPER_IMAGE_MDSR, is_super_image_mdsr

__all__ = ["AmbiguousLayoutError", "ConvertedSpec", "convert_state_dict", "detect"]

logger = logging.getLogger(__name__)


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
                what = f"{reading.describe()}, rgb_range {k['rgb_range']:g}, rgb_mean {fmt(k['rgb_mean'])}"
            else:
                what = f"cannot read it ({reading})"
            parts.append(f"{who} [{conventions}] -> {what}")
        choices = " or ".join(repr(n) for n in self.layouts)
        super().__init__(
            f"the key names fit {len(self.layouts)} layouts ({', '.join(self.layouts)}), which read these tensors "
            f"in {len(groups)} different ways: "
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
        and all(same_values(a.kwargs[k], b.kwargs[k]) for k in a.kwargs)
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
    if is_super_image_mdsr(keys):
        raise ValueError(SUPER_IMAGE_MDSR)
    if layout is not None:
        chosen = get_layout(layout)
        if chosen.architecture(keys) is None:
            theirs = [name for name, other in REGISTRY.items() if other.architecture(keys)]
            if not theirs:
                raise ValueError(_unknown_layout_message(keys))
            whose = f"{theirs[0]}'s" if len(theirs) == 1 else f"those of {', '.join(theirs)}"
            raise ValueError(f"layout {layout!r} was asked for, but the key names are {whose}")
        return _read(chosen, state_dict, overrides)

    readings: dict[str, ConvertedSpec | ValueError] = {}
    for candidate in REGISTRY.values():
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
    blocks = key_numbers(state_dict, names.block[0])
    n_resblocks = blocks[-1] + 1 if blocks else 0

    labels = [""]
    if architecture == "mdsr":
        found = set(key_numbers(state_dict, names.upsampler.format(b="{b}", k=0)))
        found |= set(key_numbers(state_dict, names.preprocess.format(b="{b}", p=0, c=0)))
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

    source = conv_names(names, n_resblocks, [(label, n) for label, _, n, _ in branches])
    target = conv_names(library_names(architecture), n_resblocks, [(lib, n) for _, lib, n, _ in branches])
    key_map = {f"{s}.{p}": f"{t}.{p}" for s, t in zip(source, target, strict=True) for p in ("weight", "bias")}
    _check_complete(state_dict, layout.name, architecture, kwargs, key_map, absorbed)
    dtype = str(least_precise(state_dict)).removeprefix("torch.")
    return ConvertedSpec(
        layout.name, architecture, kwargs, key_map, tuple(absorbed), tuple(notes), assumed=assumed, dtype=dtype
    )


def _read_branches(
    state_dict: Mapping[str, torch.Tensor], names: Names, labels: Sequence[str], n_feats: int
) -> list[tuple[str, str, int, int]]:
    """Per upsampling branch: source label, library label, number of convolutions, scale."""
    branches = []
    for label in labels:
        template = names.upsampler.format(b=label, k="{k}")
        weights = [state_dict[f"{template.format(k=k)}.weight"] for k in key_numbers(state_dict, template)]
        scale = upsampler_scale(weights, n_feats, template.format(k="*"))
        branches.append((label, scale_key(scale), len(weights), scale))
    scales = [scale for *_, scale in branches]
    if len(set(scales)) != len(scales):
        raise ValueError(f"two MDSR branches upsample by the same scale: branch scales {scales}")
    return branches


def _unknown_layout_message(keys: set[str]) -> str:
    sample = some(sorted(keys), 6)
    if is_library_state_dict(keys):
        return (
            f"this looks like edsr-lib's own format (keys {sample}): load it with edsr_lib.from_pretrained or "
            "create_model(..., weights=...)"
        )
    heads: dict[str, list[str]] = {}
    for layout in REGISTRY.values():
        heads.setdefault(f"{layout.edsr.head}.weight", []).append(layout.title)
    named = " nor ".join(f"{head!r} ({', '.join(titles)})" for head, titles in heads.items())
    return f"unknown layout: neither {named} is among the keys ({sample})"


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
        f"{label}: {some(items)}"
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
    return load_for_detection(detect(state_dict, layout=layout, **overrides), state_dict, variant)


def load_for_detection(spec: ConvertedSpec, state_dict: Mapping[str, torch.Tensor], variant: str | None) -> SRModel:
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


def _check_variant(spec: ConvertedSpec, variant: str, prefix: str) -> None:
    """Refuse unless the detected model has the configuration of the registered ``variant``.

    Values read from tensors are compared to the precision the tensors were stored in.
    """
    with torch.device("meta"):
        expected = create_model(variant).config
    got = {"architecture": spec.architecture, **spec.kwargs}
    rel_tol = relative_tolerance(getattr(torch, spec.dtype, torch.float32))
    if got["architecture"] != expected["architecture"]:
        diffs = [f"architecture {got['architecture']!r} (expected {expected['architecture']!r})"]
    else:
        diffs = [
            f"{k} {got[k]!r} (expected {v!r})"
            for k, v in expected.items()
            if k in got and not same_values(got[k], v, rel_tol)
        ]
    if diffs:
        raise ValueError(f"{prefix} {variant}: {'; '.join(diffs)}")
