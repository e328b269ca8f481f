"""Weights I/O: the library's own format, and where pretrained weights come from.

A model folder holds ``model.safetensors`` (the state dict) and ``config.json`` (the
architecture name and the constructor arguments that rebuild the model), the layout of
huggingface_hub's ``ModelHubMixin``; an optional ``README.md`` is its model card.
Everything that touches the Hub, its cache or offline mode goes through huggingface_hub,
and every tensor file through safetensors.

The functions are defined in ``edsr_lib._hub``, which the models import to save themselves;
this module imports the library's models first, so that :func:`from_pretrained` knows every
architecture a ``config.json`` can name.
"""

from __future__ import annotations

from . import models  # noqa: F401  (each model family adds its architecture as it is imported)
from ._hub import (
    CONFIG_NAME,
    LIBRARY_NAME,  # noqa: F401  (constants importable from here, as before, though not in __all__)
    MODEL_CARD_NAME,  # noqa: F401
    PAPER_ARXIV_ID,  # noqa: F401
    PAPER_URL,  # noqa: F401
    WEIGHTS_NAME,
    InvalidWeightsError,
    StateDictDiff,
    WeightsNotFoundError,
    WeightsSource,
    atomic_write,
    diff_state_dicts,
    from_pretrained,
    load_config,
    load_pretrained,
    model_card,
    model_card_data,
    push_to_hub,
    resolve_weights,
    save_pretrained,
    sha256sum,
)

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "InvalidWeightsError",
    "StateDictDiff",
    "WeightsNotFoundError",
    "WeightsSource",
    "atomic_write",
    "diff_state_dicts",
    "from_pretrained",
    "load_config",
    "load_pretrained",
    "model_card",
    "model_card_data",
    "push_to_hub",
    "resolve_weights",
    "save_pretrained",
    "sha256sum",
]

# the public home of the functions and exceptions in __all__: their reprs, tracebacks and the API
# reference name this module, as before (the str constants have no home to set)
for _name in __all__:
    if not isinstance(globals()[_name], str):
        globals()[_name].__module__ = __name__
del _name
