"""Tiny synthetic images and settings for the training examples' ``--smoke`` mode.

A smoke run takes seconds and needs no data set: a one-block, 8-feature model trains for
a few steps on smooth random images, validates, checkpoints and exports, exactly as a
real run does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edsr_lib.io import write_image


def _write_images(folder: Path, n: int, size: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        coarse = torch.rand(1, 3, size // 8, size // 8, generator=gen)
        img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        write_image(folder / f"{i}.png", (img[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy())


def smoke_settings(workdir: str | Path) -> dict[str, Any]:
    """Write synthetic training and validation images under ``workdir``; return TrainConfig overrides."""
    workdir = Path(workdir)
    _write_images(workdir / "train", n=6, size=64, seed=0)
    _write_images(workdir / "val" / "HR", n=2, size=48, seed=1)
    return {
        "train_dirs": [str(workdir / "train")],
        "val_dir": str(workdir / "val"),
        "model_kwargs": {"n_resblocks": 1, "n_feats": 8},
        "lr_patch_size": 8,
        "batch_size": 4,
        "steps": 4,
        "save_every": 2,
        "log_every": 2,
        "cache_dir": "",
        "num_threads": 1,
        "progress": False,
    }
