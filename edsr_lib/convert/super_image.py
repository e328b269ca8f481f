"""super-image's ``EdsrModel`` (``eugenesiow/edsr-base``): EDSR-PyTorch's key names, [0, 1] images, no mean shift.

Its ``forward`` never applies ``sub_mean``/``add_mean``, so the converted model gets
``rgb_range=1`` and a zero mean. The package writes a ``config.json`` beside its weights
and names a file saved for one scale ``pytorch_model_<S>x.pt``; both are read.

super-image's ``MdsrModel`` (``eugenesiow/mdsr``, ``eugenesiow/mdsr-bam``) is not the
paper's MDSR, and no model of the library holds it: its files are refused with
:data:`SUPER_IMAGE_MDSR`, recognised by their key names or by their ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable

from .base import MEAN_SHIFTS, Layout
from .edsr_pytorch import OFFICIAL_EDSR

__all__ = ["SUPER_IMAGE_MDSR", "SuperImageLayout", "is_super_image_mdsr"]

#: Why super-image's MDSR files are refused, whatever reads them (the converter, ``weights=``, a pretrained config).
SUPER_IMAGE_MDSR = (
    "this is a super-image MdsrModel file (eugenesiow/mdsr or eugenesiow/mdsr-bam), which is not the paper's MDSR: "
    "one scale per file, 3x3 pre-processing with residual scaling 0.1; edsr-lib has no such model and does not "
    "convert it (edsr_lib's mdsr and mdsr_baseline are the paper's, with their own weights)"
)
#: A key only super-image's MdsrModel has: its convolutions are wrapped in a Sequential (``....body.0.0.weight``).
_MDSR_KEY = re.compile(r"pre_process\.\d+\.\d+\.body\.\d+\.0\.weight")


def is_super_image_mdsr(keys: Iterable[str]) -> bool:
    """True for the key names of super-image's MdsrModel (``head.0.0``, ``pre_process.<scale>.<i>.body.<j>.0``)."""
    keys = set(keys)
    return "head.0.0.weight" in keys and any(_MDSR_KEY.fullmatch(k) for k in keys)


class SuperImageLayout(Layout):
    """super-image's EdsrModel: EDSR-PyTorch's key names, [0, 1] images, its mean shifts never applied."""

    edsr = OFFICIAL_EDSR
    name = "super-image"
    title = "super-image"
    no_mdsr = "super-image's MdsrModel is not supported: only its EdsrModel layout is known"
    rgb_range = 1.0
    convention = "images in [0, 1], its sub_mean/add_mean never applied"
    writable = False
    #: How super-image names a weights file saved with a scale (``WEIGHTS_NAME_SCALE``).
    file_name = re.compile(r"pytorch_model_(\d+)x\.pt")

    def read_range_and_mean(self, state_dict, n_colors, overrides, notes):
        notes.append("super-image's EdsrModel works on [0, 1] images and never applies its sub_mean/add_mean")
        return 1.0, [0.0] * n_colors, list(MEAN_SHIFTS), {}

    def sidecar(self, path, layout):
        """The super-image config (``"model_type": "EDSR"``) beside ``path``, if there is one."""
        config_path = path.with_name("config.json")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
            return None
        model_type = config["model_type"].upper()
        if model_type == "MDSR" and layout in (None, self.name):
            raise ValueError(f"{config_path} says {SUPER_IMAGE_MDSR}")
        return config if model_type == "EDSR" else None

    def sidecar_overrides(self, config, given, notes):
        if "res_scale" not in config or "res_scale" in given:
            return {}
        notes.append(f"res_scale {float(config['res_scale']):g} read from config.json")
        return {"res_scale": float(config["res_scale"])}

    def file_scale(self, path):
        """The scale in a super-image file name (``pytorch_model_4x.pt``: 4), if it has one."""
        match = self.file_name.fullmatch(path.name)
        return int(match.group(1)) if match else None

    def check_file(self, spec, path, sidecar):
        """The file name's scale, then config.json, against the tensors.

        super-image rewrites ``config.json`` at each save, so in a folder of several
        scales it holds the last one: where the file name gives the scale, the name (and
        the tensors) win and the config's scale is only noted.
        """
        tensors = spec.scales[0]
        named = self.file_scale(path)
        if named is not None and named != tensors:
            raise ValueError(f"{path.name} is named for scale {named}, but its tensors hold an x{tensors} upsampler")
        if sidecar is None:
            return spec
        checks = {k: spec.kwargs[k] for k in ("n_resblocks", "n_feats", "n_colors")}
        diffs = [f"{k} {sidecar[k]!r} (the tensors say {v!r})" for k, v in checks.items() if sidecar.get(k, v) != v]
        notes = []
        if sidecar.get("scale") is not None and sidecar["scale"] != tensors:
            if named is None:
                diffs.append(f"scale {sidecar['scale']!r} (the tensors say {tensors!r})")
            else:
                notes.append(
                    f"config.json says scale {sidecar['scale']} (super-image rewrites it at each save); "
                    f"{path.name} and its tensors say {tensors}: converted as x{tensors}"
                )
        if diffs:
            raise ValueError(f"the super-image config.json beside the checkpoint disagrees with it: {'; '.join(diffs)}")
        return dataclasses.replace(spec, notes=(*spec.notes, *notes))
