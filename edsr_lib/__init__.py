"""edsr-lib: EDSR and MDSR super-resolution networks (Lim et al., CVPR 2017 workshops).

Most users need only :func:`create_model` and :func:`list_models`::

    import edsr_lib
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)

The names below are imported on first use (PEP 562), so that ``import edsr_lib`` and
``edsr-lib --help`` do not pay for torch until something needs it. The models are in
timm's registry as soon as timm is imported (see :mod:`edsr_lib.timm_bridge`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    import importlib.machinery

    from . import layers, metrics, models
    from .evaluate import evaluate
    from .hub import from_pretrained
    from .inference import upscale
    from .jobs import upscale_folder
    from .layers import MeanShift, ResBlock, ScalePreprocess, Upsampler
    from .models import EDSR, MDSR, SRModel
    from .ops import imresize, modcrop
    from .registry import (
        PretrainedCfg,
        create_model,
        get_pretrained_cfg,
        is_model,
        list_models,
        list_pretrained,
        register_model,
    )
    from .video import upscale_video

#: Public submodules (``timm_bridge`` imports timm: it is imported on first use, or when timm is).
_SUBMODULES = ("layers", "metrics", "models", "timm_bridge")
#: Public name -> module that defines it.
_LAZY: dict[str, str] = {
    "evaluate": ".evaluate",
    "from_pretrained": ".hub",
    "upscale": ".inference",
    "upscale_folder": ".jobs",
    "MeanShift": ".layers",
    "ResBlock": ".layers",
    "ScalePreprocess": ".layers",
    "Upsampler": ".layers",
    "EDSR": ".models",
    "MDSR": ".models",
    "SRModel": ".models",
    "imresize": ".ops",
    "modcrop": ".ops",
    "PretrainedCfg": ".registry",
    "create_model": ".registry",
    "get_pretrained_cfg": ".registry",
    "is_model": ".registry",
    "list_models": ".registry",
    "list_pretrained": ".registry",
    "register_model": ".registry",
    "upscale_video": ".video",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY and name not in _SUBMODULES:
        raise AttributeError(f"module 'edsr_lib' has no attribute {name!r}")
    importlib.import_module(".models", __name__)  # the registry is only whole once the model files ran
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


class _Package(types.ModuleType):
    """``edsr_lib`` itself: importing the submodule ``edsr_lib.evaluate`` must not hide the function ``evaluate``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _LAZY:
            value = getattr(value, name)  # the import system binds the submodule; the public name is its function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def fuse(model: SRModel) -> SRModel:
    """Fold ``res_scale`` and the mean shifts into convolutions for inference (in place).

    Same as ``model.fuse()``; outputs equal the unfused model's to float rounding.
    """
    return model.fuse()


class _AfterTimmImport:
    """A ``sys.meta_path`` finder that finds nothing itself: it wraps timm's own loader so that
    :mod:`edsr_lib.timm_bridge` is imported (and registers the models) right after timm's import
    (not subclassing ``importlib.abc``, whose import costs more than all of this)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module: types.ModuleType) -> None:
            exec_module(module)
            importlib.import_module(".timm_bridge", __name__)

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


# timm sees the models however the imports are ordered; importing timm itself costs ~3 s, so not here
if "timm" in sys.modules and hasattr(sys.modules["timm"], "create_model"):
    importlib.import_module(".timm_bridge", __name__)
elif not any(isinstance(f, _AfterTimmImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterTimmImport())

__all__ = [
    "EDSR",
    "MDSR",
    "MeanShift",
    "PretrainedCfg",
    "ResBlock",
    "SRModel",
    "ScalePreprocess",
    "Upsampler",
    "__version__",
    "create_model",
    "evaluate",
    "from_pretrained",
    "fuse",
    "get_pretrained_cfg",
    "imresize",
    "is_model",
    "layers",
    "list_models",
    "list_pretrained",
    "metrics",
    "modcrop",
    "models",
    "register_model",
    "upscale",
    "upscale_folder",
    "upscale_video",
]
