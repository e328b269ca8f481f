"""What a backend makes from a model (a fused copy, a compiled runtime), kept per model until its weights change.

A model's weights can change in place (an optimiser step, ``load_state_dict``): every such
update bumps a tensor's version counter, so the data pointers and versions of its tensors
say whether something kept for the model is still its function (:func:`weights_state`;
the weights' digest, :func:`weights_sha256`, for tensors that keep no version). :func:`kept`
is the one place that rule lives.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import nn

from .._hub import check_finite_weights
from ..models import SRModel

__all__ = ["kept", "weights_sha256", "weights_state"]

T = TypeVar("T")

_kept: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, tuple[tuple, Any]]] = weakref.WeakKeyDictionary()


def weights_sha256(model: SRModel) -> str:
    """Hex sha256 of the model's architecture and weights: every tensor's name, dtype, shape and bytes.

    Two models with the same digest compute the same function, whichever file they came
    from; a weight changed in memory changes it.
    """
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def weights_state(model: nn.Module) -> tuple:
    """What changes when the model's weights change, to know when something kept for it is stale.

    The data pointer and version of every parameter and buffer (any in-place update bumps
    a version); for tensors made under :func:`torch.inference_mode`, which keep no version
    counter and can still be changed in place under inference mode, their contents
    (:func:`weights_sha256`).
    """
    tensors = (*model.parameters(), *model.buffers())
    if any(t.is_inference() for t in tensors):
        return (weights_sha256(model),)
    return tuple((t.data_ptr(), t._version) for t in tensors)


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
