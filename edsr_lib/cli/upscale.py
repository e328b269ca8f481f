"""``edsr-lib upscale INPUT... -o OUT``: upscale image files with a model.

A thin shell over :func:`edsr_lib.upscale` on PIL images: each file is decoded by
:func:`edsr_lib.io.load_image` (EXIF orientation applied, mode and metadata kept),
upscaled (gray stays gray, alpha is resized with MATLAB bicubic, 16-bit stays 16-bit,
memory bounded by automatic tiling) and written to ``<stem><suffix>.<format>`` in the
output folder, atomically. Decoding and encoding run in worker threads beside the
model, and images of one size and mode are batched. Any failure on one file is one line
naming the file and the reason; the run goes on, ends with a summary and exits 1 if
anything failed.

This module imports nothing heavy at import time, so ``--help`` does not load torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import CLIError

FORMATS = ("png", "jpg", "webp", "tif")


def _tile(value: str) -> int | str | None:
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, 'auto' or 'none', got {value!r}") from None
    if tile < 1:
        raise argparse.ArgumentTypeError(f"the tile size must be positive, got {tile}")
    return tile


def _outscale(value: str) -> float:
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 1, got {value!r}") from None
    if not factor > 1 or factor == float("inf"):
        raise argparse.ArgumentTypeError(f"the output scale must be a finite number above 1, got {value}")
    return factor


def _shard(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {value!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {value!r}")
    return i, n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``upscale`` subcommand."""
    parser = subparsers.add_parser(
        "upscale",
        help="upscale image files",
        description=(
            "Upscale images with an EDSR/MDSR model. INPUT may be files, folders or glob patterns. Each result "
            "is written to OUT/<stem><suffix>.<format>. Gray stays gray, alpha is resized with MATLAB bicubic, "
            "16-bit stays 16-bit; the ICC profile, EXIF and DPI are carried over. Big images are tiled "
            "automatically (exact: the same result as one pass). A file that fails is reported in one line and "
            "the others go on; the exit status is 1 if any failed. Under torchrun, each process takes its "
            "share of the files (RANK/WORLD_SIZE) and its own device (LOCAL_RANK)."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument(
        "--model",
        default="edsr_baseline_x2",
        metavar="NAME|DIR",
        help="registered model (with its pretrained weights) or a folder from save_pretrained "
        "(default: edsr_baseline_x2)",
    )
    factor = parser.add_mutually_exclusive_group()
    factor.add_argument("--scale", type=int, help="the scale (needed for multi-scale models such as MDSR)")
    factor.add_argument(
        "--outscale",
        type=_outscale,
        metavar="F",
        help="any output factor above 1 (1.5, 8): the model scales that reach it, then MATLAB bicubic",
    )
    parser.add_argument(
        "--tile",
        type=_tile,
        default="auto",
        metavar="N|auto|none",
        help="tiles of N LR pixels (exact: same result as one pass); 'auto' (default) tiles when one pass "
        "would exceed the memory budget; 'none' forces one pass",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--device", metavar="DEVICE", help="any torch device: cpu, cuda, cuda:1, mps, xpu (default: the accelerator)"
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_const", const="fp16", help="float16 autocast (accelerators)")
    precision.add_argument(
        "--bf16",
        dest="half",
        action="store_const",
        const="bf16",
        help="bfloat16 autocast (accelerators, and CPUs with native bf16)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default png; tif for float and 32-bit images)"
    )
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality, 1-100 (default 95)")
    parser.add_argument(
        "--suffix",
        default="_x{scale}",
        help="added to each output's stem; {scale} is the factor (default _x{scale})",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="tiles, or same-size images, per pass (default 4)")
    parser.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist alone")
    parser.add_argument(
        "--recursive", action="store_true", help="walk folders into subfolders; OUT mirrors the input tree"
    )
    parser.add_argument(
        "--shard", type=_shard, metavar="I/N", help="process only the I-th of N shares of the files (from 0)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="threads decoding and encoding beside the model (default 2)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Upscale every input with :func:`edsr_lib.jobs.upscale_folder`; returns 0, or 1 if some input failed."""
    from ..jobs import Interrupted, upscale_folder

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be positive, got {args.batch_size}")
    if args.workers < 1:
        raise CLIError(f"--workers must be positive, got {args.workers}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CLIError(f"--quality must be in 1..100, got {args.quality}")

    def log(line: str) -> None:
        tqdm_write(f"edsr-lib upscale: {line}")

    try:
        summary = upscale_folder(
            args.inputs,
            args.output,
            model=args.model,
            scale=args.scale,
            outscale=args.outscale,
            format=args.format,
            quality=args.quality,
            suffix=args.suffix,
            recursive=args.recursive,
            skip_existing=args.skip_existing,
            shard=args.shard,
            workers=args.workers,
            batch_size=args.batch_size,
            device=args.device,
            half=args.half or False,
            tile=args.tile,
            self_ensemble=args.self_ensemble,
            log=log,
        )
    except Interrupted as exc:
        print(exc.summary)
        print("edsr-lib upscale: interrupted; rerun with --skip-existing to finish", file=sys.stderr)
        return 130
    print(summary)
    failed = [str(r.job.source) for r in summary.failed] + [str(p) for p in summary.clashes]
    if failed or summary.errors:
        count = len(failed) + len(summary.errors)
        print(f"edsr-lib upscale: {count} input(s) failed: {', '.join(failed + summary.errors)}", file=sys.stderr)
    if summary.stopped:
        print(f"edsr-lib upscale: error: stopped: {summary.stopped}", file=sys.stderr)
    return 0 if summary.ok else 1


def tqdm_write(line: str) -> None:
    """Print a line to standard error without breaking a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
