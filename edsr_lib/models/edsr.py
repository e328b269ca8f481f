"""EDSR: enhanced deep residual network, one model per scale (Lim et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .._builder import build_model
from .._pretrained import PretrainedCfg
from .._registry import register_model
from ..layers import DIV2K_RGB_MEAN, create_block
from .base import TrunkModel


class EDSR(TrunkModel):
    """Single-scale EDSR.

    ``head`` conv -> ``body`` (``n_resblocks`` ResBlocks + conv, global residual) ->
    ``upsampler`` (sub-pixel) -> ``tail`` conv, between two fixed mean shifts
    (the trunk of :class:`~edsr_lib.models.base.TrunkModel`).

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
        self.scale = int(scale)
        self.scales = (self.scale,)
        trunk = (n_resblocks, n_feats, res_scale, rgb_range, rgb_mean, n_colors, kernel_size, block)
        self._build_trunk(
            *trunk,
            upsampler=lambda: create_block(upsampler, scale=self.scale, n_feats=n_feats, kernel_size=kernel_size),
        )

    def _branches(self, scale: int) -> tuple[nn.Module | None, nn.Module]:
        return None, self.upsampler


def _create_edsr(variant: str, pretrained: bool = False, **kwargs: Any) -> EDSR:
    return build_model(EDSR, variant, pretrained=pretrained, **kwargs)


#: What super-image says of its EDSR weights (the model cards of ``eugenesiow/edsr-base`` and
#: ``eugenesiow/edsr``), and who made them.
_SUPER_IMAGE_DATA = "DIV2K train (800 images, augmented to 4,000 by five-crop), validated on DIV2K 801-900"
_SUPER_IMAGE_ATTRIBUTION = (
    "Trained and published by Eugene Siow with super-image (https://github.com/eugenesiow/super-image, "
    "Apache-2.0) on DIV2K (Agustsson & Timofte, NTIRE 2017); EDSR by Lim, Son, Kim, Nah and Lee (CVPR 2017 "
    "workshops; reference code https://github.com/sanghyun-son/EDSR-PyTorch)"
)
_SUPER_IMAGE_METRICS = (
    "the publisher's scores, from super-image's model cards and README leaderboard, measured with super-image's own "
    "evaluation code on its Hub copies of the sets (its BSD100 is B100), not with edsr-lib evaluate"
)


def _super_image(
    repo: str, revision: str, scale: int, sha256: str | None, size: int, scores: dict[str, tuple[float, float]]
) -> PretrainedCfg:
    """A super-image ``pytorch_model_<scale>x.pt`` of ``repo``, pinned to ``revision``, converted on load."""
    return PretrainedCfg(
        hf_hub_id=repo,
        filename=f"pytorch_model_{scale}x.pt",
        revision=revision,
        sha256=sha256,
        layout="super-image",
        download_size=size,
        license="apache-2.0",
        attribution=_SUPER_IMAGE_ATTRIBUTION,
        training_data=_SUPER_IMAGE_DATA,
        metrics={name: {f"x{scale}": {"psnr": psnr, "ssim": ssim}} for name, (psnr, ssim) in scores.items()},
        metrics_source=_SUPER_IMAGE_METRICS,
        description=(
            f"{repo} x{scale} by super-image, trained on DIV2K, converted from its pytorch_model_{scale}x.pt on "
            f"first use; Set5 x{scale}: {scores['Set5'][0]:.2f} dB (publisher's score)"
        ),
    )


#: The Hub commits pinned (each repository's head when read): a later push cannot change what loads.
_EDSR_BASE = "eugenesiow/edsr-base", "d622f68a86f11af7c1c6add1a8fa3790a1173d97"
_EDSR_LARGE = "eugenesiow/edsr", "8f214a52f8160f7024a2ae73e3122b14bc36b9e8"

#: Pretrained weights per ``arch.tag`` (the first tag of an architecture is its default; the ``real``
#: tags, for photos, are the ``t528`` weights fine-tuned with degradations: ``for_input="real"``). The Hub id
#: (``"edsr-lib/" + arch.tag``) and the shipped file are derived from the name; how the weights were
#: trained and what they score is data beside them, ``edsr_lib/weights/<arch.tag>/pretrained.json``.
#: The ``div2k`` tags are super-image's files on the Hub, named by commit and sha256 as the Hub's file
#: pages publish them (sizes as those pages round them); the Hub page of ``eugenesiow/edsr`` gives no
#: sha256 for its x3 and x4 files, which the pinned commit alone identifies.
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
    "edsr_baseline_x2.real": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="bbfcc589784cc0d5f0b2f150e3c31fbe7853ff2ca2073ef07e2442a337f9e6cc",
        license="mit",
        description=(
            "edsr_baseline_x2 fine-tuned for JPEG and noisy photos (degradations on the fly) by edsr-lib on T91 + "
            "BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial + DIV2K_train_partial, 300 steps (raw "
            "weights); Set5 x2: 36.03 dB"
        ),
        for_input="real",
    ),
    "edsr_baseline_x4.real": PretrainedCfg(
        hf_hub_id="edsr-lib/",
        sha256="e517ac6ff7c7ac1ba65bf3e12f78d3e8797e08e2db39a528e1eba003d74159c8",
        license="mit",
        description=(
            "edsr_baseline_x4 fine-tuned for JPEG and noisy photos (degradations on the fly) by edsr-lib on T91 + "
            "BSD200 + BSDS500_test + LIVE1 + McMaster + Flickr2K_partial + DIV2K_train_partial, 650 steps, 2 "
            "stages (EMA weights); Set5 x4: 30.27 dB"
        ),
        for_input="real",
    ),
    "edsr_baseline_x2.div2k": _super_image(
        *_EDSR_BASE,
        2,
        "b709bea0d3e3a7a1c84eb1eaa6e5e777f176edcfca00b3b5acde5320eb630211",
        5_510_000,
        {"Set5": (38.02, 0.9607), "Set14": (33.66, 0.9180), "B100": (33.77, 0.9254), "Urban100": (32.04, 0.9276)},
    ),
    "edsr_baseline_x3.div2k": _super_image(
        *_EDSR_BASE,
        3,
        "27a09b477d3b9531e2a0e6747a103a8c619c0daac9f4ee704828e335bdb034cd",
        6_250_000,
        {"Set5": (35.01, 0.9402), "Set14": (31.01, 0.8583), "B100": (29.63, 0.8190), "Urban100": (29.19, 0.8722)},
    ),
    "edsr_baseline_x4.div2k": _super_image(
        *_EDSR_BASE,
        4,
        "9302a679cf3e656a8aefd4ae7cfae4dd86ca60b2e1c50fbe9e06dde9767d32ad",
        6_100_000,
        {"Set5": (32.12, 0.8947), "Set14": (28.72, 0.7845), "B100": (28.50, 0.7644), "Urban100": (26.02, 0.7832)},
    ),
    "edsr_x2.div2k": _super_image(
        *_EDSR_LARGE,
        2,
        "1d2a734b033e4119598ab4308058d2d09f994ab9ce442c81888bd0d318e6abc9",
        163_000_000,
        {"Set5": (38.19, 0.9612), "Set14": (33.99, 0.9215), "B100": (33.89, 0.9266), "Urban100": (32.68, 0.9331)},
    ),
    "edsr_x3.div2k": _super_image(
        *_EDSR_LARGE,
        3,
        None,
        175_000_000,
        {"Set5": (35.31, 0.9421), "Set14": (31.18, 0.8620), "B100": (29.77, 0.8224), "Urban100": (29.75, 0.8825)},
    ),
    "edsr_x4.div2k": _super_image(
        *_EDSR_LARGE,
        4,
        None,
        172_000_000,
        {"Set5": (32.50, 0.8986), "Set14": (28.92, 0.7899), "B100": (28.62, 0.7689), "Urban100": (26.53, 0.7995)},
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
