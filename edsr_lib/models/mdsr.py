"""MDSR: one multi-scale network for x2, x3 and x4 (Lim et al., 2017)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..layers import DIV2K_RGB_MEAN, MeanShift, create_block, default_conv
from ..registry import PretrainedCfg, build_model, register_model
from .base import SRModel


def scale_key(scale: int) -> str:
    """The key of a scale's branch in MDSR's module dicts ("x2" for scale 2)."""
    return f"x{int(scale)}"


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
        self._set_config(
            scales=list(scales),
            n_resblocks=n_resblocks,
            n_feats=n_feats,
            res_scale=float(res_scale),
            rgb_range=float(rgb_range),
            rgb_mean=[float(m) for m in rgb_mean],
            n_colors=n_colors,
            kernel_size=kernel_size,
            preprocess_kernel_size=preprocess_kernel_size,
            block=block,
            preprocess=preprocess,
            upsampler=upsampler,
        )

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


#: Pretrained weights per ``arch.tag`` (the first tag of an architecture is its default).
default_cfgs: dict[str, PretrainedCfg] = {
    "mdsr_baseline.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/mdsr_baseline.t291",
        filename="model.safetensors",
        sha256="675ad05b0593a057acbfa43f3a6928f5c66fd604542749149120e21f9b1b7495",
        license="mit",
        training_data=(
            "T91 + BSD200 (291 images); at x2, T91/t20.png (78x78) is smaller than a 96x96 HR patch and was left out; "
            "at x3, the 17 T91 images smaller than a 144x144 HR patch were left out; at x4, the 51 T91 images smaller "
            "than a 192x192 HR patch were left out"
        ),
        training_command=(
            "edsr-lib train --model mdsr_baseline --init-from edsr_baseline_x2 edsr_baseline_x3 edsr_baseline_x4 "
            "--train-dir /work/shared/datasets/T91/HR /work/shared/datasets/BSD200/HR --val-dir "
            "/work/shared/datasets/Set5 --output-dir runs/mdsr_baseline_r1 --resume --batch-size 16 --steps 6000 --lr "
            "2e-4 --sched cosine --min-lr 1e-6 --warmup-steps 200 --warmup-lr 1e-5 --amp bf16 --channels-last "
            "--save-every 250 --val-every 500 --log-every 50 --threads 1 --no-progress ; edsr-lib train --model "
            "mdsr_baseline --init-from edsr_baseline_x2 edsr_baseline_x3 edsr_baseline_x4 --train-dir "
            "/work/shared/datasets/T91/HR /work/shared/datasets/BSD200/HR --val-dir /work/shared/datasets/Set5 "
            "--output-dir runs/mdsr_baseline_r1 --resume --batch-size 16 --steps 4500 --lr 2e-4 --sched cosine "
            "--min-lr 1e-6 --warmup-steps 200 --warmup-lr 1e-5 --amp bf16 --channels-last --save-every 250 --val-every "
            "500 --log-every 50 --threads 2 --no-progress"
        ),
        steps=4000,
        metrics={
            "Set5": {
                "x2": {"psnr": 37.713, "ssim": 0.9597},
                "x3": {"psnr": 33.975, "ssim": 0.9237},
                "x4": {"psnr": 31.528, "ssim": 0.885},
            },
            "Set5+": {
                "x2": {"psnr": 37.826, "ssim": 0.9601},
                "x3": {"psnr": 34.134, "ssim": 0.9254},
                "x4": {"psnr": 31.708, "ssim": 0.8884},
            },
            "Set14": {
                "x2": {"psnr": 33.102, "ssim": 0.9135},
                "x3": {"psnr": 29.831, "ssim": 0.833},
                "x4": {"psnr": 28.07, "ssim": 0.7695},
            },
            "Set14+": {
                "x2": {"psnr": 33.176, "ssim": 0.9144},
                "x3": {"psnr": 29.936, "ssim": 0.8351},
                "x4": {"psnr": 28.165, "ssim": 0.7723},
            },
            "B100": {
                "x2": {"psnr": 32.012, "ssim": 0.8976},
                "x3": {"psnr": 28.898, "ssim": 0.8009},
                "x4": {"psnr": 27.329, "ssim": 0.7284},
            },
            "B100+": {
                "x2": {"psnr": 32.072, "ssim": 0.8983},
                "x3": {"psnr": 28.955, "ssim": 0.8022},
                "x4": {"psnr": 27.379, "ssim": 0.7301},
            },
        },
        package_file="mdsr_baseline.t291/model.safetensors",
        description="mdsr_baseline trained by edsr-lib on T91 + BSD200, 4,000 steps (raw weights); Set5 x2: 37.71 dB",
    ),
    "mdsr.t291": PretrainedCfg(
        hf_hub_id="edsr-lib/mdsr.t291",
        filename="model.safetensors",
        sha256="a661d9162063146c6df42da32dc43f6853bb2e2d02672ecbe67154536c1b21c9",
        license="mit",
        training_data=(
            "T91 + BSD200 (291 images); at x2, T91/t20.png (78x78) is smaller than a 96x96 HR patch and was left out; "
            "at x3, the 17 T91 images smaller than a 144x144 HR patch were left out; at x4, the 51 T91 images smaller "
            "than a 192x192 HR patch were left out"
        ),
        training_command=(
            "edsr-lib train --model mdsr --init-from runs/mdsr_baseline_r1/best --train-dir "
            "/work/shared/datasets/T91/HR /work/shared/datasets/BSD200/HR --val-dir /work/shared/datasets/Set5 "
            "--output-dir runs/mdsr_r1 --resume --batch-size 16 --steps 1500 --lr 1e-4 --sched cosine --min-lr 1e-6 "
            "--warmup-steps 100 --warmup-lr 1e-5 --amp bf16 --channels-last --save-every 50 --val-every 250 "
            "--log-every 25 --threads 1 --no-progress ; edsr-lib train --model mdsr --init-from "
            "runs/mdsr_baseline_r1/best --train-dir /work/shared/datasets/T91/HR /work/shared/datasets/BSD200/HR "
            "--val-dir /work/shared/datasets/Set5 --output-dir runs/mdsr_r1 --resume --batch-size 16 --steps 1500 --lr "
            "1e-4 --sched cosine --min-lr 1e-6 --warmup-steps 100 --warmup-lr 1e-5 --amp bf16 --channels-last "
            "--save-every 50 --val-every 250 --log-every 25 --threads 2 --no-progress"
        ),
        steps=1000,
        metrics={
            "Set5": {
                "x2": {"psnr": 37.689, "ssim": 0.9596},
                "x3": {"psnr": 33.984, "ssim": 0.924},
                "x4": {"psnr": 31.572, "ssim": 0.8859},
            },
            "Set5+": {
                "x2": {"psnr": 37.824, "ssim": 0.9601},
                "x3": {"psnr": 34.16, "ssim": 0.9256},
                "x4": {"psnr": 31.75, "ssim": 0.8892},
            },
            "Set14": {
                "x2": {"psnr": 33.09, "ssim": 0.9136},
                "x3": {"psnr": 29.852, "ssim": 0.8333},
                "x4": {"psnr": 28.089, "ssim": 0.7703},
            },
            "Set14+": {
                "x2": {"psnr": 33.179, "ssim": 0.9145},
                "x3": {"psnr": 29.953, "ssim": 0.8354},
                "x4": {"psnr": 28.188, "ssim": 0.773},
            },
            "B100": {
                "x2": {"psnr": 32.017, "ssim": 0.8978},
                "x3": {"psnr": 28.91, "ssim": 0.8014},
                "x4": {"psnr": 27.344, "ssim": 0.7291},
            },
            "B100+": {"x3": {"psnr": 28.968, "ssim": 0.8026}, "x4": {"psnr": 27.396, "ssim": 0.7308}},
        },
        package_file="mdsr.t291/model.safetensors",
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
