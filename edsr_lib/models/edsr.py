"""EDSR: enhanced deep residual network, one model per scale (Lim et al., 2017)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .._builder import build_model
from .._pretrained import PretrainedCfg
from .._registry import register_model
from ..layers import DIV2K_RGB_MEAN, MeanShift, create_block, default_conv
from .base import SRModel


class EDSR(SRModel):
    """Single-scale EDSR.

    ``head`` conv -> ``body`` (``n_resblocks`` ResBlocks + conv, global residual) ->
    ``upsampler`` (sub-pixel) -> ``tail`` conv, between two fixed mean shifts.

    Args:
        scale: Upscaling factor (3 or a power of two).
        n_resblocks: Number of residual blocks B (16 baseline, 32 large).
        n_feats: Number of feature channels F (64 baseline, 256 large).
        res_scale: Residual scaling inside each block (1.0 baseline, 0.1 large).
        rgb_range: Pixel range the network works in (255 for the reference weights).
        rgb_mean: Per-channel dataset mean in [0, 1] units.
        n_colors: Number of image channels.
        kernel_size: Kernel size of all convolutions.
        block: Registered name of the body block.
        upsampler: Registered name of the upsampling block.
    """

    architecture = "edsr"
    upsampler_module = "upsampler"

    def __init__(
        self,
        scale: int = 2,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        n_colors: int = 3,
        kernel_size: int = 3,
        block: str = "resblock",
        upsampler: str = "upsampler",
    ) -> None:
        super().__init__()
        if len(rgb_mean) != n_colors:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {n_colors} colour channels")
        self.scale = int(scale)
        self.scales = (self.scale,)
        self.n_colors = n_colors
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.head = default_conv(n_colors, n_feats, kernel_size)
        self.body = nn.Sequential(
            *[
                create_block(block, n_feats=n_feats, kernel_size=kernel_size, res_scale=res_scale)
                for _ in range(n_resblocks)
            ],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.upsampler = create_block(upsampler, scale=self.scale, n_feats=n_feats, kernel_size=kernel_size)
        self.tail = default_conv(n_feats, n_colors, kernel_size)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """Upscale ``x`` (float NCHW in [0, 1]) by this model's scale.

        Args:
            x: Input batch.
            scale: Optional; if given it must equal :attr:`scale`.
        """
        self.resolve_scale(scale)
        self.check_input(x)
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(self.upsampler(x)))

    def _conv_path(self, scale: int) -> Iterable[tuple[nn.Conv2d, float]]:
        yield self.head, 1.0
        yield from ((m, 1.0) for m in self.body.modules() if isinstance(m, nn.Conv2d))
        yield from self.upsampler.conv_path()
        yield self.tail, 1.0 / scale


def _create_edsr(variant: str, pretrained: bool = False, **kwargs: Any) -> EDSR:
    return build_model(EDSR, variant, pretrained=pretrained, **kwargs)


#: Pretrained weights per ``arch.tag`` (the first tag of an architecture is its default). The Hub id
#: (``"edsr-lib/" + arch.tag``) and the shipped file are derived from the name; how the weights were
#: trained and what they score is data beside them, ``edsr_lib/weights/<arch.tag>/pretrained.json``.
default_cfgs: dict[str, PretrainedCfg] = {
    "edsr_baseline_x2.t528": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="c2bb6edeff7882856d98e78069e7c019c44ed05feb29a066b7165244c62e2cd2",
        license="mit",
        description=(
            "edsr_baseline_x2 trained by edsr-lib on T91 + BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial "
            "+ DIV2K_train_partial, 1,250 steps (EMA weights); Set5 x2: 37.69 dB"
        ),
    ),
    "edsr_baseline_x3.t528": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="b2aea7d5f4c273dfb2c191965892ab3798870e9f812d29a129f01e67bbfd5835",
        license="mit",
        description=(
            "edsr_baseline_x3 trained by edsr-lib on T91 + BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial "
            "+ DIV2K_train_partial, 1,250 steps (EMA weights); Set5 x3: 33.94 dB"
        ),
    ),
    "edsr_baseline_x4.t528": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="27ce8212eb7af244be950b6e8f52762d3ee924b0a3aa609002033c8da84f776a",
        license="mit",
        description=(
            "edsr_baseline_x4 trained by edsr-lib on T91 + BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial "
            "+ DIV2K_train_partial, 1,750 steps (raw weights); Set5 x4: 31.51 dB"
        ),
    ),
    "edsr_baseline_x2.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="5a7eacbf7a392909122d24bcbf14e07d8e6afcccff10e79750641cf16913fc88",
        license="mit",
        description=(
            "edsr_baseline_x2 trained by edsr-lib on T91 + BSD200, 4,000 + 12,000 steps (EMA weights); "
            "Set5 x2: 37.66 dB"
        ),
    ),
    "edsr_baseline_x4.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="89a570ecf31ae6299abef310b028833cd8d62424a1cadfb24bf9e7afa678fe0a",
        license="mit",
        description=(
            "edsr_baseline_x4 fine-tuned by edsr-lib from EDSR-baseline x2 (edsr_baseline_x2.t291) on T91 + BSD200, "
            "2,000 steps (raw weights); Set5 x4: 31.43 dB"
        ),
    ),
    "edsr_baseline_x3.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="b61694d81b9fca845b700e58697584a7caebf6380889cdc0fb989c8584886890",
        license="mit",
        description=(
            "edsr_baseline_x3 fine-tuned by edsr-lib from EDSR-baseline x2 (edsr_baseline_x2.t291) on T91 + BSD200, "
            "1,500 steps (raw weights); Set5 x3: 33.90 dB"
        ),
    ),
}


@register_model
def edsr_baseline_x2(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR-baseline x2: 16 blocks, 64 features, 1.37 M parameters."""
    return _create_edsr("edsr_baseline_x2", pretrained, **{"scale": 2, "n_resblocks": 16, "n_feats": 64, **kwargs})


@register_model
def edsr_baseline_x3(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR-baseline x3: 16 blocks, 64 features, 1.55 M parameters."""
    return _create_edsr("edsr_baseline_x3", pretrained, **{"scale": 3, "n_resblocks": 16, "n_feats": 64, **kwargs})


@register_model
def edsr_baseline_x4(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR-baseline x4: 16 blocks, 64 features, 1.52 M parameters."""
    return _create_edsr("edsr_baseline_x4", pretrained, **{"scale": 4, "n_resblocks": 16, "n_feats": 64, **kwargs})


@register_model
def edsr_x2(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR x2: 32 blocks, 256 features, residual scaling 0.1, 40.7 M parameters."""
    return _create_edsr(
        "edsr_x2", pretrained, **{"scale": 2, "n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, **kwargs}
    )


@register_model
def edsr_x3(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR x3: 32 blocks, 256 features, residual scaling 0.1, 43.7 M parameters."""
    return _create_edsr(
        "edsr_x3", pretrained, **{"scale": 3, "n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, **kwargs}
    )


@register_model
def edsr_x4(pretrained: bool = False, **kwargs: Any) -> EDSR:
    """EDSR x4: 32 blocks, 256 features, residual scaling 0.1, 43.1 M parameters."""
    return _create_edsr(
        "edsr_x4", pretrained, **{"scale": 4, "n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, **kwargs}
    )
