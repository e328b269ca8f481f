"""Benchmark a model (or bicubic upsampling) on a set of images, under the paper's protocol.

:func:`evaluate` reproduces how super-resolution tables are computed (SPEC, "Evaluation
conventions"): HR images are cropped to a multiple of the scale, LR images are the
official MATLAB-bicubic files when the set has them and are made with the MATLAB-exact
:func:`~edsr_lib.ops.imresize` otherwise (byte for byte the same), the model runs through
:func:`~edsr_lib.upscale` (so tiling and self-ensemble are the library's own), and the
8-bit quantised output is scored with :func:`~edsr_lib.metrics.psnr` and
:func:`~edsr_lib.metrics.ssim`.

A set is a folder with an ``HR/`` subfolder and, optionally,
``LR_bicubic/X<s>/<stem>x<s>.png`` files (the layout of the usual benchmark downloads)::

    Set5/
        HR/baby.png ...
        LR_bicubic/X2/babyx2.png ...
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics
from .inference import Upscaler
from .io import list_images, read_image, to_tensor
from .memory import is_out_of_memory
from .models import SRModel
from .ops.degrade import LRDegradation
from .ops.imresize import bicubic_lr, imresize, lr_file_name, modcrop

__all__ = ["BICUBIC_MODEL", "PROTOCOLS", "evaluate", "set_name"]

#: The ``model`` value that evaluates MATLAB bicubic upsampling, the baseline of every table.
BICUBIC_MODEL = "bicubic"

#: Protocol name -> (score the Y channel?, pixels ignored at each border beyond ``scale``).
PROTOCOLS: dict[str, tuple[bool, int]] = {
    # Set5, Set14, B100, Urban100: Y of BT.601, crop = scale.
    "benchmark": (True, 0),
    # DIV2K validation: RGB, crop = scale + 6.
    "div2k": (False, 6),
}


def set_name(folder: str | Path) -> str:
    """The name of a set of images: its folder's, or the parent's for an ``HR`` folder (``T91/HR`` is ``"T91"``)."""
    path = Path(folder)
    return path.parent.name if path.name.upper() == "HR" else path.name


def _without_alpha(image: np.ndarray) -> np.ndarray:
    """The image from :func:`~edsr_lib.io.read_image` with 1 (gray) or 3 channels: alpha is not scored."""
    return image[:, :, :3] if image.shape[2] == 4 else image


def _bicubic(lr: np.ndarray, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(lr, scale, 'bicubic')`` of a uint8 LR image, the paper's bicubic column.

    MATLAB keeps a uint8 image uint8, rounding after each pass. Measured on Set5, Set14 and
    B100 (x2, x3, x4), this lands closer to the published bicubic numbers than resizing in
    floating point (at most 0.013 dB and 0.0007 SSIM away, against 0.018 dB and 0.0009).
    """
    return to_tensor(imresize(lr, scale))


def _check_args(scale: Any, protocol: Any) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"scale must be a positive integer (2, 3, 4, ...), got {scale!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def _hr_files(data: Path) -> list[Path]:
    if not data.is_dir():
        raise FileNotFoundError(f"no such set folder: {data}")
    hr_dir = data / "HR"
    if not hr_dir.is_dir():
        raise FileNotFoundError(
            f"{data} has no HR/ folder; a set folder holds HR/<name>.png (and optionally LR_bicubic/X<s>/)"
        )
    try:
        return list_images(hr_dir)
    except ValueError as exc:
        raise ValueError(f"the set {data} has no images in HR/: {exc}") from None


def _load_pair(
    hr_path: Path, lr_dir: Path, scale: int, degrade: LRDegradation | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The modcropped HR and its LR (official file if present, else MATLAB bicubic; then ``degrade``), uint8 HWC."""
    hr, lr = _load_clean_pair(hr_path, lr_dir, scale)
    return hr, degrade.apply(lr, hr_path.stem) if degrade is not None else lr


def _load_clean_pair(hr_path: Path, lr_dir: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    hr = _without_alpha(read_image(hr_path))
    try:
        hr = modcrop(hr, scale)
    except ValueError as exc:
        raise ValueError(f"{hr_path}: {exc}") from None
    lr_shape = (hr.shape[0] // scale, hr.shape[1] // scale)
    lr_path = lr_dir / lr_file_name(hr_path.stem, scale)
    if not lr_path.is_file():
        return hr, bicubic_lr(hr, scale)
    lr = _without_alpha(read_image(lr_path))
    if lr.shape[:2] != lr_shape:
        raise ValueError(
            f"{lr_path} is {lr.shape[0]}x{lr.shape[1]}, but its HR {hr_path.name} cropped to a multiple of "
            f"{scale} ({hr.shape[0]}x{hr.shape[1]}) needs a {lr_shape[0]}x{lr_shape[1]} LR image"
        )
    if lr.shape[2] != hr.shape[2]:
        raise ValueError(f"{lr_path} has {lr.shape[2]} channel(s) but its HR {hr_path.name} has {hr.shape[2]}")
    return hr, lr


def evaluate(
    model: SRModel | str | os.PathLike[str],
    data: str | os.PathLike[str],
    scale: int,
    *,
    self_ensemble: bool = False,
    tile: int | Literal["auto"] | None = "auto",
    protocol: Literal["benchmark", "div2k"] = "benchmark",
    device: torch.device | str | None = None,
    backend: str | None = None,
    int8: bool = False,
    progress: bool = False,
    degrade: LRDegradation | None = None,
) -> dict[str, Any]:
    """Score a model, or bicubic upsampling, on a set of images.

    For each image of ``data/HR``: the HR is cropped to a multiple of ``scale``; the LR is
    ``data/LR_bicubic/X<scale>/<stem>x<scale>.png`` when that file exists, else MATLAB
    ``imresize(HR, 1/scale, 'bicubic')`` with uint8 rounding (which equals the official
    files byte for byte); the model upscales the LR through :func:`~edsr_lib.upscale`; the
    result is quantised to 8 bits and scored against the HR.

    Grayscale images (Set14's ``bridge``) go through the model as RGB (replicated by
    :func:`~edsr_lib.upscale`, which averages the three outputs back to gray) and are scored
    on their gray values, as the benchmark's MATLAB scripts do (see :mod:`edsr_lib.metrics`);
    an alpha channel is ignored.

    Args:
        model: A registered model name (created with its pretrained weights), an
            :class:`~edsr_lib.SRModel`, a folder written by ``save_pretrained``, or
            ``"bicubic"`` for MATLAB bicubic upsampling of the uint8 LR (rounded after each
            pass, as MATLAB does; the baseline column of the paper's tables).
        data: A set folder holding ``HR/`` (and optionally ``LR_bicubic/X<s>/``).
        scale: The upscaling factor; the model must serve it.
        self_ensemble: Average the model over the eight flips and rotations (the paper's
            "+" results); passed to :func:`~edsr_lib.upscale`.
        tile: Tile size in LR pixels, ``"auto"`` (the default, as for
            :func:`~edsr_lib.upscale`: big images in tiles that fit the memory budget) or
            ``None`` (one pass); exact, so it changes memory use and not the scores.
        protocol: ``"benchmark"`` (Set5, Set14, B100, Urban100: Y channel of BT.601,
            ``scale`` pixels ignored at each border) or ``"div2k"`` (DIV2K validation:
            RGB, ``scale + 6`` pixels ignored).
        device: Where the model runs; by default as :func:`~edsr_lib.upscale` picks it: the
            accelerator for a model given by name or folder, else the device of its weights.
        backend: What computes the network, as for :func:`~edsr_lib.upscale` (``"openvino"``,
            ``"onnxruntime"``, ...).
        int8: Score the int8 model shipped for the weights (OpenVINO), as for
            :func:`~edsr_lib.upscale`.
        progress: Show a progress bar over the images.
        degrade: Degrade each LR image (noise, then JPEG; see
            :class:`~edsr_lib.ops.degrade.LRDegradation`) before it is upscaled: scores on
            degraded input, the protocol otherwise unchanged.

    Returns:
        ``{"set", "scale", "protocol", "model", "self_ensemble", "int8", "degrade", "psnr", "ssim", "images",
        "seconds"}``: ``set`` is the folder's name, ``model`` a description of the model,
        ``psnr`` (dB) and ``ssim`` the means over the images, ``images`` one
        ``{"name", "psnr", "ssim", "height", "width"}`` row per image (HR size after the
        crop), ``seconds`` the wall time of reading, upscaling and scoring the images.

    Raises:
        FileNotFoundError: If ``data`` or its ``HR/`` folder does not exist.
        ValueError: If ``HR/`` has no images; for an unknown protocol or model name; if
            the model does not serve ``scale`` (raised before any image is read); if an
            image is smaller than the scale or than the border crop; if an LR file's size
            is not the HR's divided by the scale; for ``self_ensemble`` or ``tile`` with
            ``"bicubic"``; for a backend or int8 that cannot run here
            (:class:`edsr_lib.backends.BackendError`).

    Example:
        >>> result = evaluate("edsr_baseline_x2", "datasets/Set5", 2)
        >>> print(f"{result['psnr']:.2f} dB / {result['ssim']:.4f}")
    """
    _check_args(scale, protocol)
    scale = int(scale)
    data = Path(data).expanduser()
    is_bicubic = isinstance(model, str) and model == BICUBIC_MODEL
    if is_bicubic:
        if self_ensemble or tile not in (None, "auto") or backend or int8:
            raise ValueError(
                "self_ensemble, tile, backend and int8 apply to a model; the bicubic baseline takes none of them"
            )
        description = BICUBIC_MODEL
    else:
        # a name or folder describes itself; an object by its registered variant, if any
        description = os.fspath(model) if isinstance(model, str | os.PathLike) else None
        # set up once, before any image is read; scored in fp32 unless int8 is asked (whatever upscale's default)
        upscaler = Upscaler(
            model,
            scale=scale,
            tile=tile,
            self_ensemble=self_ensemble,
            device=device,
            backend=backend,
            precision="int8" if int8 else "fp32",
        )
        description = description or getattr(upscaler.model, "variant", None) or type(upscaler.model).__name__
    hr_files = _hr_files(data)
    y_channel, extra_crop = PROTOCOLS[protocol]
    crop_border = scale + extra_crop
    lr_dir = data / "LR_bicubic" / f"X{scale}"

    images: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = tqdm(hr_files, desc=f"{data.name} x{scale}", unit="image", leave=False, disable=not progress)
    for hr_path in bar:
        hr, lr = _load_pair(hr_path, lr_dir, scale, degrade)
        try:
            sr = _bicubic(lr, scale) if is_bicubic else upscaler(to_tensor(lr))
            hr_tensor = to_tensor(hr)
            scores = [
                float(metric(sr, hr_tensor, crop_border=crop_border, test_y_channel=y_channel)[0])
                for metric in (metrics.psnr, metrics.ssim)
            ]
        except ValueError as exc:
            raise ValueError(f"{hr_path}: {exc}") from None
        except Exception as exc:  # out of memory: one line naming the image, as upscale gives
            if not is_out_of_memory(exc):
                raise
            raise MemoryError(
                f"{hr_path}: out of memory scoring a {hr.shape[1]}x{hr.shape[0]} image ({exc}); "
                "a smaller tile uses less"
            ) from None
        images.append(
            {"name": hr_path.stem, "psnr": scores[0], "ssim": scores[1], "height": hr.shape[0], "width": hr.shape[1]}
        )
    return {
        "set": data.resolve().name,
        "scale": scale,
        "protocol": protocol,
        "model": description,
        "self_ensemble": bool(self_ensemble),
        "int8": bool(int8),
        "degrade": degrade.describe() if degrade is not None else "clean",
        "psnr": float(np.mean([row["psnr"] for row in images])),
        "ssim": float(np.mean([row["ssim"] for row in images])),
        "images": images,
        "seconds": time.perf_counter() - start,
    }
