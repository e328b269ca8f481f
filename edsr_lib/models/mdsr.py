"""MDSR: one multi-scale network for x2, x3 and x4 (Lim et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .._builder import build_model
from .._pretrained import PretrainedCfg
from .._registry import register_model
from ..layers import DIV2K_RGB_MEAN, create_block
from .base import TrunkModel, scale_key


class MDSR(TrunkModel):
    """Multi-scale EDSR.

    ``head`` conv -> ``pre_process[x<s>]`` (two 5x5 ResBlocks per scale) -> shared ``body``
    (``n_resblocks`` ResBlocks + conv, global residual) -> ``upsample[x<s>]`` -> shared
    ``tail`` conv. Branches are keyed by scale value, so a forward pass at scale ``s``
    runs (and trains) only that scale's branches (the trunk of
    :class:`~edsr_lib.models.base.TrunkModel`).

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
        self.scales = scales
        trunk = (n_resblocks, n_feats, res_scale, rgb_range, rgb_mean, n_colors, kernel_size, block)
        self._build_trunk(
            *trunk,
            preprocess=lambda: nn.ModuleDict(
                {
                    scale_key(s): create_block(preprocess, n_feats=n_feats, kernel_size=preprocess_kernel_size)
                    for s in scales
                }
            ),
            upsampler=lambda: nn.ModuleDict(
                {
                    scale_key(s): create_block(upsampler, scale=s, n_feats=n_feats, kernel_size=kernel_size)
                    for s in scales
                }
            ),
        )

    def _branches(self, scale: int) -> tuple[nn.Module | None, nn.Module]:
        key = scale_key(scale)
        return self.pre_process[key], self.upsample[key]


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
