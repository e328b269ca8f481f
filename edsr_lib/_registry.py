"""The registry's tables: variant entrypoints, pretrained configs per ``arch.tag``, architectures.

Use it through :mod:`edsr_lib.registry`, which re-exports every public name here once the
library's model files have filled the tables. The model files import this module (for
:func:`register_model`), so it imports none of them, nor torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._pretrained import PretrainedCfg
from .weights import shipped as shipped_weights

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "PretrainedCfg",
    "architectures",
    "create_model",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "on_register",
    "register_architecture",
    "register_model",
    "split_model_name_tag",
]

M = TypeVar("M", bound="nn.Module")


model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
pretrained_cfgs: dict[str, dict[str, PretrainedCfg]] = {}  # variant -> tag -> cfg (first tag is the default)
_architectures: dict[str, type[nn.Module]] = {}  # config["architecture"] -> model class
_listeners: list[Callable[[str, list[PretrainedCfg]], None]] = []


def split_model_name_tag(name: str) -> tuple[str, str | None]:
    """Split ``"arch.tag"`` into ``("arch", "tag")``; ``"arch"`` gives ``("arch", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def register_model(fn: Callable[..., M]) -> Callable[..., M]:
    """Register a model entrypoint under its function name (decorator).

    Pretrained configs are read from the defining module's ``default_cfgs`` dict, whose
    keys are ``"arch.tag"``; the first tag listed for an architecture is its default.
    Each function given to :func:`on_register` is then called with the name and the configs
    (that is how :mod:`edsr_lib.timm_bridge` follows the registry).
    """
    name = fn.__name__
    if name in model_entrypoints:
        raise ValueError(f"a model named {name!r} is already registered")
    model_entrypoints[name] = fn
    module_cfgs: dict[str, PretrainedCfg] = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    tags: dict[str, PretrainedCfg] = {}
    for key, cfg in module_cfgs.items():
        arch, tag = split_model_name_tag(key)
        if arch == name:
            if not tag:
                raise ValueError(f"pretrained config {key!r} needs a tag ('{arch}.<tag>')")
            tags[tag] = complete_cfg(cfg, arch, tag)
    pretrained_cfgs[name] = tags
    for listener in _listeners:
        listener(name, list(tags.values()))
    return fn


def on_register(listener: Callable[[str, list[PretrainedCfg]], None]) -> None:
    """Call ``listener(name, cfgs)`` for every variant registered from now on (once per listener).

    Args:
        listener: Called with the variant's name and its pretrained configs, default tag first.
    """
    if listener not in _listeners:
        _listeners.append(listener)


def register_architecture(cls: type[M]) -> type[M]:
    """Make ``cls`` the class that rebuilds a ``config.json`` naming ``cls.architecture``.

    :class:`~edsr_lib.models.SRModel` calls this for each subclass that declares its own
    ``architecture``, so a new model family is found as soon as its module is imported, with
    no table to edit. The first class to declare a name keeps it.
    """
    if cls.__dict__.get("architecture"):
        _architectures.setdefault(cls.architecture, cls)
    return cls


def architectures() -> dict[str, type[nn.Module]]:
    """``config["architecture"]`` -> model class, for every model family imported so far (a copy)."""
    return dict(_architectures)


def complete_cfg(cfg: PretrainedCfg, arch: str, tag: str) -> PretrainedCfg:
    """``cfg`` named ``arch.tag``, its Hub id completed, with what the package ships under that name."""
    name = f"{arch}.{tag}"
    found = shipped_weights(name, cfg.filename)
    if cfg.package_file:
        found.pop("package_file", None)
    twice = [k for k in found if getattr(cfg, k) not in (None, {})]
    if twice:
        raise ValueError(f"{name}: {', '.join(twice)} belong in edsr_lib/weights/{name}/pretrained.json only")
    hub_id = cfg.hf_hub_id + name if cfg.hf_hub_id and cfg.hf_hub_id.endswith("/") else cfg.hf_hub_id
    return dataclasses.replace(cfg, architecture=arch, tag=tag, hf_hub_id=hub_id, **found)


def is_model(name: str) -> bool:
    """True if ``name`` (optionally ``arch.tag``) is a registered variant."""
    return split_model_name_tag(name)[0] in model_entrypoints


def list_models(
    pattern: str | Iterable[str] = "", pretrained: bool = False, include_tags: bool | None = None
) -> list[str]:
    """Names of registered models, sorted.

    Args:
        pattern: Shell-style wildcard(s) such as ``"edsr*"``; empty matches all.
        pretrained: Only models that have pretrained weights.
        include_tags: List ``arch.tag`` for every pretrained tag instead of bare names
            (defaults to the value of ``pretrained``).
    """
    include_tags = pretrained if include_tags is None else include_tags
    names: list[str] = []
    for arch in model_entrypoints:
        tags = [cfg.tag for cfg in pretrained_cfgs[arch].values() if cfg.has_weights]
        if pretrained and not tags:
            continue
        names += [f"{arch}.{t}" for t in tags] if include_tags and tags else [arch]
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    if any(patterns):
        names = [
            n
            for n in names
            if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(split_model_name_tag(n)[0], p) for p in patterns)
        ]
    return sorted(names)


def list_pretrained(pattern: str = "") -> list[PretrainedCfg]:
    """Pretrained configs of the models matching ``pattern``, default tag first per model."""
    return [cfg for arch in list_models(pattern) for cfg in pretrained_cfgs[arch].values()]


def get_pretrained_cfg(model_name: str, tag: str | None = None) -> PretrainedCfg:
    """The pretrained config of ``model_name`` (``arch`` or ``arch.tag``); default tag if none given.

    Raises:
        ValueError: If the model is unknown, has no pretrained weights, or has no such tag.
    """
    arch, name_tag = split_model_name_tag(model_name)
    tag = tag or name_tag
    if arch not in model_entrypoints:
        raise ValueError(_unknown_model_message(arch))
    cfgs = pretrained_cfgs[arch]
    if not cfgs:
        with_weights = ", ".join(list_models(pretrained=True)) or "none yet"
        raise ValueError(f"{arch} has no pretrained weights; models with weights: {with_weights}")
    if tag is None:
        return next(iter(cfgs.values()))
    if tag not in cfgs:
        raise ValueError(f"{arch} has no pretrained tag {tag!r}; its tags: {', '.join(cfgs)}")
    return cfgs[tag]


def _unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(model_entrypoints), n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else f"; registered models: {', '.join(sorted(model_entrypoints))}"
    )
    return f"unknown model {name!r}{hint}"


def create_model(
    model_name: str,
    pretrained: bool = False,
    *,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Create a registered model, optionally with pretrained weights.

    Args:
        model_name: A variant (``"edsr_baseline_x2"``), a variant with a pretrained tag
            (``"edsr_baseline_x2.t291"``), or a family name with ``scale=`` among the
            overrides (``create_model("edsr_baseline", scale=3)``).
        pretrained: Load the pretrained weights of the default (or named) tag. They are
            looked for, in order: ``weights`` if given; the copy shipped inside the package;
            the Hugging Face cache; a download from the Hub (unless ``HF_HUB_OFFLINE=1``).
            A tag whose weights are a third-party file (``edsr_x2.div2k``: super-image's
            file on the Hub) is downloaded, checked against its sha256 before it is read,
            converted once and kept in the library's format, so later loads read only that.
        pretrained_cfg_overlay: Fields of the tag's :class:`PretrainedCfg` to replace for this
            call, as in timm: a mirror (``{"hf_hub_id": ...}``), another ``revision`` or
            ``filename``, a local copy (``{"file": PATH}``), its ``sha256``.
        weights: An explicit weights file or directory to load; implies ``pretrained``: a
            ``.safetensors`` file or a folder (``model.safetensors`` + ``config.json``) as it
            is, a third-party checkpoint (``.pt``, ``.pth``) converted like a tag's.
        cache_dir: Hugging Face cache directory to use instead of the default.
        **overrides: Keyword arguments for the model constructor (``res_scale=...``).

    Returns:
        The model, in eval mode when weights were loaded, train mode otherwise.

    Raises:
        ValueError: For an unknown name, a scale the family does not have, or missing weights.
    """
    arch, tag = split_model_name_tag(model_name)
    if arch not in model_entrypoints and "scale" in overrides:
        candidate = f"{arch}_x{overrides['scale']}"
        if candidate in model_entrypoints:
            overrides.pop("scale")
            arch = candidate
        elif any(n.startswith(f"{arch}_x") for n in model_entrypoints):
            have = sorted(int(n.rsplit("_x", 1)[1]) for n in model_entrypoints if n.startswith(f"{arch}_x"))
            raise ValueError(f"{arch} has no variant for scale {overrides['scale']!r}; its scales: {tuple(have)}")
    if arch not in model_entrypoints:
        raise ValueError(_unknown_model_message(arch))
    family, _, fixed = arch.rpartition("_x")
    if "scale" in overrides and fixed.isdigit() and overrides["scale"] != int(fixed):
        scale = overrides["scale"]
        raise ValueError(
            f"{arch} is the x{fixed} variant; scale={scale!r} would build another model under its name: "
            f"create_model('{family}_x{scale}') or create_model('{family}', scale={scale!r})"
        )
    return model_entrypoints[arch](
        pretrained=bool(pretrained) or weights is not None,
        pretrained_tag=tag,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        weights=weights,
        cache_dir=cache_dir,
        **overrides,
    )
