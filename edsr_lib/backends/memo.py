"""What a backend makes from a model (a fused copy, a compiled runtime), kept per model until its weights change.

A model's weights can change in place (an optimiser step, ``load_state_dict``): every such
update bumps a tensor's version counter, so the data pointers and versions of its tensors
say whether something kept for the model is still its function. :func:`kept` is the one
place that rule lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from torch import nn

from .._hub import check_finite_weights

__all__ = ["kept", "weights_state"]

T = TypeVar("T")

_kept: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, tuple[tuple, Any]]] = weakref.WeakKeyDictionary()


def weights_state(model: nn.Module) -> tuple[tuple[int, int], ...]:
    """The data pointer and version of every parameter and buffer: it changes with any in-place update."""
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


def kept(model: nn.Module, key: Hashable, make: Callable[[], T]) -> T:
    """``make()`` for ``model`` and ``key``, made once and kept while the model's weights stay the same.

    The weights are checked to be finite (:func:`edsr_lib.hub.check_finite_weights`) each
    time something is made from them.
    """
    state = weights_state(model)
    cached = _kept.setdefault(model, {}).get(key)
    if cached is not None and cached[0] == state:
        return cached[1]
    check_finite_weights(model)
    made = make()
    _kept[model][key] = (state, made)
    return made
