"""The library's own layout, read from what the model classes declare.

Where an edsr-lib model keeps each convolution follows from the modules its class declares
(:attr:`~edsr_lib.SRModel.body_module`, :attr:`~edsr_lib.SRModel.upsampler_module`,
:attr:`~edsr_lib.SRModel.scale_branch_modules`, :attr:`~edsr_lib.SRModel.head_module`,
:attr:`~edsr_lib.SRModel.tail_module`) and the ResBlock's two convolutions. Only the
families built on EDSR's trunk (:class:`~edsr_lib.models.TrunkModel`) have this layout; any
other family is refused in one line. Reading
(:mod:`~edsr_lib.convert.detection`) maps a foreign state dict onto these names, writing
(:mod:`~edsr_lib.convert.writing`) maps them out, and :func:`library_numbers` tells a state
dict in this layout from its key names and shapes (spandrel, which sees no ``config.json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..models import TrunkModel, architectures
from ..models.base import scale_key
from .base import PREPROCESS, RESBLOCK, Names, key_numbers

__all__ = ["is_library_state_dict", "library_names", "library_numbers"]

#: The convolutions at both ends of the trunk (:meth:`TrunkModel.fuse` folds constants into them).
_HEAD, _TAIL = TrunkModel.head_module, TrunkModel.tail_module


def library_names(architecture: str) -> Names:
    """Where the library's ``architecture`` keeps each convolution (``{b}``: a scale branch, ``"x2"``).

    Raises:
        KeyError: For an architecture the library does not have.
        ValueError: For a family not built on EDSR's trunk (no head and tail to name).
    """
    cls = architectures()[architecture]
    if not _has_layout(cls):
        raise ValueError(
            f"the {architecture!r} family ({cls.__name__}) is not built on EDSR's trunk (TrunkModel): "
            "the converter's layouts have no names for its weights"
        )
    body, upsampler = cls.body_module, cls.upsampler_module
    branched = upsampler in cls.scale_branch_modules
    preprocess = [m for m in cls.scale_branch_modules if m != upsampler]
    block = tuple(conv.replace("body.", f"{body}.", 1) for conv in RESBLOCK)
    return Names(
        head=cls.head_module,
        block=(block[0], block[1]),
        body_end=f"{body}.{{n}}",
        upsampler=f"{upsampler}.{{b}}.{{k}}" if branched else f"{upsampler}.{{k}}",
        tail=cls.tail_module,
        preprocess=PREPROCESS.replace("pre_process.", f"{preprocess[0]}.", 1) if preprocess else "",
    )


def _has_layout(cls: type) -> bool:
    """Whether a model class declares the trunk whose convolutions the library layout names."""
    return issubclass(cls, TrunkModel) and bool(cls.head_module and cls.tail_module)


def is_library_state_dict(keys: Iterable[str]) -> bool:
    """Whether these key names have the library's head and tail (its own layout, not a foreign one)."""
    return {f"{_HEAD}.weight", f"{_TAIL}.weight"} <= set(keys)


def library_numbers(state_dict: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """The configs a state dict in the library's own layout can be, read from key names and shapes.

    Each is an ``"architecture"`` and the constructor arguments that its tensors fix
    (``n_feats``, ``n_colors``, ``kernel_size``, ``n_resblocks``, and ``scale`` or ``scales``
    and ``preprocess_kernel_size``), for each architecture whose names the keys have; an x2
    and an x3 upsampler both have one convolution, so a single-scale file may be either
    (build each candidate to compare shapes). ``rgb_range``, ``rgb_mean`` and ``res_scale``
    are in no tensor.
    """
    keys = set(state_dict)
    if not is_library_state_dict(keys):
        return []
    head = state_dict[f"{_HEAD}.weight"]
    if head.dim() != 4:
        return []
    candidates = []
    for architecture, cls in architectures().items():
        if not _has_layout(cls):
            continue
        names = library_names(architecture)
        numbers: dict[str, Any] = {
            "n_feats": int(head.shape[0]),
            "n_colors": int(head.shape[1]),
            "kernel_size": int(head.shape[-1]),
            "n_resblocks": len(key_numbers(state_dict, names.block[0])),
        }
        if "{b}" in names.upsampler:
            found = _labels(keys, names.upsampler.format(b="{b}", k=0))
            labels = {scale_key(int(label[1:])) for label in found if label[1:].isdigit()}
            pre = state_dict.get(names.preprocess.format(b=min(found, default=""), p=0, c=0) + ".weight")
            if not found or labels != found or pre is None or pre.dim() != 4:
                continue
            scales = sorted(int(label[1:]) for label in found)
            candidates.append({"architecture": architecture, "scales": scales, **numbers})
            candidates[-1]["preprocess_kernel_size"] = int(pre.shape[-1])
        elif not any(k.startswith(tuple(f"{m}." for m in _branch_modules(architecture))) for k in keys):
            n_convs = len(key_numbers(state_dict, names.upsampler))
            scales = (2, 3) if n_convs == 1 else (2**n_convs,) if n_convs else ()
            candidates += [{"architecture": architecture, "scale": s, **numbers} for s in scales]
    return candidates


def _branch_modules(architecture: str) -> set[str]:
    """The per-scale modules of every other architecture (their keys rule ``architecture`` out)."""
    return {
        m
        for name, cls in architectures().items()
        if name != architecture and _has_layout(cls)
        for m in cls.scale_branch_modules
    }


def _labels(keys: Iterable[str], template: str) -> set[str]:
    """The values of the one ``{b}`` of ``template`` among the ``.weight`` keys."""
    pattern = re.compile(re.escape(template + ".weight").replace(re.escape("{b}"), r"([^.]+)"))
    return {m.group(1) for key in keys if (m := pattern.fullmatch(key))}
