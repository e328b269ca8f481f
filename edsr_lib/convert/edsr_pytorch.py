"""EDSR-PyTorch, the reference code and its official checkpoints: images in ``[0, rgb_range]``, mean shifts applied.

Key names: ``head.0``, ``body.N.body.{0,2}``, ``tail.0.<i>``, ``tail.1``, and the fixed
``sub_mean``/``add_mean`` convolutions; its MDSR adds ``pre_process.S`` and ``upsample.S``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers import DIV2K_RGB_MEAN
from .base import (
    MEAN_SHIFTS,
    PREPROCESS,
    RESBLOCK,
    Layout,
    Names,
    least_precise,
    mean_from_shift,
    mean_shift_tensors,
    read_mean_shifts,
    relative_tolerance,
)

__all__ = ["EDSRPyTorchLayout"]

#: Where EDSR-PyTorch's EDSR and MDSR keep each convolution (torchSR and super-image share the EDSR names).
OFFICIAL_EDSR = Names("head.0", RESBLOCK, "body.{n}", "tail.0.{k}", "tail.1")
_OFFICIAL_MDSR = Names("head.0", RESBLOCK, "body.{n}", "upsample.{b}.{k}", "tail.0", PREPROCESS)


class EDSRPyTorchLayout(Layout):
    """EDSR-PyTorch (the reference code): images in ``[0, rgb_range]``, the mean shifts applied."""

    edsr = OFFICIAL_EDSR
    name = "edsr-pytorch"
    title = "EDSR-PyTorch"
    mdsr = _OFFICIAL_MDSR
    convention = "images in [0, rgb_range], the mean shifts applied"
    overrides = frozenset({"res_scale", "rgb_range"})

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        """The mean shifts' bias is ``-/+ rgb_range * mean``.

        With the DIV2K mean, the range follows from the ratio; any other mean is carried
        with ``rgb_range`` 255 (or the one given).
        """
        shift = read_mean_shifts(state_dict, n_colors)
        rgb_range = overrides.get("rgb_range")
        if shift is None:
            return float(rgb_range or 255.0), list(DIV2K_RGB_MEAN), list(MEAN_SHIFTS), {}
        dtype = least_precise({k: state_dict[k] for k in MEAN_SHIFTS})
        tol = max(1e-5, relative_tolerance(dtype))
        assumed: dict[str, Any] = {}
        if rgb_range is None and n_colors == len(DIV2K_RGB_MEAN):
            ratio = shift / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
            if torch.allclose(ratio, ratio.mean(), rtol=tol, atol=0) and ratio.mean() > 0:
                rgb_range = float(ratio.mean())
                if math.isclose(rgb_range, round(rgb_range), rel_tol=tol):
                    rgb_range = float(round(rgb_range))
                if rgb_range != 255.0:
                    notes.append(
                        f"rgb_range {rgb_range:g} read from the mean shifts (the DIV2K mean times {rgb_range:g})"
                    )
        if rgb_range is None:
            rgb_range = assumed["rgb_range"] = 255.0
            notes.append("the mean shifts do not hold the DIV2K mean: rgb_range 255 assumed; override with rgb_range=")
        return float(rgb_range), mean_from_shift(shift, float(rgb_range), dtype, notes), list(MEAN_SHIFTS), assumed

    def extra_tensors(self, rgb_mean):
        return mean_shift_tensors(self.rgb_range, rgb_mean)

    def options(self, config):
        scales = config.get("scales", [config.get("scale")])
        options: dict[str, Any] = {"model": config["architecture"].upper(), "scale": "+".join(map(str, scales))}
        options.update(n_resblocks=config["n_resblocks"], n_feats=config["n_feats"])
        if config["architecture"] == "edsr":
            options["res_scale"] = config["res_scale"]
        return {**options, "rgb_range": self.rgb_range}

    def write_notes(self, config):
        how = " ".join(
            f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {v}" for k, v in self.options(config).items()
        )
        notes = [f"EDSR-PyTorch options for this file: {how}"]
        if config["architecture"] == "mdsr":
            notes.append(f"MDSR branch i is scale {config['scales']}[i]: pass --scale in that order")
        return notes

    def unwritable(self, config):
        problems = super().unwritable(config)
        if config["architecture"] == "mdsr":
            if config.get("preprocess_kernel_size") != 5:
                problems.append(f"preprocess_kernel_size {config.get('preprocess_kernel_size')} (its MDSR has 5)")
            if config.get("res_scale") != 1.0:
                problems.append(f"res_scale {config.get('res_scale'):g} (its MDSR has no residual scaling)")
        return problems
