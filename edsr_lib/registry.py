"""The model registry: named variants, pretrained configs per ``arch.tag``, and timm interop.

In the style of timm: each variant is a small function decorated with
:func:`register_model`, and each model file describes its pretrained weights as data
in a module-level ``default_cfgs`` dict (``{"edsr_baseline_x2.t291": PretrainedCfg(...)}``).
Every variant is also registered in timm's registry through a thin entrypoint that
calls this library's own builder (lazily: when timm is imported; see :mod:`edsr_lib.timm_bridge`).

This module is the registry with the library's models in it: it imports the model files,
which fill the tables of ``edsr_lib._registry`` as they run, and re-exports those tables'
functions, :class:`PretrainedCfg` and :func:`build_model`.
"""

from __future__ import annotations

# the model files register their variants as they are imported; convert.pretrained hands the builder the
# converter of third-party pretrained files (the converter sits above the models)
from . import models  # noqa: F401
from ._builder import build_model
from ._pretrained import PretrainedCfg
from ._registry import (  # the tables too, for the code and the tests that read them from here
    complete_cfg,  # noqa: F401
    create_model,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    model_entrypoints,  # noqa: F401
    pretrained_cfgs,  # noqa: F401
    register_model,
    split_model_name_tag,
)
from .convert import pretrained  # noqa: F401

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

# the public home of the functions and exceptions in __all__: their reprs, tracebacks and the API
# reference name this module, as before (the str constants have no home to set)
for _name in __all__:
    if not isinstance(globals()[_name], str):
        globals()[_name].__module__ = __name__
del _name
