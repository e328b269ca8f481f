"""The builder behind every variant's entrypoint: construct the model, then load its weights.

It joins the registry's tables (which pretrained config a variant and tag name) and the hub
(where those weights are and how to read them); the model files call it, so it imports none
of them. Re-exported by :mod:`edsr_lib.registry`.

Weights that are a third-party file (a pretrained config with a ``layout``, or a
``weights=`` file that is not safetensors) are converted by :mod:`edsr_lib.convert.pretrained`,
part of the converter, which sits above the models: it hands its function to
:func:`set_third_party_weights` when imported, as the models hand their architectures to
the registry. The converter's package imports it, and :mod:`edsr_lib.registry` and
:mod:`edsr_lib.hub` import the package, so every public path that can name such weights has it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from ._hub import CONFIG_NAME, load_pretrained
from ._pretrained import PretrainedCfg
from ._registry import get_pretrained_cfg

__all__ = ["build_model", "overlay_cfg", "set_third_party_weights"]

M = TypeVar("M", bound=nn.Module)

#: ``(cfg, cache_dir) -> model folder`` for third-party weights; set by :mod:`edsr_lib.convert.pretrained`.
_third_party_weights: Callable[[PretrainedCfg, str | Path | None], Path] | None = None

#: What an overlay may not change: the name of the weights it describes.
_NAMING_FIELDS = ("architecture", "tag")
#: The fields that say which file the weights are; overlaying one of them makes the shipped copy moot.
_FILE_FIELDS = ("hf_hub_id", "filename", "revision", "file")


def set_third_party_weights(loader: Callable[[PretrainedCfg, str | Path | None], Path]) -> None:
    """Set the function that turns a third-party pretrained config into a model folder (see the module doc)."""
    global _third_party_weights
    _third_party_weights = loader


def overlay_cfg(cfg: PretrainedCfg, overlay: Mapping[str, Any]) -> PretrainedCfg:
    """``cfg`` with the fields of ``overlay`` replaced, for one call (timm's ``pretrained_cfg_overlay``).

    Naming another file (``hf_hub_id``, ``filename``, ``revision`` or a local ``file``)
    drops the shipped copy, which is the config's own file; the pinned ``sha256`` stays
    unless the overlay sets it too, so a mirror or a local copy is checked against it.

    Raises:
        ValueError: For a key that is not a field of :class:`PretrainedCfg`, or one that names the weights.
    """
    fields = {f.name for f in dataclasses.fields(PretrainedCfg)} - set(_NAMING_FIELDS)
    unknown = sorted(set(overlay) - fields)
    if unknown:
        raise ValueError(
            f"pretrained_cfg_overlay for {cfg.name} has unknown keys {', '.join(unknown)}; "
            f"it can set {', '.join(sorted(fields))}"
        )
    changes = dict(overlay)
    if any(k in changes for k in _FILE_FIELDS):
        changes.setdefault("package_file", None)
    return dataclasses.replace(cfg, **changes)


def _resolve_cfg(
    variant: str,
    pretrained_tag: str | None,
    weights: str | Path | None,
    overlay: Mapping[str, Any] | None,
) -> tuple[PretrainedCfg | None, str | Path | None]:
    """The pretrained config to load, and the explicit weights left to load as they are."""
    # explicit weights are checked against a pretrained config only when a tag names one
    cfg = get_pretrained_cfg(variant, pretrained_tag) if weights is None or pretrained_tag else None
    if weights is not None and Path(weights).expanduser().is_file() and Path(weights).suffix != ".safetensors":
        # a third-party file: converted (once) like a pretrained config's, checked against a tag's sha256
        base = cfg if cfg is not None else PretrainedCfg(architecture=variant)
        cfg, weights = overlay_cfg(base, {"file": str(weights), "layout": base.layout}), None
    if overlay:
        base = cfg if cfg is not None else PretrainedCfg(architecture=variant)
        cfg = overlay_cfg(base, overlay)
        if cfg.file and not cfg.third_party and weights is None:
            weights = cfg.file  # a local copy in the library's own format
    return cfg, weights


def _implied(cfg: PretrainedCfg, folder: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of the converted model in ``folder``, which ``kwargs`` must not contradict."""
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    config.pop("architecture", None)
    clash = [k for k in kwargs if k in config and json.loads(json.dumps(kwargs[k])) != config[k]]
    if clash:
        raise ValueError(
            f"{cfg.name}'s weights need {', '.join(f'{k}={config[k]!r}' for k in clash)}; "
            f"{', '.join(f'{k}={kwargs[k]!r}' for k in clash)} cannot hold them: drop those arguments, or build the "
            "model without pretrained weights"
        )
    return {**kwargs, **config}


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
    pretrained_cfg_overlay: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> M:
    """The one builder behind every entrypoint: construct, then load weights if asked.

    Entrypoints call this with the variant's numbers; see :func:`~edsr_lib.registry.create_model` for the
    meaning of the weight arguments.
    """
    _check_arguments(model_cls, variant, kwargs)
    if not (pretrained or weights is not None):
        model = model_cls(**kwargs)
        model.variant, model.pretrained_cfg = variant, None
        return model
    cfg, weights = _resolve_cfg(variant, pretrained_tag, weights, pretrained_cfg_overlay)
    folder = None
    if cfg is not None and cfg.third_party:
        if _third_party_weights is None:
            raise RuntimeError(
                f"{cfg.name}'s weights are a third-party file, converted by edsr_lib.convert, which is not "
                "imported: create the model with edsr_lib.create_model"
            )
        folder = _third_party_weights(cfg, cache_dir)
        kwargs = _implied(cfg, folder, kwargs)
    model = model_cls(**kwargs)
    model.variant = variant
    if folder is not None:
        load_pretrained(model, None, weights=folder)  # the sha256 pinned is the source file's, checked before
    else:
        load_pretrained(model, cfg, weights=weights, cache_dir=cache_dir)
    model.pretrained_cfg = cfg
    return model.eval()
