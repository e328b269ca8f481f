"""The builder behind every variant's entrypoint: construct the model, then load its weights.

It joins the registry's tables (which pretrained config a variant and tag name) and the hub
(where those weights are and how to read them); the model files call it, so it imports none
of them. Re-exported by :mod:`edsr_lib.registry`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from ._hub import load_pretrained
from ._registry import get_pretrained_cfg

__all__ = ["build_model"]

M = TypeVar("M", bound=nn.Module)


def _check_arguments(model_cls: Callable[..., nn.Module], variant: str, kwargs: dict[str, Any]) -> None:
    """Refuse, in one line, keyword arguments the model's constructor does not take."""
    parameters = inspect.signature(model_cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [key for key in kwargs if key not in parameters]
    if not unknown:
        return
    hint = ""
    if unknown == ["scale"] and "scales" in parameters:
        hint = (
            f" (it serves the scales {tuple(kwargs.get('scales', ()))}: pick one when running it, "
            "upscale(..., scale=2) or model(x, scale=2), or build fewer branches with scales=(2,))"
        )
    raise ValueError(
        f"{variant} takes no argument {', '.join(map(repr, unknown))}{hint}; its arguments: {', '.join(parameters)}"
    )


def build_model(
    model_cls: Callable[..., M],
    variant: str,
    pretrained: bool = False,
    *,
    pretrained_tag: str | None = None,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> M:
    """The one builder behind every entrypoint: construct, then load weights if asked.

    Entrypoints call this with the variant's numbers; see :func:`~edsr_lib.registry.create_model` for the
    meaning of the weight arguments.
    """
    _check_arguments(model_cls, variant, kwargs)
    model = model_cls(**kwargs)
    model.variant = variant
    model.pretrained_cfg = None
    if pretrained or weights is not None:
        # explicit weights are checked against a pretrained config only when a tag names one
        cfg = get_pretrained_cfg(variant, pretrained_tag) if weights is None or pretrained_tag else None
        load_pretrained(model, cfg, weights=weights, cache_dir=cache_dir)
        model.pretrained_cfg = cfg
        model.eval()
    return model
