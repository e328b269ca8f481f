"""torchSR's ``EDSR``: EDSR-PyTorch's key names and mean shifts, always ``rgb_range`` 255 on [0, 1] inputs; no MDSR."""

from __future__ import annotations

from ..layers import DIV2K_RGB_MEAN
from .base import MEAN_SHIFTS, least_precise, mean_from_shift, read_mean_shifts
from .edsr_pytorch import EDSRPyTorchLayout

__all__ = ["TorchSRLayout"]


class TorchSRLayout(EDSRPyTorchLayout):
    """torchSR: EDSR-PyTorch's key names, images in [0, 1] scaled to [0, 255] inside."""

    name = "torchsr"
    title = "torchSR"
    mdsr = None
    no_mdsr = "torchSR has no MDSR"
    convention = "images in [0, 1], scaled to [0, 255] inside, the mean shifts applied"
    overrides = frozenset({"res_scale"})

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """torchSR's ``EDSR`` always multiplies its input by 255: the bias is ``-/+ 255 * mean``."""
        shift = read_mean_shifts(state_dict, n_colors)
        if shift is None:
            return self.rgb_range, list(DIV2K_RGB_MEAN), list(MEAN_SHIFTS), {}
        dtype = least_precise({k: state_dict[k] for k in MEAN_SHIFTS})
        return self.rgb_range, mean_from_shift(shift, self.rgb_range, dtype, notes), list(MEAN_SHIFTS), {}

    def options(self, config):
        keys = ("n_resblocks", "n_feats", "scale", "res_scale")
        return {k: config[k] for k in keys}

    def write_notes(self, config):
        args = ", ".join(f"{k}={v!r}" for k, v in self.options(config).items())
        return [f"load it into torchsr.models.edsr.EDSR({args})"]
