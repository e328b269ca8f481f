"""MDSR: one multi-scale network for x2, x3 and x4 (Lim et al., 2017)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .._builder import build_model
from .._pretrained import PretrainedCfg
from .._registry import register_model
from ..layers import DIV2K_RGB_MEAN, MeanShift, create_block, default_conv
from .base import SRModel, scale_key


class MDSR(SRModel):
    """Multi-scale EDSR.

    ``head`` conv -> ``pre_process[x<s>]`` (two 5x5 ResBlocks per scale) -> shared ``body``
    (``n_resblocks`` ResBlocks + conv, global residual) -> ``upsample[x<s>]`` -> shared
    ``tail`` conv. Branches are keyed by scale value, so a forward pass at scale ``s``
    runs (and trains) only that scale's branches.

    Args:
        scales: The scales the model serves.
        n_resblocks: Number of shared residual blocks (16 baseline, 80 large).
        n_feats: Number of feature channels.
        res_scale: Residual scaling inside the body blocks.
        rgb_range: Pixel range the network works in (255 for the reference weights).
        rgb_mean: Per-channel dataset mean in [0, 1] units.
        n_colors: Number of image channels.
        kernel_size: Kernel size of head, body, upsampler and tail convolutions.
        preprocess_kernel_size: Kernel size of the scale-specific blocks (5 in the paper).
        block: Registered name of the body block.
        preprocess: Registered name of the scale-specific pre-processing block.
        upsampler: Registered name of the upsampling block.
    """

    architecture = "mdsr"
    upsampler_module = "upsample"
    scale_branch_modules = ("pre_process", "upsample")

    def __init__(
        self,
        scales: Sequence[int] = (2, 3, 4),
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        n_colors: int = 3,
        kernel_size: int = 3,
        preprocess_kernel_size: int = 5,
        block: str = "resblock",
        preprocess: str = "scale_preprocess",
        upsampler: str = "upsampler",
    ) -> None:
        super().__init__()
        scales = tuple(int(s) for s in scales)
        if not scales or len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct and non-empty, got {scales}")
        if len(rgb_mean) != n_colors:
            raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {n_colors} colour channels")
        self.scales = scales
        self.n_colors = n_colors
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.head = default_conv(n_colors, n_feats, kernel_size)
        self.pre_process = nn.ModuleDict(
            {
                scale_key(s): create_block(preprocess, n_feats=n_feats, kernel_size=preprocess_kernel_size)
                for s in scales
            }
        )
        self.body = nn.Sequential(
            *[
                create_block(block, n_feats=n_feats, kernel_size=kernel_size, res_scale=res_scale)
                for _ in range(n_resblocks)
            ],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.upsample = nn.ModuleDict(
            {scale_key(s): create_block(upsampler, scale=s, n_feats=n_feats, kernel_size=kernel_size) for s in scales}
        )
        self.tail = default_conv(n_feats, n_colors, kernel_size)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """Upscale ``x`` (float NCHW in [0, 1]) by ``scale``, running only that scale's branches.

        Raises:
            ValueError: If ``scale`` is not one of :attr:`scales` (or missing when there
                are several).
        """
        key = scale_key(self.resolve_scale(scale))
        self.check_input(x)
        x = self.pre_process[key](self.head(self.sub_mean(x)))
        x = self.body(x) + x
        return self.add_mean(self.tail(self.upsample[key](x)))

    def _conv_path(self, scale: int) -> Iterable[tuple[nn.Conv2d, float]]:
        key = scale_key(scale)
        yield self.head, 1.0
        for part in (self.pre_process[key], self.body):
            yield from ((m, 1.0) for m in part.modules() if isinstance(m, nn.Conv2d))
        yield from self.upsample[key].conv_path()
        yield self.tail, 1.0 / scale


def _create_mdsr(variant: str, pretrained: bool = False, **kwargs: Any) -> MDSR:
    return build_model(MDSR, variant, pretrained=pretrained, **kwargs)


#: Pretrained weights per ``arch.tag`` (the first tag of an architecture is its default); provenance
#: and scores are in ``edsr_lib/weights/<arch.tag>/pretrained.json`` (see ``edsr_lib.models.edsr``).
default_cfgs: dict[str, PretrainedCfg] = {
    "mdsr_baseline.t528": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="01b4ccb5a0051a7d829cb4a147b21b88a83c37fb8de1d9e076efe976d69d3c89",
        license="mit",
        description=(
            "mdsr_baseline trained by edsr-lib on T91 + BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial + "
            "DIV2K_train_partial, 2,000 steps (EMA weights); Set5 x2: 37.73 dB"
        ),
    ),
    "mdsr_baseline.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="675ad05b0593a057acbfa43f3a6928f5c66fd604542749149120e21f9b1b7495",
        license="mit",
        description="mdsr_baseline trained by edsr-lib on T91 + BSD200, 4,000 steps (raw weights); Set5 x2: 37.71 dB",
    ),
    "mdsr.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="a661d9162063146c6df42da32dc43f6853bb2e2d02672ecbe67154536c1b21c9",
        license="mit",
        description="mdsr trained by edsr-lib on T91 + BSD200, 1,000 steps (EMA weights); Set5 x2: 37.69 dB",
    ),
}


@register_model
def mdsr_baseline(pretrained: bool = False, **kwargs: Any) -> MDSR:
    """MDSR-baseline: x2, x3 and x4 in one model; 16 shared blocks, 64 features, 3.23 M parameters."""
    return _create_mdsr(
        "mdsr_baseline", pretrained, **{"scales": (2, 3, 4), "n_resblocks": 16, "n_feats": 64, **kwargs}
    )


@register_model
def mdsr(pretrained: bool = False, **kwargs: Any) -> MDSR:
    """MDSR: x2, x3 and x4 in one model; 80 shared blocks, 64 features, 7.95 M parameters."""
    return _create_mdsr("mdsr", pretrained, **{"scales": (2, 3, 4), "n_resblocks": 80, "n_feats": 64, **kwargs})
