"""``edsr-lib make-lr HR_DIR OUT_DIR --scale S``: make benchmark LR images with MATLAB's bicubic.

Each HR image is cropped to a multiple of ``S`` (modcrop) and shrunk by ``1/S`` with
:func:`edsr_lib.imresize` in uint8 semantics, which reproduces the official
``LR_bicubic`` files of Set5, Set14 and DIV2K byte for byte. The result is written as
``<stem>x<S>.png``, the benchmark's naming.

``--noise SIGMA`` and ``--jpeg Q`` then degrade each LR image (noise first, seeded per image
by ``--seed`` and the file's stem, then a JPEG round trip; see
:class:`edsr_lib.ops.degrade.LRDegradation`); the result is still written as PNG, so
``evaluate`` reads exactly the degraded pixels. ``evaluate`` takes the same options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import CLIError, add_max_pixels


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``make-lr`` subcommand."""
    parser = subparsers.add_parser(
        "make-lr",
        help="make LR images from HR with MATLAB-exact bicubic downsampling",
        description=(
            "For every image in HR_DIR: crop to a multiple of the scale, shrink with MATLAB's bicubic imresize "
            "(uint8 semantics, as the official LR_bicubic files) and write OUT_DIR/<stem>x<S>.png."
        ),
    )
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images (or a file or glob pattern)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the LR images to (created if needed)")
    parser.add_argument("--scale", "-s", type=int, required=True, metavar="S", help="the integer downscaling factor")
    add_degrade_options(parser)
    add_max_pixels(parser)
    parser.set_defaults(func=run)
    return parser


def add_degrade_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--noise``, ``--jpeg`` and ``--seed``: the degradation of the LR images (make-lr and evaluate)."""
    g = parser.add_argument_group("degraded LR (applied to the bicubic LR: noise first, then JPEG)")
    g.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="add Gaussian noise of standard deviation SIGMA (0..255 levels), seeded per image",
    )
    g.add_argument("--jpeg", type=int, metavar="Q", help="save and reload as JPEG of quality Q (1..95, Pillow)")
    g.add_argument("--seed", type=int, default=0, help="seed of the noise (with each image's file stem; default 0)")


def degradation(args: argparse.Namespace) -> Any:
    """The :class:`~edsr_lib.ops.degrade.LRDegradation` of the options, or ``None`` when they degrade nothing."""
    from ..ops.degrade import LRDegradation

    try:
        degrade = LRDegradation(noise=args.noise, jpeg=args.jpeg, seed=args.seed)
    except ValueError as err:
        raise CLIError(f"--noise/--jpeg: {err}") from None
    return degrade if degrade.active else None


def run(args: argparse.Namespace) -> int:
    """Write the LR image of every HR image; returns the exit status (1 if any image failed).

    An image that cannot be made (animated, not an image, smaller than the scale) is reported
    in one line and the others go on, as in ``edsr-lib upscale``; the run stops at a full disk.
    """
    import errno

    from tqdm.auto import tqdm

    from .._files import missing_folders, remove_empty_folders
    from ..io import ImageReadError, list_images, pixel_limit, read_image, write_image
    from ..jobs import check_output_dir
    from ..ops import bicubic_lr, lr_file_name

    scale = args.scale
    degrade = degradation(args)
    if scale < 2:
        raise CLIError(f"--scale must be an integer of at least 2, got {scale}")
    files = list_images(args.hr_dir)
    out_dir = Path(args.out_dir)
    targets: dict[Path, Path] = {}
    for path in files:
        target = out_dir / lr_file_name(path.stem, scale)
        if target in targets:
            raise CLIError(f"{targets[target]} and {path} would both be written to {target}")
        targets[target] = path

    made = missing_folders(out_dir)  # a run that writes nothing leaves no empty folder
    failed: list[Path] = []
    bar = tqdm(targets.items(), total=len(targets), unit="image", desc=f"make-lr x{scale}", disable=None)
    try:
        check_output_dir(out_dir)
        with pixel_limit(args.max_pixels):
            for target, path in bar:
                try:
                    hr = read_image(path)
                    if min(hr.shape[:2]) < scale:
                        raise ValueError(f"{path} is {hr.shape[0]}x{hr.shape[1]}, smaller than the scale {scale}")
                    lr = bicubic_lr(hr, scale)
                    write_image(target, degrade.apply(lr, path.stem) if degrade is not None else lr)
                except (ImageReadError, ValueError, OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise  # every later image would fail the same way
                    failed.append(path)
                    reason = " ".join(str(exc).split())
                    tqdm.write(
                        f"edsr-lib make-lr: error: {reason if str(path) in reason else f'{path}: {reason}'}",
                        file=sys.stderr,
                    )
    finally:
        bar.close()
        remove_empty_folders(made)
    written = len(targets) - len(failed)
    what = f", {degrade.describe()}" if degrade is not None else ""
    print(
        f"wrote {written} LR image{'s' * (written != 1)} (x{scale}{what}) to {out_dir}"
        + (f" ({len(failed)} failed)" if failed else "")
    )
    if failed:
        print(f"edsr-lib make-lr: {len(failed)} image(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0
