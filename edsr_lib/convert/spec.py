"""What detection read from a third-party state dict: :class:`ConvertedSpec`, which builds the library's model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models import SRModel, architectures
from .official import OfficialCheckpoint

__all__ = ["ConvertedSpec"]


@dataclass(frozen=True)
class ConvertedSpec:
    """What :func:`detect` read from a third-party state dict, and how it maps onto edsr-lib.

    Attributes:
        layout: The source layout, one of :data:`LAYOUTS`.
        architecture: ``"edsr"`` or ``"mdsr"``.
        kwargs: Keyword arguments of the library model that holds the weights
            (``scale`` or ``scales``, ``n_resblocks``, ``n_feats``, ``res_scale``,
            ``rgb_range``, ``rgb_mean``, ``n_colors``, ...).
        key_map: Source key -> library state-dict key, for every parameter.
        absorbed: Source keys that are not parameters of the library's model: fixed mean
            shifts, checked and carried into ``rgb_mean``/``rgb_range`` (or, for
            super-image, unused by the source model itself).
        notes: What was assumed, carried over or recognised, in words.
        official: The official checkpoint the file was recognised as (set by :func:`convert`).
        source: The file it was read from (set by :func:`convert`).
        assumed: The settings that neither the tensors nor the caller fixed, with the
            values assumed for them (``{"rgb_range": 255.0, "res_scale": 1.0}``).
        dtype: The least precise floating dtype among the source tensors (``"float16"``).
    """

    layout: str
    architecture: str
    kwargs: dict[str, Any]
    key_map: dict[str, str]
    absorbed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    official: OfficialCheckpoint | None = None
    source: str | None = None
    assumed: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"

    @property
    def scales(self) -> tuple[int, ...]:
        """The scales the model serves."""
        return tuple(self.kwargs["scales"]) if "scales" in self.kwargs else (int(self.kwargs["scale"]),)

    def describe(self) -> str:
        """One line: architecture, scales and sizes, e.g. ``"EDSR x2: 16 blocks, 64 features, res_scale 1"``."""
        scales = ", ".join(f"x{s}" for s in self.scales)
        k = self.kwargs
        return (
            f"{self.architecture.upper()} {scales}: {k['n_resblocks']} blocks, {k['n_feats']} features, "
            f"res_scale {k['res_scale']:g}"
        )

    def load(self, state_dict: Mapping[str, torch.Tensor]) -> SRModel:
        """Build the library model and load the source tensors into it (eval mode).

        The model's ``conversion`` attribute is this spec.

        Args:
            state_dict: The source state dict this spec was detected from.
        """
        model = architectures()[self.architecture](**self.kwargs)
        model.load_state_dict({lib: state_dict[src] for src, lib in self.key_map.items()}, strict=True)
        model.variant = self.official.variant if self.official else None
        model.pretrained_cfg = None
        model.conversion = self
        return model.eval()
