"""BasicSR's ``EDSR``: ``conv_first``, ``body.N.conv1/conv2``, ``conv_after_body``, ``upsample.<i>``, ``conv_last``.

Usually saved under ``params``/``params_ema``; its ``img_range`` and ``rgb_mean`` are
options, not tensors. It has no MDSR.
"""

from __future__ import annotations

from typing import Any

from ..layers import DIV2K_RGB_MEAN
from .base import Layout, Names, fmt, mean_from_shift, same_values

__all__ = ["BasicSRLayout"]

#: Where BasicSR's EDSR keeps each convolution.
_BASICSR = Names("conv_first", ("body.{i}.conv1", "body.{i}.conv2"), "conv_after_body", "upsample.{k}", "conv_last")


class BasicSRLayout(Layout):
    """BasicSR: its own key names; img_range and rgb_mean are options, not tensors."""

    name = "basicsr"
    title = "BasicSR"
    edsr = _BASICSR
    no_mdsr = "BasicSR has no MDSR"
    mdsr_prefixes = ()
    convention = "images in [0, 1], its rgb_mean option subtracted and the result scaled by its img_range option"
    overrides = frozenset({"res_scale", "rgb_range"})
    wrapper = "params"

    def allowed_overrides(self, keys):
        return set(self.overrides) | ({"rgb_mean"} if "mean" not in set(keys) else set())

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """BasicSR keeps ``img_range`` (and usually ``rgb_mean``) in its options, not in the state dict."""
        assumed: dict[str, Any] = {}
        if "mean" in state_dict:
            mean = state_dict["mean"].double().flatten()
            if mean.numel() != n_colors:
                raise ValueError(f"the 'mean' tensor holds {mean.numel()} values for {n_colors} colour channels")
            rgb_mean = mean_from_shift(mean, 1.0, state_dict["mean"].dtype, notes, source="BasicSR's")
        elif "rgb_mean" in overrides:
            rgb_mean = [float(m) for m in overrides["rgb_mean"]]
            if len(rgb_mean) != n_colors:
                raise ValueError(f"rgb_mean has {len(rgb_mean)} values for {n_colors} colour channels")
            notes.append(f"rgb_mean {fmt(rgb_mean)} as given")
        else:
            rgb_mean = assumed["rgb_mean"] = list(DIV2K_RGB_MEAN)
            notes.append(
                "BasicSR keeps rgb_mean out of the state dict: the DIV2K mean assumed (its default); "
                "override with rgb_mean="
            )
        absorbed = ["mean"] if "mean" in state_dict else []
        if "rgb_range" in overrides:
            notes.append(f"rgb_range (BasicSR's img_range) {float(overrides['rgb_range']):g} as given")
            return float(overrides["rgb_range"]), rgb_mean, absorbed, assumed
        assumed["rgb_range"] = 255.0
        notes.append(
            "BasicSR keeps img_range out of the state dict: 255 assumed (its default); override with rgb_range="
        )
        return 255.0, rgb_mean, absorbed, assumed

    def options(self, config):
        return {
            "num_in_ch": config["n_colors"],
            "num_out_ch": config["n_colors"],
            "num_feat": config["n_feats"],
            "num_block": config["n_resblocks"],
            "upscale": config["scale"],
            "res_scale": config["res_scale"],
            "img_range": self.rgb_range,
            "rgb_mean": list(config["rgb_mean"]),
        }

    def write_notes(self, config):
        notes = [
            "BasicSR keeps img_range and rgb_mean in its options, not in the file: "
            f"network_g: type EDSR, {', '.join(f'{k}: {v}' for k, v in self.options(config).items())}"
        ]
        if not same_values(list(config["rgb_mean"]), list(DIV2K_RGB_MEAN)):
            notes.append(
                f"this model's rgb_mean {fmt(config['rgb_mean'])} is not BasicSR's default (the DIV2K mean): "
                "set it in network_g, or the output is wrong"
            )
        return notes
