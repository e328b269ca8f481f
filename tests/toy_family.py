"""A third model family, not built on EDSR's trunk: all that a new family needs is this one file.

Its class subclasses :class:`~edsr_lib.SRModel` (which registers the architecture and records
the config), says which convolutions a forward pass runs (``_conv_path``: tiling and the memory
estimate), and its entrypoint goes through the one builder. Nothing else in the library is
edited: the sweep (``test_sweep.py``) runs it with every registered model, and what needs
EDSR's trunk (the converter's layouts) refuses it in one line.

Registering it is undone by :func:`unregistered`, so that the library's own listings (the docs
table, the installed package) stay the library's in the rest of the test session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from edsr_lib import _registry
from edsr_lib._builder import build_model
from edsr_lib.layers import ResBlock, default_conv
from edsr_lib.models.base import SRModel, scale_key
from edsr_lib.registry import register_model

ARCHITECTURE = "toy"
VARIANT = "toy_x2x3"


@contextlib.contextmanager
def _registry_state() -> Iterator[tuple[dict[str, Any], ...]]:
    """The registry's tables as they are now; restored on exit, listeners silenced meanwhile."""
    tables = (_registry.model_entrypoints, _registry.pretrained_cfgs, _registry._architectures)
    saved = tuple(dict(t) for t in tables)
    listeners = list(_registry._listeners)
    _registry._listeners.clear()  # timm's registry has no way back: it is not told
    try:
        yield tables
    finally:
        for table, before in zip(tables, saved, strict=True):
            table.clear()
            table.update(before)
        _registry._listeners[:] = listeners


with _registry_state() as _tables:

    class ToySR(SRModel):
        """Conv stem, one ResBlock, one sub-pixel convolution per scale; no mean shift, no head or tail."""

        architecture = ARCHITECTURE
        upsampler_module = "up"
        scale_branch_modules = ("up",)

        def __init__(self, scales: Sequence[int] = (2, 3), n_feats: int = 8, n_colors: int = 3) -> None:
            super().__init__()
            self.scales = tuple(int(s) for s in scales)
            self.n_colors = n_colors
            self.stem = default_conv(n_colors, n_feats, 3)
            self.block = ResBlock(n_feats, res_scale=0.5)
            self.up = nn.ModuleDict(
                {
                    scale_key(s): nn.Sequential(default_conv(n_feats, n_colors * s * s, 3), nn.PixelShuffle(s))
                    for s in scales
                }
            )

        def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
            key = scale_key(self.resolve_scale(scale))
            self.check_input(x)
            return self.up[key](self.block(torch.relu(self.stem(x))))

        def _conv_path(self, scale: int) -> Iterable[tuple[nn.Conv2d, float]]:
            yield self.stem, 1.0
            yield from ((m, 1.0) for m in self.block.modules() if isinstance(m, nn.Conv2d))
            yield self.up[scale_key(scale)][0], 1.0

    default_cfgs: dict[str, Any] = {}

    @register_model
    def toy_x2x3(pretrained: bool = False, **kwargs: Any) -> ToySR:
        """The toy family at x2 and x3."""
        return build_model(ToySR, VARIANT, pretrained=pretrained, **kwargs)

    _with_toy = tuple(dict(t) for t in _tables)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """The toy family registered (as at import) for the duration of the block."""
    with _registry_state() as tables:
        for table, with_toy in zip(tables, _with_toy, strict=True):
            table.update({k: v for k, v in with_toy.items() if k in (VARIANT, ARCHITECTURE)})
        yield
