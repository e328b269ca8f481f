"""On-the-fly degradations for training: each LR patch made from its HR crop by a seeded random chain.

A first-order chain in the spirit of Real-ESRGAN's (Wang et al., 2021, "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data"), in this order, each stage drawn
per sample:

1. **clean** (``clean_prob``): the sample skips the chain and its LR is the MATLAB-bicubic
   downscale of the crop, as in clean training, so the weights keep their clean-input skill;
2. **blur** (``blur_prob``): a Gaussian on the HR crop, isotropic or (``aniso_prob`` of the
   blurs) anisotropic with a random rotation; standard deviations ``scale * blur_sigma``
   HR pixels (uniform), kernel ``2 * ceil(3 sigma) + 1`` wide, reflected borders;
3. **downscale** by ``scale`` to the LR patch, with one of ``resize`` (method -> weight):
   ``"bicubic"`` (the library's MATLAB-exact :func:`~edsr_lib.ops.imresize`, antialiased),
   ``"bilinear"`` (antialiased, ``torch.nn.functional.interpolate``) or ``"area"`` (box average);
4. **noise** (``noise_prob``): Gaussian (standard deviation ``gaussian_sigma`` levels of 255,
   uniform) or, ``poisson_prob`` of the time, Poisson shot noise ``(Poisson(v) - v) * k`` for a
   pixel of ``v`` levels (standard deviation ``sqrt(v)``, Real-ESRGAN's) with ``k`` uniform in
   ``poisson_scale``; ``gray_noise_prob`` of the noisy samples get the same noise on every
   channel (for Poisson, drawn on the mean of the channels). Then rounded to uint8;
5. **JPEG** (``jpeg_prob``): a round trip at a quality drawn uniformly from ``jpeg_quality``
   (inclusive) through Pillow (:func:`~edsr_lib.ops.degrade.jpeg_roundtrip`).

Real-ESRGAN's random resize inside the chain, its second order and its sinc filters are left
out: the fine-tune targets compressed and noisy photos at a known scale, on 2 CPU cores.

Every random choice of sample ``i`` of step ``step`` on process ``rank`` comes from its own
``numpy.random.Generator`` seeded with ``[seed, 3, step, rank, i]``: the LR of a sample
depends only on its HR crop and those numbers, so a resumed run makes the same LR as an
uninterrupted one, and no state needs to be saved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..ops.degrade import jpeg_roundtrip
from ..ops.imresize import imresize

__all__ = ["RESIZE_METHODS", "DegradeChain"]

#: The downscaling methods of the chain.
RESIZE_METHODS = ("bicubic", "bilinear", "area")

#: The stream of the per-sample generators (the trainer's data sampler is 1, its scale draws 2).
_STREAM = 3


def _range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not low <= a <= b <= high:
        raise ValueError(f"{name} must be a range with {low} <= low <= high <= {high}, got {value!r}")
    return a, b


@dataclass
class DegradeChain:
    """The settings of the training chain (see the module's text for the order).

    The defaults are the chain ``edsr_baseline_x2.real`` was trained with, and the first of
    ``edsr_baseline_x4.real``'s two stages (its card gives the second's JPEG-heavier settings).

    Attributes:
        clean_prob: Probability that a sample is plain MATLAB bicubic, without the chain.
        blur_prob: Probability of a blur.
        aniso_prob: Fraction of the blurs that are anisotropic.
        blur_sigma: Range of the blur's standard deviation(s), in HR pixels per unit of scale.
        resize: Weights of the downscaling methods (``"bicubic"``, ``"bilinear"``, ``"area"``).
        noise_prob: Probability of noise.
        poisson_prob: Fraction of the noisy samples with Poisson rather than Gaussian noise.
        gray_noise_prob: Fraction of the noisy samples with the same noise on every channel.
        gaussian_sigma: Range of the Gaussian noise's standard deviation, in 0..255 levels.
        poisson_scale: Range of the factor on the Poisson noise.
        jpeg_prob: Probability of a JPEG round trip.
        jpeg_quality: Range of the JPEG quality (integers, both ends included).
    """

    clean_prob: float = 0.15
    blur_prob: float = 0.1
    aniso_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 0.5)
    resize: dict[str, float] = field(default_factory=lambda: {"bicubic": 0.8, "bilinear": 0.1, "area": 0.1})
    noise_prob: float = 0.4
    poisson_prob: float = 0.3
    gray_noise_prob: float = 0.4
    gaussian_sigma: tuple[float, float] = (1.0, 15.0)
    poisson_scale: tuple[float, float] = (0.05, 1.5)
    jpeg_prob: float = 0.85
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        probabilities = (
            "clean_prob",
            "blur_prob",
            "aniso_prob",
            "noise_prob",
            "poisson_prob",
            "gray_noise_prob",
            "jpeg_prob",
        )
        for name in probabilities:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
            setattr(self, name, float(value))
        self.blur_sigma = _range("blur_sigma", self.blur_sigma, 1e-3, 10.0)
        self.gaussian_sigma = _range("gaussian_sigma", self.gaussian_sigma, 0.0, 255.0)
        self.poisson_scale = _range("poisson_scale", self.poisson_scale, 0.0, 100.0)
        q = _range("jpeg_quality", self.jpeg_quality, 1, 95)
        if q != tuple(round(v) for v in q):
            raise ValueError(f"jpeg_quality must be two integers, got {self.jpeg_quality!r}")
        self.jpeg_quality = (int(q[0]), int(q[1]))
        if not isinstance(self.resize, dict) or not self.resize:
            raise ValueError(f"resize must map methods {RESIZE_METHODS} to weights, got {self.resize!r}")
        unknown = sorted(set(self.resize) - set(RESIZE_METHODS))
        if unknown:
            raise ValueError(f"unknown resize method(s) {unknown}; choose from {RESIZE_METHODS}")
        weights = [float(w) for w in self.resize.values()]
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"resize weights must be >= 0 and not all 0, got {self.resize!r}")
        self.resize = {k: float(v) for k, v in self.resize.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the settings."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradeChain:
        """Settings from :meth:`to_dict` output (missing keys take the defaults).

        Raises:
            ValueError: For a key that is not a setting, or a value out of range.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown degradation settings {unknown}; known: {sorted(names)}")
        return cls(**data)

    def describe(self, scales: Sequence[int]) -> str:
        """One line naming the chain's stages and ranges (the blur's in HR pixels at each of ``scales``), for cards."""
        q = self.jpeg_quality
        blur = ", ".join(f"x{s}: {s * self.blur_sigma[0]:g}-{s * self.blur_sigma[1]:g}" for s in scales)
        resize = ", ".join(f"{m} {w:g}" for m, w in self.resize.items())
        return (
            f"{self.clean_prob:g} of the samples clean (MATLAB bicubic); otherwise blur p={self.blur_prob:g} "
            f"(Gaussian, {self.aniso_prob:g} of them anisotropic, sigma {blur} HR px), downscale ({resize}), "
            f"noise p={self.noise_prob:g} (Gaussian sigma {self.gaussian_sigma[0]:g}-{self.gaussian_sigma[1]:g} "
            f"levels or, {self.poisson_prob:g} of them, Poisson x{self.poisson_scale[0]:g}-"
            f"{self.poisson_scale[1]:g}; "
            f"{self.gray_noise_prob:g} gray), JPEG p={self.jpeg_prob:g} (quality {q[0]}-{q[1]}, Pillow)"
        )

    # ------------------------------------------------------------------ draws
    def _plan(self, rng: np.random.Generator, scale: int) -> dict[str, Any]:
        """Every random number of one sample, drawn in a fixed order whatever the branches."""
        u = rng.random(8)
        methods = list(self.resize)
        weights = np.array([self.resize[m] for m in methods])
        sig_x, sig_y = (scale * rng.uniform(*self.blur_sigma, size=2)).tolist()
        plan = {
            "clean": u[0] < self.clean_prob,
            "blur": u[1] < self.blur_prob,
            "aniso": u[2] < self.aniso_prob,
            "sigma": (sig_x, sig_y),
            "angle": float(rng.uniform(-math.pi, math.pi)),
            "resize": methods[int(rng.choice(len(methods), p=weights / weights.sum()))],
            "noise": u[3] < self.noise_prob,
            "poisson": u[4] < self.poisson_prob,
            "gray": u[5] < self.gray_noise_prob,
            "gaussian_sigma": float(rng.uniform(*self.gaussian_sigma)),
            "poisson_scale": float(rng.uniform(*self.poisson_scale)),
            "jpeg": u[6] < self.jpeg_prob,
            "quality": int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)),
        }
        if plan["clean"]:
            plan.update(blur=False, resize="bicubic", noise=False, jpeg=False)
        return plan

    # ---------------------------------------------------------------- stages
    @staticmethod
    def _kernel(sigma: tuple[float, float], angle: float, aniso: bool) -> torch.Tensor:
        sx, sy = sigma if aniso else (sigma[0], sigma[0])
        radius = math.ceil(3 * max(sx, sy))
        r = torch.arange(-radius, radius + 1, dtype=torch.float64)
        y, x = torch.meshgrid(r, r, indexing="ij")
        c, s = math.cos(angle), math.sin(angle)
        u, v = c * x + s * y, -s * x + c * y  # coordinates along the rotated axes
        k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
        return (k / k.sum()).float()

    @staticmethod
    def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Depthwise convolution of a ``(C, H, W)`` float image with reflected borders."""
        c = image.shape[0]
        pad = kernel.shape[-1] // 2
        padded = F.pad(image[None], (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(padded, kernel.expand(c, 1, *kernel.shape), groups=c)[0]

    @staticmethod
    def _downscale(image: torch.Tensor, size: int, method: str) -> torch.Tensor:
        if method == "bicubic":
            return imresize(image, size=(size, size))
        if method == "bilinear":
            return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True)[0]
        return F.interpolate(image[None], size=(size, size), mode="area")[0]

    @staticmethod
    def _noise(image: np.ndarray, plan: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """``image`` (float HWC in 0..255 levels) plus the sample's noise."""
        shape = (*image.shape[:2], 1) if plan["gray"] else image.shape
        if plan["poisson"]:
            base = image.mean(axis=2, keepdims=True) if plan["gray"] else image
            levels = np.clip(base, 0, 255)
            noise = (rng.poisson(levels) - levels) * plan["poisson_scale"]
        else:
            noise = rng.standard_normal(shape) * plan["gaussian_sigma"]
        return image + noise

    # ------------------------------------------------------------------ apply
    def degrade(self, hr: np.ndarray | torch.Tensor, scale: int, rng: np.random.Generator) -> np.ndarray:
        """The LR of one uint8 HR patch (``(C, H, W)`` tensor or ``(H, W, C)`` array, sides divisible by ``scale``).

        Returns:
            The uint8 ``(H / scale, W / scale, C)`` LR patch.
        """
        plan = self._plan(rng, scale)
        chw = torch.as_tensor(hr if isinstance(hr, torch.Tensor) else np.ascontiguousarray(hr.transpose(2, 0, 1)))
        size = chw.shape[-1] // scale
        if chw.shape[-2] != chw.shape[-1] or chw.shape[-1] % scale:
            raise ValueError(f"the HR patch must be square with a side divisible by {scale}, got {tuple(chw.shape)}")
        if plan["clean"]:
            return imresize(chw.contiguous(), size=(size, size)).permute(1, 2, 0).numpy()
        image = chw.float()
        if plan["blur"]:
            image = self._blur(image, self._kernel(plan["sigma"], plan["angle"], plan["aniso"]))
        lr = self._downscale(image, size, plan["resize"]).permute(1, 2, 0).numpy().astype(np.float64)
        if plan["noise"]:
            lr = self._noise(lr, plan, rng)
        out = np.clip(np.rint(lr), 0, 255).astype(np.uint8)
        if plan["jpeg"]:
            out = jpeg_roundtrip(out, plan["quality"])
        return out

    def degrade_batch(
        self, hr: torch.Tensor, scale: int, *, seed: int, step: int, rank: int = 0, first: int = 0
    ) -> torch.Tensor:
        """The LR of a batch of uint8 NCHW HR patches, each from its own seeded generator.

        Args:
            hr: uint8 ``(N, C, H, W)`` HR patches (any memory format).
            scale: The downscaling factor.
            seed: The run's seed.
            step: The training step the batch is for (the step number before the update).
            rank: The process (under DDP every process draws its own samples).
            first: Index of the first sample (sample ``i`` of the batch is ``first + i``).

        Returns:
            The uint8 ``(N, C, H / scale, W / scale)`` LR patches, channels-last.
        """
        images = hr.cpu()
        out = [
            self.degrade(img, scale, np.random.default_rng([int(seed), _STREAM, int(step), int(rank), first + i]))
            for i, img in enumerate(images)
        ]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
