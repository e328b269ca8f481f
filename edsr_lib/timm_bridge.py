"""Thin entrypoints that make every edsr-lib model visible in timm's registry, registered lazily.

timm's ``build_model_with_cfg`` is made for classifiers (it injects ``num_classes`` and
``in_chans``), so these entrypoints do not go through it: each one calls
:func:`edsr_lib.create_model`. ``default_cfgs`` mirrors the pretrained configs so that
``timm.list_models("edsr*", pretrained=True)`` sees the same tags.

Importing timm imports every timm model (about 3 s), so ``import edsr_lib`` does not:
:func:`install` registers the models in timm at once if timm is already imported, and
otherwise puts a finder on ``sys.meta_path`` that registers them the moment ``timm``
finishes importing. Either way, ``timm.create_model("edsr_baseline_x2")`` and
``timm.list_models("edsr*")`` work after ``import edsr_lib``, whichever came first.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.machinery
    from types import ModuleType

    from torch import nn

    from .registry import PretrainedCfg

#: Read by ``timm.models.register_model`` from this module, as in timm's own model files.
default_cfgs: dict[str, Any] = {}
_registered: set[str] = set()


def timm_is_loaded() -> bool:
    """True once ``timm`` has finished importing (its registry can take entrypoints)."""
    timm = sys.modules.get("timm")
    return timm is not None and hasattr(timm, "create_model")


def register_in_timm(name: str, cfgs: list[PretrainedCfg]) -> None:
    """Register ``name`` in timm's registry with an entrypoint that calls edsr-lib's builder (once)."""
    if name in _registered:
        return
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
    _registered.add(name)


def register_all() -> None:
    """Register every edsr-lib model in timm (imports the model files, and timm)."""
    from . import models  # noqa: F401  (the model files register their variants)
    from .registry import _model_entrypoints, _pretrained_cfgs

    for name in list(_model_entrypoints):
        register_in_timm(name, list(_pretrained_cfgs[name].values()))


class _AfterTimmImport:
    """A ``sys.meta_path`` finder that finds nothing itself: it wraps timm's own loader so that
    :func:`register_all` runs right after timm's import (not subclassing ``importlib.abc``,
    whose import costs more than all of this module)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            register_all()

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Register the models in timm now if timm is loaded, else as soon as it is imported."""
    if timm_is_loaded():
        register_all()
    elif not any(isinstance(f, _AfterTimmImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmImport())
