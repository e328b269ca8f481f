"""Start a model from trained weights of another: weight surgery guided by the models' declared layouts.

The paper starts EDSR x3/x4 from a trained x2 and builds MDSR from single-scale models;
:func:`load_init_weights` does that mapping. What it knows about a model comes from the
layout the model class declares (:attr:`~edsr_lib.SRModel.body_module`,
:attr:`~edsr_lib.SRModel.upsampler_module`, :attr:`~edsr_lib.SRModel.scale_branch_modules`),
never from hard-coded module names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..convert import load_state_dict
from ..hub import WeightsNotFoundError, WeightsSource, resolve_weights
from ..layers import ResBlock
from ..models import SRModel, architectures
from ..models.base import scale_key
from ..registry import PretrainedCfg

__all__ = ["init_source", "load_init_weights"]


def init_source(source: str | Path) -> Path | PretrainedCfg:
    """What an ``init_from`` source names: a weights file, or the pretrained config of a model name.

    A folder stands for its ``model.safetensors``; a name that is no file or folder but a
    registered model stands for that model's (default or named) pretrained weights
    (:func:`edsr_lib.hub.resolve_weights` is the rule).

    Raises:
        FileNotFoundError: If the source is neither an existing file nor a model with weights.
    """
    found = _resolve(source)
    return found.cfg if found.cfg is not None else found.weights_file


def _resolve(source: str | Path) -> WeightsSource:
    try:
        return resolve_weights(source)
    except (ValueError, WeightsNotFoundError) as err:
        raise FileNotFoundError(
            f"no weights to initialise from at {source} (a model folder, .safetensors, .pt or a pretrained model "
            f"name): {err}"
        ) from None


def _read_state(source: str | Path) -> dict[str, torch.Tensor]:
    found = _resolve(source)
    if found.kind == "file" and found.path.suffix != ".safetensors":
        # a training checkpoint (its "model"), or a state dict: read as the converter reads a
        # third-party file, weights_only, so that a file of other objects is one clear error
        return load_state_dict(found.path)
    return found.state_dict()


def _upsampler_names() -> set[str]:
    """The upsampler module of every known architecture (a source may be any of them)."""
    return {cls.upsampler_module for cls in architectures().values()}


def _single_scale_upsamplers() -> set[str]:
    """The upsampler module of every single-scale architecture (one upsampler, no per-scale branches)."""
    return {cls.upsampler_module for cls in architectures().values() if not cls.scale_branch_modules}


def _branches(model: SRModel) -> dict[tuple[str, int], list[str]]:
    """``(module dict name, scale) -> parameter names`` for every scale-specific branch."""
    state = model.state_dict()
    out: dict[tuple[str, int], list[str]] = {}
    for name, per_scale in model.scale_branches().items():
        for scale in per_scale:
            prefix = f"{name}.{scale_key(scale)}."
            out[(name, scale)] = [k for k in state if k.startswith(prefix)]
    return out


def _same(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], mapping: dict[str, str]) -> bool:
    return all(k in state and tuple(state[k].shape) == tuple(own[o].shape) for o, k in mapping.items())


def _n_blocks(state: dict[str, Any], body: str) -> int:
    """The number of residual blocks in a state dict's ``body``: the entries with submodules.

    The body's closing convolution (``<body>.<n>.weight``) follows them.
    """
    found = {int(k.split(".")[1]) for k in state if k.startswith(f"{body}.") and len(k.split(".")) > 3}
    return max(found) + 1 if found else 0


def _deepen(state: dict[str, torch.Tensor], depth: int, body: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renumber a shallower source's body for a model with ``depth`` residual blocks.

    Blocks ``0 .. n-1`` keep their places, the body's last convolution (``<body>.<n>``) moves
    to ``<body>.<depth>``, and the blocks in between (returned) are for the caller to start
    as the identity, so the deeper model computes what the source computes.
    """
    n = _n_blocks(state, body)
    if n == 0 or n == depth:
        return state, []
    if n > depth:
        raise ValueError(
            f"the source has {n} residual blocks and this model {depth}; a model cannot start from a deeper one"
        )
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == body and parts[1] == str(n):
            k = ".".join([body, str(depth), *parts[2:]])
        out[k] = v
    return out, [f"{body}.{i}" for i in range(n, depth)]


def load_init_weights(model: SRModel, source: str | Path | Sequence[str | Path]) -> list[str]:
    """Initialise ``model`` from trained weights (as the paper starts x3/x4 from a trained x2).

    Every tensor outside the upsampler is copied and must match. The upsampler is copied
    only when the source has exactly the same upsampler (same scale), so that x2 continues
    from x2 whole while x3/x4 from x2 get a fresh upsampler.

    A multi-scale model (MDSR) can also start from single-scale models with the same head,
    body and tail (EDSR-baseline for MDSR-baseline), one source per scale, such as
    ``["edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4"]``: the first source gives
    every shared tensor; each source gives the upsampler branch that has its upsampler's
    shapes (its scale); scale-specific pre-processing that no source has starts as the
    identity (the last convolution of each residual block zeroed). The model then starts
    out computing exactly what the first source computes at its scale.

    A deeper model can start from a shallower one of the same width (MDSR's 80 blocks from
    MDSR-baseline's 16): the source's blocks fill the first places, its last body
    convolution closes the body, and the blocks in between start as the identity, so the
    deeper model again starts out computing exactly what the source computes.

    Args:
        model: The model to initialise (in place).
        source: A ``save_pretrained`` folder, a ``.safetensors`` file, a training
            checkpoint (``checkpoint.pt``), or a registered model name with pretrained
            weights (``"edsr_baseline_x2"``, resolved as ``create_model(name, pretrained=True)``);
            or, for a multi-scale model, a list of them.

    Returns:
        The names of the tensors copied.

    Raises:
        FileNotFoundError: If a source does not exist.
        ValueError: If a tensor outside the upsampler and the scale branches is missing
            from the (first) source or has another shape (a different architecture), or if
            a single-scale model is given several sources, or if a source is deeper than
            the model.
    """
    sources = [source] if isinstance(source, str | Path) else list(source)
    if not sources:
        raise ValueError("no weights to initialise from: the list of sources is empty")
    branches = _branches(model)
    if len(sources) > 1 and not branches:
        raise ValueError(f"{type(model).__name__} has one scale; give one source to initialise it, not {len(sources)}")
    body = model.body_module
    upsamplers = _upsampler_names()
    own = model.state_dict()
    depth = _n_blocks(own, body)
    states, added = [], set()
    for s in sources:
        state, extra = _deepen(_read_state(s), depth, body)
        states.append(state)
        added.update(extra)
    in_branch = {k for names in branches.values() for k in names}
    upsampler = [k for k in own if k.split(".")[0] == model.upsampler_module and k not in in_branch]
    deepened = [k for k in own if ".".join(k.split(".")[:2]) in added]
    shared = [k for k in own if k not in in_branch and k not in upsampler and k not in deepened]
    bad = [k for k in shared if not _same(states[0], own, {k: k})]
    if bad:
        raise ValueError(
            f"{sources[0]} cannot initialise this model: {len(bad)} tensors outside the upsampler are missing or "
            f"have other shapes (first: {bad[:3]}); it must be the same architecture apart from the scale"
        )
    copy = {k: states[0][k] for k in shared}
    theirs = {k for k in states[0] if k.split(".")[0] in upsamplers}
    if upsampler and theirs == set(upsampler) and _same(states[0], own, {k: k for k in upsampler}):
        copy.update({k: states[0][k] for k in upsampler})

    identity: list[str] = sorted(added, key=lambda name: int(name.split(".")[1]))
    for (dict_name, scale), names in branches.items():
        same_name = {k: k for k in names}
        found = next((st for st in states if _same(st, own, same_name)), None)
        if found is not None:  # a multi-scale source with this branch
            copy.update({k: found[k] for k in names})
            continue
        key = scale_key(scale)
        if dict_name == model.upsampler_module:  # a single-scale source's upsampler of this scale
            prefix = f"{dict_name}.{key}."
            for single_name in sorted(_single_scale_upsamplers()):
                as_single = {k: f"{single_name}." + k[len(prefix) :] for k in names}
                st = next(
                    (
                        st
                        for st in states
                        if {k for k in st if k.startswith(f"{single_name}.")} == set(as_single.values())
                        and _same(st, own, as_single)
                    ),
                    None,
                )
                if st is not None:
                    copy.update({k: st[v] for k, v in as_single.items()})
                    break
        elif not any(k.startswith(f"{dict_name}.") for st in states for k in st):
            identity.append(f"{dict_name}.{key}")
    model.load_state_dict(copy, strict=False)
    for name in identity:  # blocks no source has (pre-processing, added depth): start as the identity
        for block in model.get_submodule(name).modules():
            if isinstance(block, ResBlock):
                block.zero_residual_()
    return list(copy)
