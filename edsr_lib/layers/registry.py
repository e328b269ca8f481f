"""A registry of building blocks, so that a model config can name the blocks it is made of."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_BLOCKS: dict[str, Callable[..., nn.Module]] = {}


def register_block(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a block class (or factory) under ``name``.

    Example:
        >>> from torch import nn
        >>> @register_block("my_resblock")
        ... class MyBlock(nn.Module):
        ...     def __init__(self, n_feats: int) -> None:
        ...         super().__init__()
        >>> "my_resblock" in list_blocks()
        True
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BLOCKS and _BLOCKS[name] is not factory:
            raise ValueError(f"a block named {name!r} is already registered ({_BLOCKS[name]!r})")
        _BLOCKS[name] = factory
        return factory

    return decorator


def create_block(name: str, **kwargs: Any) -> nn.Module:
    """Build the block registered as ``name`` with the given keyword arguments."""
    try:
        factory = _BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; registered blocks: {', '.join(sorted(_BLOCKS))}") from None
    return factory(**kwargs)


def get_block(name: str) -> Callable[..., nn.Module]:
    """Return the class (or factory) registered as ``name``."""
    if name not in _BLOCKS:
        raise ValueError(f"unknown block {name!r}; registered blocks: {', '.join(sorted(_BLOCKS))}")
    return _BLOCKS[name]


def list_blocks() -> list[str]:
    """Names of all registered blocks, sorted."""
    return sorted(_BLOCKS)
