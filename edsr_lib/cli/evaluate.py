"""``edsr-lib evaluate --model M --data DIR... --scale S``: PSNR/SSIM on benchmark sets.

A thin shell over :func:`edsr_lib.evaluate`: the model is loaded once and scored on each
set folder in turn, with a progress bar over the images (when stderr is a terminal);
the results are printed as a table and, with ``--json``, written to a file: one object
(with top-level ``psnr`` and ``ssim``) for one set, a list of such objects for several.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import CLIError, add_max_pixels
from .make_lr import add_degrade_options, degradation
from .upscale import BACKENDS, default_device, parse_tile


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="PSNR/SSIM of a model (or bicubic) on benchmark sets",
        description=(
            "Score a model on image sets under the paper's protocol. Each DIR holds HR/ and optionally "
            "LR_bicubic/X<S>/<name>x<S>.png; LR images missing there are made with MATLAB-exact bicubic. "
            "'--model bicubic' scores bicubic upsampling, the baseline of every table."
        ),
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="NAME|DIR|bicubic",
        help="registered model (with its pretrained weights), a folder from save_pretrained, or 'bicubic'",
    )
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR", help="set folders, each holding HR/")
    parser.add_argument("--scale", required=True, type=int, help="the upscaling factor")
    parser.add_argument("--self-ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--protocol",
        choices=("benchmark", "div2k"),
        default="benchmark",
        help="benchmark: Y channel, crop scale pixels (default); div2k: RGB, crop scale+6",
    )
    parser.add_argument(
        "--tile",
        type=parse_tile,
        default="auto",
        metavar="N|auto|none",
        help="tiles of N LR pixels for big images; auto (default): as fits the memory budget; none: one pass "
        "(same scores either way)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results (with per-image rows) to FILE")
    parser.add_argument(
        "--device", metavar="DEVICE", help="any torch device: cpu, cuda, cuda:1, mps, xpu (default: the accelerator)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what computes the network, as for 'edsr-lib upscale' (default torch; openvino with --int8)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="score the int8 model shipped for the weights (OpenVINO, on the CPU)"
    )
    add_degrade_options(parser)
    add_max_pixels(parser)
    parser.set_defaults(func=run)
    return parser


def format_table(results: list[dict[str, Any]]) -> str:
    """The results of :func:`edsr_lib.evaluate` as a text table, one row per set."""
    rows = [("set", "scale", "PSNR", "SSIM", "images", "seconds")]
    for r in results:
        n_images = str(len(r["images"]))
        rows.append(
            (r["set"], f"x{r['scale']}", f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", n_images, f"{r['seconds']:.1f}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # the set name reads left-aligned, numbers right-aligned
    lines = []
    for row in rows:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Evaluate the model on every set folder; print the table and write the JSON file."""
    from ..evaluation import BICUBIC_MODEL, evaluate
    from ..hub import atomic_write
    from ..inference import load_model, resolve_device
    from ..io import pixel_limit

    try:
        device = resolve_device(default_device(args))
    except ValueError as err:
        raise CLIError(f"--device: {err}") from None
    degrade = degradation(args)
    # Load once for all sets; the bicubic baseline has no model.
    model = args.model if args.model == BICUBIC_MODEL else load_model(args.model).to(device)

    results = []
    with pixel_limit(args.max_pixels):
        for data in args.data:
            try:
                result = evaluate(
                    model,
                    data,
                    args.scale,
                    self_ensemble=args.self_ensemble,
                    tile=args.tile,
                    protocol=args.protocol,
                    device=None if args.model == BICUBIC_MODEL else device,
                    backend=args.backend,
                    int8=args.int8,
                    progress=sys.stderr.isatty(),
                    degrade=degrade,
                )
            except MemoryError as err:  # evaluate names the image; one line, no traceback
                raise CLIError(str(err)) from None
            result["model"] = args.model
            results.append(result)

    self_ensemble = " with self-ensemble" if args.self_ensemble else ""
    int8 = ", int8" if args.int8 else ""
    degraded = f", LR {degrade.describe()}" if degrade is not None else ""
    print(f"model {args.model}{self_ensemble}{int8}, protocol {args.protocol}{degraded}")
    print(format_table(results))
    if args.json:
        payload = results[0] if len(results) == 1 else results
        atomic_write(args.json, (json.dumps(payload, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0
