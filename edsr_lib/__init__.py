"""edsr-lib: EDSR and MDSR super-resolution networks (Lim et al., CVPR 2017 workshops).

Most users need only :func:`create_model` and :func:`list_models`::

    import edsr_lib
    model = edsr_lib.create_model("edsr_baseline_x2", pretrained=True)
"""

from . import layers, metrics, models
from .evaluate import evaluate
from .hub import from_pretrained
from .inference import upscale
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

__version__ = "0.1.0"


def fuse(model: SRModel) -> SRModel:
    """Fold ``res_scale`` and the mean shifts into convolutions for inference (in place).

    Same as ``model.fuse()``; outputs equal the unfused model's to float rounding.
    """
    return model.fuse()


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
]
