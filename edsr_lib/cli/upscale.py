"""``edsr-lib upscale INPUT... -o OUT``: upscale image files with a model.

A thin shell over :func:`edsr_lib.upscale`: it reads each image (EXIF orientation
applied), upscales it (grayscale stays grayscale, alpha is resized with MATLAB bicubic)
and writes ``<stem>_x<scale>.<format>`` into the output folder, atomically. A file that
cannot be read is reported in one line and skipped; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import CLIError


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'auto', got {value!r}") from None
    if tile < 1:
        raise argparse.ArgumentTypeError(f"the tile size must be positive, got {tile}")
    return tile


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``upscale`` subcommand."""
    parser = subparsers.add_parser(
        "upscale",
        help="upscale image files",
        description=(
            "Upscale images with an EDSR/MDSR model. INPUT may be files, folders (their images, not recursive) "
            "or glob patterns. Each result is written to OUT/<stem>_x<scale>.<format>. Grayscale images stay "
            "grayscale (the model's three outputs are averaged); an alpha channel is resized with MATLAB bicubic."
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
    parser.add_argument("--scale", type=int, help="the scale (needed for multi-scale models such as MDSR)")
    parser.add_argument(
        "--tile",
        type=_tile,
        metavar="N|auto",
        help="process big images in tiles of N LR pixels (exact: same result as one pass), "
        "or 'auto' to pick the size from free memory",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--half", action="store_const", const="fp16", help="float16 autocast (CUDA only)")
    precision.add_argument(
        "--bf16", dest="half", action="store_const", const="bf16", help="bfloat16 autocast (CUDA only)"
    )
    parser.add_argument("--format", choices=("png", "jpg", "webp"), default="png", help="output format (default png)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.set_defaults(func=run)
    return parser


def _collect(sources: list[str]) -> tuple[list[Path], list[str]]:
    """Expand each source on its own, so that one bad source does not stop the others."""
    from ..io import list_images

    files: dict[Path, None] = {}
    bad: list[str] = []
    for source in sources:
        try:
            files.update(dict.fromkeys(list_images(source)))
        except (FileNotFoundError, ValueError) as exc:
            print(f"edsr-lib upscale: error: {exc}", file=sys.stderr)
            bad.append(source)
    return list(files), bad


def run(args: argparse.Namespace) -> int:
    """Upscale every input image; returns 0, or 1 if some could not be processed."""
    import torch
    from tqdm.auto import tqdm

    from ..inference import load_model, upscale
    from ..io import ImageReadError, read_image, write_image

    files, failed = _collect(args.inputs)
    if not files:
        raise CLIError("no images to upscale")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda was given but CUDA is not available")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be positive, got {args.batch_size}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.half and device.type != "cuda":
        raise CLIError("--half and --bf16 need CUDA (half precision is not supported on the CPU)")

    model = load_model(args.model).to(device)
    scale = model.resolve_scale(args.scale)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {path: out_dir / f"{path.stem}_x{scale}.{args.format}" for path in files}
    seen: dict[Path, Path] = {}
    for path, target in targets.items():
        if target in seen:
            raise CLIError(f"{seen[target]} and {path} would both be written to {target}; upscale them separately")
        seen[target] = path

    written = 0
    bar = tqdm(files, unit="image", desc="upscale", disable=None)
    for path in bar:
        try:
            image = read_image(path)
            result = upscale(
                model,
                image,
                scale,
                tile=args.tile,
                self_ensemble=args.self_ensemble,
                batch_size=args.batch_size,
                device=device,
                half=args.half or False,
                progress=not bar.disable,
            )
            write_image(targets[path], result)
            written += 1
        except (ImageReadError, ValueError, OSError) as exc:
            failed.append(str(path))
            bar.write(f"edsr-lib upscale: error: {exc}", file=sys.stderr)
    bar.close()

    print(f"wrote {written} image{'s' * (written != 1)} to {out_dir}")
    if failed:
        print(f"edsr-lib upscale: {len(failed)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
