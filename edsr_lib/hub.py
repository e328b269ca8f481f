"""Weights I/O: the library's own format, pretrained weights, model folders and model cards.

A model folder holds ``model.safetensors`` (the state dict) and ``config.json`` (the
architecture name and the constructor arguments that rebuild the model), the layout of
huggingface_hub's ``ModelHubMixin``; an optional ``README.md`` is its model card.
Everything that touches the Hub, its cache or offline mode goes through huggingface_hub,
and every tensor file through safetensors.

The names are defined in three private modules, each with one job: ``edsr_lib._hub`` (the
file format and where pretrained weights come from; the models import it to save
themselves, so it knows no model), ``edsr_lib._card`` (the model card) and
``edsr_lib._loading`` (rebuilding a model from a folder, a Hub repository or a name, which
needs the model classes). This module is their public home.
"""

from __future__ import annotations

from ._card import PAPER_ARXIV_ID, PAPER_URL, model_card, model_card_data  # noqa: F401  (the paper constants too)
from ._hub import (
    CONFIG_NAME,
    LIBRARY_NAME,  # noqa: F401  (constants importable from here, as before, though not in __all__)
    MODEL_CARD_NAME,  # noqa: F401
    WEIGHTS_NAME,
    InvalidWeightsError,
    StateDictDiff,
    WeightsNotFoundError,
    atomic_write,
    diff_state_dicts,
    load_pretrained,
    push_to_hub,
    save_pretrained,
    sha256sum,
)
from ._loading import WeightsSource, from_pretrained, load_config, resolve_weights
from .convert import pretrained  # noqa: F401  (hands the builder the converter of third-party pretrained files)

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
