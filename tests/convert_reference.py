"""Independent stand-ins for third-party code, shared by the converter's tests.

Each layout is written by a helper that renames a library state dict by hand (not with
the converter's tables), and each layout's forward pass is re-implemented functionally,
from the reference code, so that a converted (or exported) model can be compared with it.
EDSR-PyTorch is not a package, so its forward lives here; torchSR, BasicSR and
super-image are tested with the real packages (tests/test_convert_packages.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edsr_lib import EDSR, MDSR

DIV2K = (0.4488, 0.4371, 0.4040)


# ------------------------------------------------------------------ layouts, by hand
def mean_shifts(shift: torch.Tensor) -> dict[str, torch.Tensor]:
    """EDSR-PyTorch's MeanShift convolutions for ``shift = rgb_range * mean``."""
    eye = torch.eye(len(shift)).view(len(shift), len(shift), 1, 1)
    return {
        "sub_mean.weight": eye.clone(),
        "sub_mean.bias": -shift,
        "add_mean.weight": eye.clone(),
        "add_mean.bias": shift.clone(),
    }


def to_edsr_pytorch(model: EDSR, shift: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The official layout: head.0, body.N.body.{0,2}, body.B, tail.0.<i> (upsampler), tail.1."""
    out = {}
    for key, value in model.state_dict().items():
        first, rest = key.split(".", 1)
        prefix = {"head": "head.0", "upsampler": "tail.0", "tail": "tail.1", "body": "body"}[first]
        out[f"{prefix}.{rest}"] = value.clone()
    default = 255.0 * torch.tensor(DIV2K)
    out.update(mean_shifts(default if shift is None else shift))
    return out


def to_edsr_pytorch_mdsr(model: MDSR, order: tuple[int, ...] = (2, 3, 4)) -> dict[str, torch.Tensor]:
    """The official MDSR layout: branches are list indices in the order of ``order``'s scales."""
    index = {f"x{s}": str(i) for i, s in enumerate(order)}
    out = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] in ("pre_process", "upsample"):
            parts[1] = index[parts[1]]
        elif parts[0] in ("head", "tail"):
            parts.insert(1, "0")
        out[".".join(parts)] = value.clone()
    out.update(mean_shifts(255.0 * torch.tensor(DIV2K)))
    return out


def to_basicsr(model: EDSR) -> dict[str, torch.Tensor]:
    """BasicSR's EDSR: conv_first, body.N.conv1/conv2, conv_after_body, upsample.<i>, conv_last."""
    n = model.config["n_resblocks"]
    out = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "head":
            name = "conv_first." + parts[1]
        elif parts[0] == "tail":
            name = "conv_last." + parts[1]
        elif parts[0] == "upsampler":
            name = "upsample." + ".".join(parts[1:])
        elif int(parts[1]) == n:
            name = "conv_after_body." + parts[2]
        else:
            name = f"body.{parts[1]}.conv{1 if parts[3] == '0' else 2}.{parts[4]}"
        out[name] = value.clone()
    return out


def to_super_image(model: EDSR) -> dict[str, torch.Tensor]:
    """super-image's EdsrModel: EDSR-PyTorch's names, with mean shifts its forward never uses."""
    return to_edsr_pytorch(model)


# ------------------------------------------------------- reference forward passes
def _conv(sd: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    weight = sd[f"{name}.weight"]
    return F.conv2d(x, weight, sd[f"{name}.bias"], padding=weight.shape[-1] // 2)


def _res(sd: dict[str, torch.Tensor], first: str, second: str, x: torch.Tensor, res_scale: float) -> torch.Tensor:
    return x + res_scale * _conv(sd, second, F.relu(_conv(sd, first, x)))


def _upsample(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, scale: int) -> torch.Tensor:
    factors = [3] if scale == 3 else [2] * int(math.log2(scale))
    for i, factor in enumerate(factors):
        x = F.pixel_shuffle(_conv(sd, f"{prefix}.{2 * i}", x), factor)
    return x


def reference_edsr_pytorch(
    sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int, res_scale: float = 1.0, mean_shift: bool = True
) -> torch.Tensor:
    """EDSR-PyTorch's EDSR forward on images in [0, rgb_range] (super-image: no mean shifts, [0, 1])."""
    n = len({k.split(".")[1] for k in sd if k.startswith("body.") and k.count(".") == 4})
    if mean_shift:
        x = _conv(sd, "sub_mean", x)
    x = _conv(sd, "head.0", x)
    res = x
    for i in range(n):
        res = _res(sd, f"body.{i}.body.0", f"body.{i}.body.2", res, res_scale)
    x = _conv(sd, "tail.1", _upsample(sd, "tail.0", _conv(sd, f"body.{n}", res) + x, scale))
    return _conv(sd, "add_mean", x) if mean_shift else x


def reference_mdsr(sd: dict[str, torch.Tensor], x: torch.Tensor, branch: int, scale: int) -> torch.Tensor:
    """EDSR-PyTorch's MDSR forward after ``set_scale(branch)``, on images in [0, 255]."""
    n = len({k.split(".")[1] for k in sd if k.startswith("body.") and k.count(".") == 4})
    x = _conv(sd, "head.0", _conv(sd, "sub_mean", x))
    for p in range(2):
        x = _res(sd, f"pre_process.{branch}.{p}.body.0", f"pre_process.{branch}.{p}.body.2", x, 1.0)
    res = x
    for i in range(n):
        res = _res(sd, f"body.{i}.body.0", f"body.{i}.body.2", res, 1.0)
    x = _upsample(sd, f"upsample.{branch}", _conv(sd, f"body.{n}", res) + x, scale)
    return _conv(sd, "add_mean", _conv(sd, "tail.0", x))


def reference_basicsr(
    sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int, img_range: float = 255.0, mean=DIV2K
) -> torch.Tensor:
    """BasicSR's EDSR forward on images in [0, 1]."""
    n = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    x = _conv(sd, "conv_first", (x - mean) * img_range)
    res = x
    for i in range(n):
        res = _res(sd, f"body.{i}.conv1", f"body.{i}.conv2", res, 1.0)
    x = _conv(sd, "conv_last", _upsample(sd, "upsample", _conv(sd, "conv_after_body", res) + x, scale))
    return x / img_range + mean


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < 1e-5, (a - b).abs().max().item()
