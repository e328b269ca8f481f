"""Thin entrypoints that make every edsr-lib model visible in timm's registry.

timm's ``build_model_with_cfg`` is made for classifiers (it injects ``num_classes`` and
``in_chans``), so these entrypoints do not go through it: each one calls
:func:`edsr_lib.create_model`. ``default_cfgs`` mirrors the pretrained configs so that
``timm.list_models("edsr*", pretrained=True)`` sees the same tags.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from .registry import PretrainedCfg

#: Read by ``timm.models.register_model`` from this module, as in timm's own model files.
default_cfgs: dict[str, Any] = {}


def register_in_timm(name: str, cfgs: list[PretrainedCfg]) -> None:
    """Register ``name`` in timm's registry with an entrypoint that calls edsr-lib's builder."""
    from timm.models import register_model as timm_register_model
    from timm.models._pretrained import DefaultCfg
    from timm.models._pretrained import PretrainedCfg as TimmPretrainedCfg

    def entrypoint(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: dict[str, Any] | None = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ) -> nn.Module:
        from .registry import create_model

        tag = getattr(pretrained_cfg, "tag", None) or (pretrained_cfg if isinstance(pretrained_cfg, str) else None)
        model_name = f"{name}.{tag}" if tag else name
        return create_model(model_name, pretrained=pretrained, cache_dir=cache_dir, **kwargs)

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
