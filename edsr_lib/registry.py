"""The model registry: named variants, pretrained configs per ``arch.tag``, and timm interop.

In the style of timm: each variant is a small function decorated with
:func:`register_model`, and each model file describes its pretrained weights as data
in a module-level ``default_cfgs`` dict (``{"edsr_baseline_x2.t291": PretrainedCfg(...)}``).
Every variant is also registered in timm's registry through a thin entrypoint that
calls this library's own builder (lazily: when timm is imported).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from .weights import shipped as shipped_weights

__all__ = [
    "PretrainedCfg",
    "build_model",
    "create_model",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "register_model",
    "split_model_name_tag",
]

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a set of pretrained weights lives and what it reaches.

    A model file states only the name, the sha256, the licence and a description (and
    ``hf_hub_id="org/"``, completed with ``arch.tag`` as timm does); at registration the
    package's ``edsr_lib/weights/<arch.tag>/`` adds ``package_file`` and, from its
    ``pretrained.json``, the training data, command, steps and metrics.

    Attributes:
        hf_hub_id: Hugging Face Hub repository id (``"org/name"``); an id ending in ``/``
            is completed with ``arch.tag`` at registration.
        filename: Weights file inside the repository (or inside the package folder).
        sha256: Hex digest the weights file must have.
        revision: Hub branch, tag or (best) commit hash to download the weights from, so
            that a later push to the repository cannot change what ``pretrained=True``
            loads; ``None`` for the default branch. The sha256 still checks the file.
        license: Licence of the weights.
        training_data: What the weights were trained on.
        training_command: The command that produced them (data paths as ``$DATA/...``).
        steps: Number of optimiser steps.
        metrics: Scores per set and scale, e.g. ``{"Set5": {"x2": {"psnr": 37.6, "ssim": 0.959}}}``
            (benchmark protocol: Y channel, ``crop_border = scale``); self-ensemble scores sit
            under the set name with a ``+`` (``"Set5+"``), the paper's notation.
        package_file: Path relative to ``edsr_lib/weights/`` of a copy shipped inside the
            package, if any (found at registration).
        description: One line for the model zoo.
        architecture: Variant name, filled in at registration.
        tag: Tag name, filled in at registration.
    """

    hf_hub_id: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    revision: str | None = None
    license: str | None = None
    training_data: str | None = None
    training_command: str | None = None
    steps: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    package_file: str | None = None
    description: str | None = None
    architecture: str | None = None
    tag: str | None = None

    @property
    def name(self) -> str:
        """``architecture.tag``."""
        return f"{self.architecture}.{self.tag}" if self.tag else str(self.architecture)

    @property
    def has_weights(self) -> bool:
        """True when the config says where weights can be found."""
        return bool(self.hf_hub_id or self.package_file)


_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_pretrained_cfgs: dict[str, dict[str, PretrainedCfg]] = {}  # variant -> tag -> cfg (first tag is the default)


def split_model_name_tag(name: str) -> tuple[str, str | None]:
    """Split ``"arch.tag"`` into ``("arch", "tag")``; ``"arch"`` gives ``("arch", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def register_model(fn: Callable[..., M]) -> Callable[..., M]:
    """Register a model entrypoint under its function name (decorator).

    Pretrained configs are read from the defining module's ``default_cfgs`` dict, whose
    keys are ``"arch.tag"``; the first tag listed for an architecture is its default.
    The variant is also registered in timm's registry, now if timm is imported, else when
    it is (see :mod:`edsr_lib.timm_bridge`).
    """
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"a model named {name!r} is already registered")
    _model_entrypoints[name] = fn
    module_cfgs: dict[str, PretrainedCfg] = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    tags: dict[str, PretrainedCfg] = {}
    for key, cfg in module_cfgs.items():
        arch, tag = split_model_name_tag(key)
        if arch == name:
            if not tag:
                raise ValueError(f"pretrained config {key!r} needs a tag ('{arch}.<tag>')")
            tags[tag] = _complete_cfg(cfg, arch, tag)
    _pretrained_cfgs[name] = tags
    from . import timm_bridge

    if timm_bridge.timm_is_loaded():  # otherwise timm_bridge registers it when timm is imported
        timm_bridge.register_in_timm(name, list(tags.values()))
    return fn


def _complete_cfg(cfg: PretrainedCfg, arch: str, tag: str) -> PretrainedCfg:
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


def _load_models() -> None:
    """Import the model files, whose decorators fill the registry (``edsr_lib`` itself imports lazily)."""
    import edsr_lib.models  # noqa: F401


def is_model(name: str) -> bool:
    """True if ``name`` (optionally ``arch.tag``) is a registered variant."""
    _load_models()
    return split_model_name_tag(name)[0] in _model_entrypoints


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
    _load_models()
    include_tags = pretrained if include_tags is None else include_tags
    names: list[str] = []
    for arch in _model_entrypoints:
        tags = [cfg.tag for cfg in _pretrained_cfgs[arch].values() if cfg.has_weights]
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
    return [cfg for arch in list_models(pattern) for cfg in _pretrained_cfgs[arch].values()]


def get_pretrained_cfg(model_name: str, tag: str | None = None) -> PretrainedCfg:
    """The pretrained config of ``model_name`` (``arch`` or ``arch.tag``); default tag if none given.

    Raises:
        ValueError: If the model is unknown, has no pretrained weights, or has no such tag.
    """
    _load_models()
    arch, name_tag = split_model_name_tag(model_name)
    tag = tag or name_tag
    if arch not in _model_entrypoints:
        raise ValueError(_unknown_model_message(arch))
    cfgs = _pretrained_cfgs[arch]
    if not cfgs:
        with_weights = ", ".join(list_models(pretrained=True)) or "none yet"
        raise ValueError(f"{arch} has no pretrained weights; models with weights: {with_weights}")
    if tag is None:
        return next(iter(cfgs.values()))
    if tag not in cfgs:
        raise ValueError(f"{arch} has no pretrained tag {tag!r}; its tags: {', '.join(cfgs)}")
    return cfgs[tag]


def _unknown_model_message(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(_model_entrypoints), n=3)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else f"; registered models: {', '.join(sorted(_model_entrypoints))}"
    )
    return f"unknown model {name!r}{hint}"


def create_model(
    model_name: str,
    pretrained: bool = False,
    *,
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
        weights: An explicit weights file (``.safetensors``) or directory
            (``model.safetensors`` + ``config.json``) to load; implies ``pretrained``.
        cache_dir: Hugging Face cache directory to use instead of the default.
        **overrides: Keyword arguments for the model constructor (``res_scale=...``).

    Returns:
        The model, in eval mode when weights were loaded, train mode otherwise.

    Raises:
        ValueError: For an unknown name, a scale the family does not have, or missing weights.
    """
    _load_models()
    arch, tag = split_model_name_tag(model_name)
    if arch not in _model_entrypoints and "scale" in overrides:
        candidate = f"{arch}_x{overrides['scale']}"
        if candidate in _model_entrypoints:
            overrides.pop("scale")
            arch = candidate
        elif any(n.startswith(f"{arch}_x") for n in _model_entrypoints):
            have = sorted(int(n.rsplit("_x", 1)[1]) for n in _model_entrypoints if n.startswith(f"{arch}_x"))
            raise ValueError(f"{arch} has no variant for scale {overrides['scale']!r}; its scales: {tuple(have)}")
    if arch not in _model_entrypoints:
        raise ValueError(_unknown_model_message(arch))
    return _model_entrypoints[arch](
        pretrained=bool(pretrained) or weights is not None,
        pretrained_tag=tag,
        weights=weights,
        cache_dir=cache_dir,
        **overrides,
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

    Entrypoints call this with the variant's numbers; see :func:`create_model` for the
    meaning of the weight arguments.
    """
    model = model_cls(**kwargs)
    model.variant = variant
    model.pretrained_cfg = None
    if pretrained or weights is not None:
        # explicit weights are checked against a pretrained config only when a tag names one
        cfg = get_pretrained_cfg(variant, pretrained_tag) if weights is None or pretrained_tag else None
        from .hub import load_pretrained

        load_pretrained(model, cfg, weights=weights, cache_dir=cache_dir)
        model.pretrained_cfg = cfg
        model.eval()
    return model
