"""MDSR's scale-specific pre-processing module."""

from __future__ import annotations

from torch import nn

from .registry import register_block
from .resblock import ResBlock


@register_block("scale_preprocess")
class ScalePreprocess(nn.Sequential):
    """Two large-kernel ResBlocks that adapt features to one scale (MDSR).

    Args:
        n_feats: Number of feature channels.
        kernel_size: Kernel size of the blocks (5 in the paper).
        n_blocks: Number of ResBlocks (2 in the paper).
    """

    def __init__(self, n_feats: int, kernel_size: int = 5, n_blocks: int = 2) -> None:
        super().__init__(*[ResBlock(n_feats, kernel_size) for _ in range(n_blocks)])
