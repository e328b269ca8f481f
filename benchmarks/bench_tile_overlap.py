#!/usr/bin/env python
"""How far tiled output is from the one-pass result, per tile overlap: cropped tiles vs feathered blending.

Two ways of tiling a model over a large image:

- **cropped** (edsr-lib's ``upscale(tile=..., tile_overlap=...)``): each tile is run with
  ``overlap`` LR pixels of context on every side and only its centre is kept; exact once
  the overlap reaches the model's receptive radius;
- **feathered** (the scheme of ComfyUI's ``comfy.utils.tiled_scale``, re-implemented here
  from its description: tiles stepping by ``tile - overlap``, each weighted by a linear
  ramp over ``overlap`` pixels at its edges, the weighted sum divided by the summed
  weights): tiles near their edges are averaged in, so it is never exact, only closer
  with more overlap.

Run from the repository root (one thread by default)::

    .venv/bin/python benchmarks/bench_tile_overlap.py [--image ../shared/datasets/Set14/HR/baboon.png]

It prints, per overlap, the largest difference from the one-pass output in 8-bit levels
after rounding, and the PSNR of the tiled output against the one-pass one: the lines that
docs/integrations.md holds between its ``<!-- bench_tile_overlap.py -->`` markers (the test
suite runs the script with its defaults and compares).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import edsr_lib
from edsr_lib.io import read_image, to_tensor, to_uint8

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The lines between these markers in docs/integrations.md are this script's output.
MARKERS = ("<!-- bench_tile_overlap.py -->", "<!-- /bench_tile_overlap.py -->")


def feathered(fn, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """ComfyUI-style tiling: overlapping tiles blended with linear ramps over the overlap."""
    _, c, h, w = x.shape
    out = torch.zeros(1, c, h * scale, w * scale)
    weight = torch.zeros_like(out)
    step = tile - overlap
    feather = overlap * scale
    for y in range(0, h, step):
        for x0 in range(0, w, step):
            y1, x1 = max(0, min(h - overlap, y)), max(0, min(w - overlap, x0))
            ps = fn(x[:, :, y1 : y1 + tile, x1 : x1 + tile])
            mask = torch.ones_like(ps)
            for t in range(feather):
                a = (t + 1) / feather
                mask[:, :, t, :] *= a
                mask[:, :, -1 - t, :] *= a
                mask[:, :, :, t] *= a
                mask[:, :, :, -1 - t] *= a
            region = (slice(None), slice(None), slice(y1 * scale, y1 * scale + ps.shape[2]),
                      slice(x1 * scale, x1 * scale + ps.shape[3]))  # fmt: skip
            out[region] += ps * mask
            weight[region] += mask
    return out / weight


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = REPO_ROOT.parent / "shared" / "datasets" / "Set14" / "HR" / "baboon.png"
    parser.add_argument("--image", type=Path, default=default)
    parser.add_argument("--model", default="edsr_baseline_x2")
    parser.add_argument("--tile", type=int, default=96, help="tile size in LR pixels (ComfyUI: 512)")
    parser.add_argument("--crop", type=int, default=240, help="LR crop of the image, to keep it quick")
    parser.add_argument("--overlaps", type=int, nargs="+", default=[8, 16, 32, 36, 48, 72])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = edsr_lib.create_model(args.model, pretrained=True)
    scale = model.scales[-1]
    x = to_tensor(read_image(args.image))[:, :3, : args.crop, : args.crop]
    radius = model.receptive_radius(scale)
    with torch.inference_mode():
        one = model(x, scale=scale)

        def fn(t: torch.Tensor) -> torch.Tensor:
            return model(t, scale=scale)

        height, width = x.shape[-2:]
        print(
            f"`{model.pretrained_cfg.name}` x{scale}, receptive radius {radius} LR px; {height}x{width} LR crop of "
            f"{args.image.name}, {args.tile} px tiles, {args.threads} thread{'s' if args.threads > 1 else ''}"
        )
        print()
        print(
            "| Overlap (LR px) | Cropped tiles (edsr-lib), levels | Blended tiles (ComfyUI's scheme), levels "
            "| Blended, PSNR vs one pass |"
        )
        print("| ---: | ---: | ---: | ---: |")
        ref = to_uint8(one).astype(np.int16)
        for overlap in args.overlaps:
            cropped = edsr_lib.upscale(model, x, scale, tile=args.tile, tile_overlap=overlap)
            blend = feathered(fn, x, scale, args.tile, overlap)
            d_crop = np.abs(to_uint8(cropped).astype(np.int16) - ref).max()
            d_blend = np.abs(to_uint8(blend).astype(np.int16) - ref)
            mse = ((blend.clamp(0, 1) - one.clamp(0, 1)) ** 2).mean().item()
            psnr = 10 * np.log10(1 / mse) if mse > 0 else float("inf")
            name = f"{overlap} (the radius)" if overlap == radius else str(overlap)
            print(f"| {name} | {d_crop} | {d_blend.max()} | {psnr:.1f} dB |")


if __name__ == "__main__":
    main()
