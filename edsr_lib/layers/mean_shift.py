"""Fixed RGB mean shift with ``rgb_range`` scaling (not trained)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .registry import register_block

#: The DIV2K training-set RGB mean that the reference EDSR/MDSR weights were trained with.
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


@register_block("mean_shift")
class MeanShift(nn.Module):
    """Subtract (``sign=-1``) or add back (``sign=+1``) the dataset mean, with range scaling.

    The library takes images in [0, 1] while the reference weights were trained on
    [0, 255] inputs. Scaling inside the model keeps those weights exact:
    ``sign=-1`` computes ``(x - mean) * rgb_range`` (before the head) and ``sign=+1``
    computes ``x / rgb_range + mean`` (after the tail).

    The mean is a non-persistent buffer: it is not a trainable parameter, not part of
    the state dict, and comes from the model config.

    Args:
        rgb_range: Pixel range the network body works in (255 for the reference weights).
        rgb_mean: Per-channel mean in [0, 1] units.
        sign: -1 to subtract the mean on the way in, +1 to add it back on the way out.
    """

    def __init__(
        self,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        sign: int = -1,
    ) -> None:
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 (subtract) or +1 (add back), got {sign}")
        if rgb_range <= 0:
            raise ValueError(f"rgb_range must be positive, got {rgb_range}")
        self.rgb_range = float(rgb_range)
        self.sign = sign
        mean = torch.tensor([float(m) for m in rgb_mean], dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the shift to a NCHW tensor."""
        mean = self.mean.to(dtype=x.dtype)
        if self.sign < 0:
            return (x - mean) * self.rgb_range
        return x / self.rgb_range + mean

    def extra_repr(self) -> str:
        return f"rgb_range={self.rgb_range:g}, sign={self.sign:+d}"
