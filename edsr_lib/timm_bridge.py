"""Thin entrypoints that make every edsr-lib model visible in timm's registry, registered when this module is imported.

timm's ``build_model_with_cfg`` is made for classifiers (it injects ``num_classes`` and
``in_chans``), so these entrypoints do not go through it: each one calls
:func:`edsr_lib.create_model`. ``default_cfgs`` mirrors the pretrained configs so that
``timm.list_models("edsr*", pretrained=True)`` sees the same tags.

Importing this module registers every model in timm (:func:`install`), and every variant
registered later too: timm's own way to add models, whose model files register theirs as they
are imported (timm has no plugin hook). Importing timm imports every timm model (about 3 s), so
``import edsr_lib`` does not import this module unless timm is already imported; otherwise
``import edsr_lib.timm_bridge`` (or the attribute ``edsr_lib.timm_bridge``) does it. Then
``timm.create_model("edsr_baseline_x2")`` and ``timm.list_models("edsr*")`` work.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from timm.models import register_model as timm_register_model
from timm.models._pretrained import DefaultCfg
from timm.models._pretrained import PretrainedCfg as TimmPretrainedCfg
from torch import nn

from . import registry
from ._registry import on_register
from .registry import PretrainedCfg

__all__ = ["default_cfgs", "install", "register_all", "register_in_timm"]

#: Read by ``timm.models.register_model`` from this module, as in timm's own model files.
default_cfgs: dict[str, Any] = {}
_registered: set[str] = set()


def register_in_timm(name: str, cfgs: list[PretrainedCfg]) -> None:
    """Register ``name`` in timm's registry with an entrypoint that calls edsr-lib's builder (once)."""
    if name in _registered:
        return

    def entrypoint(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: dict[str, Any] | None = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ) -> nn.Module:
        tag = getattr(pretrained_cfg, "tag", None) or (pretrained_cfg if isinstance(pretrained_cfg, str) else None)
        model_name = f"{name}.{tag}" if tag else name
        return registry.create_model(
            model_name,
            pretrained=pretrained,
            pretrained_cfg_overlay=pretrained_cfg_overlay,
            cache_dir=cache_dir,
            **kwargs,
        )

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"timm entrypoint for edsr-lib's {name}; see edsr_lib.create_model."
    if cfgs:
        default_cfgs[name] = DefaultCfg(
            tags=deque(cfg.tag for cfg in cfgs),
            cfgs={
                cfg.tag: TimmPretrainedCfg(
                    hf_hub_id=cfg.hf_hub_id,
                    hf_hub_filename=cfg.filename,
                    license=cfg.license,
                    description=cfg.description,
                    custom_load=True,
                    mean=(0.0, 0.0, 0.0),
                    std=(1.0, 1.0, 1.0),
                    num_classes=0,
                )
                for cfg in cfgs
            },
        )
    globals()[name] = entrypoint
    timm_register_model(entrypoint)
    _registered.add(name)


def register_all() -> None:
    """Register in timm every edsr-lib model registered so far."""
    for name in list(registry.model_entrypoints):
        register_in_timm(name, list(registry.pretrained_cfgs[name].values()))


def install() -> None:
    """Register every model in timm, and each variant registered from now on (importing this module does it)."""
    register_all()
    on_register(register_in_timm)


install()
