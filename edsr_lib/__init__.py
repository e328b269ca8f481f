"""edsr-lib: EDSR and MDSR super-resolution networks (Lim et al., CVPR 2017 workshops).

Most users need only :func:`create_model` and :func:`list_models`::

    import edsr_lib
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)

The names below are imported on first use (PEP 562), so that ``import edsr_lib`` and
``edsr-lib --help`` do not pay for torch until something needs it. The models are in
timm's registry once :mod:`edsr_lib.timm_bridge` is imported (at once if timm already is).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from . import layers, metrics, models
    from .evaluation import evaluate
    from .hub import from_pretrained
    from .inference import Upscaler, upscale
    from .jobs import upscale_folder
    from .layers import MeanShift, ResBlock, ScalePreprocess, Upsampler
    from .models import EDSR, MDSR, SRModel
    from .ops import imresize, modcrop
    from .options import UpscaleOptions
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

#: Public submodules (``timm_bridge`` imports timm and registers the models in it: imported on first use).
_SUBMODULES = ("layers", "metrics", "models", "timm_bridge")
#: Public name -> module that defines it.
_LAZY: dict[str, str] = {
    "evaluate": ".evaluation",
    "from_pretrained": ".hub",
    "upscale": ".inference",
    "Upscaler": ".inference",
    "UpscaleOptions": ".options",
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


def fuse(model: SRModel) -> SRModel:
    """Fold ``res_scale`` and the mean shifts into convolutions for inference (in place).

    Same as ``model.fuse()``; outputs equal the unfused model's to float rounding.
    """
    return model.fuse()


# timm's way to add models is to import the module that registers them (as its own model files are):
# edsr_lib.timm_bridge. Importing timm costs ~3 s, so `import edsr_lib` does not; if timm is already
# imported, registering costs nothing more, and the models are in timm at once.
if "timm" in sys.modules and hasattr(sys.modules["timm"], "create_model"):
    importlib.import_module(".timm_bridge", __name__)

__all__ = [
    "EDSR",
    "MDSR",
    "MeanShift",
    "PretrainedCfg",
    "ResBlock",
    "SRModel",
    "ScalePreprocess",
    "Upsampler",
    "UpscaleOptions",
    "Upscaler",
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
