"""Residual block without normalisation (EDSR's body block)."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_block


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """A 'same'-padded convolution, the only convolution the EDSR family uses."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd so that padding keeps the size, got {kernel_size}")
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


@register_block("resblock")
class ResBlock(nn.Module):
    """``x + res_scale * conv(relu(conv(x)))``, with no batch normalisation.

    Args:
        n_feats: Number of channels in and out.
        kernel_size: Size of both convolutions (3 in the body, 5 in MDSR's
            pre-processing blocks).
        res_scale: Constant the residual branch is multiplied by (0.1 for the
            large EDSR, 1.0 otherwise).
    """

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the block on a NCHW tensor."""
        res = self.body(x)
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return res + x

    @torch.no_grad()
    def fuse(self) -> ResBlock:
        """Fold ``res_scale`` into the second convolution (in place); returns ``self``."""
        if self.res_scale != 1.0:
            conv = self.body[2]
            conv.weight.mul_(self.res_scale)
            if conv.bias is not None:
                conv.bias.mul_(self.res_scale)
            self.res_scale = 1.0
        return self

    @torch.no_grad()
    def zero_residual_(self) -> ResBlock:
        """Zero the residual branch's last convolution, so that the block is the identity (in place)."""
        conv = self.body[2]
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()
        return self

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale:g}"
