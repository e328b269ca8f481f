"""``edsr-lib upscale INPUT... -o OUT``: upscale image and video files with a model.

A thin shell over :func:`edsr_lib.jobs.upscale_folder`, the folder engine Python and Ray
use too: this module turns options into its arguments, its messages into lines of
``edsr-lib upscale: ...`` on standard error, its summary into the last line and the exit
status (0; 1 if any input failed or the run stopped early; 130 after Ctrl-C and 143 after
SIGTERM, once the writes in flight are done). Videos (:data:`edsr_lib.video.VIDEO_SUFFIXES`)
go through :func:`edsr_lib.upscale_video` in the same run (:class:`edsr_lib.video.VideoKind`),
with ``--vcodec``, ``--crf``, ``--preset`` and ``--pix-fmt``.

This module imports nothing heavy at import time, so ``--help`` does not load torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._signals import sigterm_as_interrupt
from ..options import BACKENDS, OUTPUT_FORMATS, UpscaleOptions
from . import CLIError, add_max_pixels

if TYPE_CHECKING:
    import torch


def default_device(args: argparse.Namespace) -> str | None:
    """``--device``; else the CPU for a runtime (``--int8``, ``--backend openvino``), or ``None``."""
    runtime = args.int8 or args.backend not in (None, "torch", "auto")
    return args.device or ("cpu" if runtime else None)


def _count_or(words: dict[str, Any], what: str) -> Callable[[str], Any]:
    """An argparse type: a positive number of ``what``, or one of ``words`` (word -> value)."""
    choices = " or ".join(repr(word) for word in words)

    def parse(value: str) -> Any:
        if value in words:
            return words[value]
        try:
            count = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {what}, {choices}, got {value!r}") from None
        if count < 1:
            raise argparse.ArgumentTypeError(f"the number of {what} must be positive, got {count}")
        return count

    return parse


parse_tile = _count_or({"auto": "auto", "none": None}, "pixels")


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
        help="upscale image and video files",
        description=(
            "Upscale images with an EDSR/MDSR model. INPUT may be files, folders or glob patterns. Each result "
            "is written to OUT/<stem><suffix>.<format>. Gray stays gray, alpha is resized with MATLAB bicubic, "
            "16-bit stays 16-bit; the ICC profile, EXIF and DPI are carried over. Big images are tiled "
            "automatically (exact: the same result as one pass). A file that fails is reported in one line and "
            "the others go on; the exit status is 1 if any failed. Under torchrun, each process takes its "
            "share of the files (RANK/WORLD_SIZE) and its own device (LOCAL_RANK). Videos are written to "
            "OUT/<stem><suffix>.<their suffix> with their sound, timing, colours and metadata; an interrupted "
            "video resumes from its last complete segment when the command is run again."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders or glob patterns")
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
        type=parse_tile,
        default="auto",
        metavar="N|auto|none",
        help="tiles of N LR pixels (exact: same result as one pass); 'auto' (default) tiles when one pass "
        "would exceed the memory budget; 'none' forces one pass",
    )
    parser.add_argument("--self-ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    parser.add_argument(
        "--seamless",
        action="store_true",
        help="treat each image as periodic (a texture): the result tiles seamlessly, exactly, with no blending",
    )
    parser.add_argument(
        "--device", metavar="DEVICE", help="any torch device: cpu, cuda, cuda:1, mps, xpu (default: the accelerator)"
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp32",
        dest="half",
        action="store_const",
        const="fp32",
        help="the exact float32 result (default: bf16 on a CPU with native bf16, half precision on a GPU, else fp32)",
    )
    precision.add_argument("--half", action="store_const", const="fp16", help="float16 autocast (accelerators)")
    precision.add_argument(
        "--bf16",
        dest="half",
        action="store_const",
        const="bf16",
        help="bfloat16 autocast (accelerators, and CPUs with native bf16)",
    )
    precision.add_argument(
        "--int8",
        action="store_true",
        help="the int8 model shipped for the weights (EDSR-baseline), in OpenVINO on the CPU (openvino extra): "
        "measured 1.3x+ faster than fp32 and within 0.05 dB",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what computes the network: auto (default: the fastest installed here, measured once and "
        "remembered; PyTorch on a GPU); torch (any device); openvino (default with --int8) or onnxruntime "
        "(CPU; the model is exported once and cached)",
    )
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, help="output format (default png; tif for float and 32-bit images)"
    )
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality, 1-100 (default 95)")
    parser.add_argument(
        "--suffix",
        default="_x{scale}",
        help="added to each output's stem (a name, no '/' or '..'); {scale} is the factor, {model} the model's "
        "name (default _x{scale})",
    )
    add_max_pixels(parser)
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
    video = parser.add_argument_group("videos")
    video.add_argument(
        "--vcodec", metavar="ENCODER", help="FFmpeg video encoder (default: the input's codec family, else libx264)"
    )
    video.add_argument("--crf", type=int, metavar="N", help="constant rate factor, lower is better (default 18)")
    video.add_argument("--preset", metavar="NAME", help="encoder speed preset (default medium for x264 and x265)")
    video.add_argument(
        "--pix-fmt", metavar="FMT", help="encoded pixel format (default: the input's chroma and bit depth)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Upscale every input with :func:`edsr_lib.jobs.upscale_folder`; returns the exit status."""
    from .._device import resolve_half
    from ..jobs import Interrupted, job_device, upscale_folder
    from ..video import VideoKind

    if args.workers < 1:
        raise CLIError(f"--workers must be positive, got {args.workers}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CLIError(f"--quality must be in 1..100, got {args.quality}")
    device = job_device(default_device(args))
    try:
        resolve_half(args.half if args.half in ("fp16", "bf16") else False, device)
    except ValueError:
        raise CLIError(_PRECISION_ERRORS[args.half].format(device=device)) from None
    try:
        options = UpscaleOptions(
            scale=args.scale,
            outscale=args.outscale,
            device=device,
            backend=args.backend,
            precision="int8" if args.int8 else args.half,
            tile=args.tile,
            self_ensemble=args.self_ensemble,
            wrap=args.seamless,
            batch_size=args.batch_size,
        )
    except ValueError as exc:
        raise CLIError(str(exc).replace("batch_size", "--batch-size")) from None

    def log(line: str) -> None:
        _write(f"edsr-lib upscale: {line}")

    fast_default = args.half is None and not args.int8  # the Upscaler's fast default, said once

    with sigterm_as_interrupt() as signals:
        try:
            summary = upscale_folder(
                args.inputs,
                args.output,
                model=args.model,
                options=options,
                format=args.format,
                quality=args.quality,
                suffix=args.suffix,
                recursive=args.recursive,
                skip_existing=args.skip_existing,
                shard=args.shard,
                workers=args.workers,
                max_pixels=args.max_pixels,
                log=log,
                kinds=[VideoKind(vcodec=args.vcodec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, log=log)],
            )
        except ValueError as exc:  # the API's words for an option, in the command line's
            raise CLIError(str(exc).replace("pass scale=", "pass --scale")) from None
        except Interrupted as exc:
            print(exc.summary)
            left = len(exc.summary.left)
            print(
                f"edsr-lib upscale: {signals.name or 'interrupted'}: {left} file{'s' * (left != 1)} left; "
                "rerun with --skip-existing to finish",
                file=sys.stderr,
            )
            return 143 if signals.name == "SIGTERM" else 130
    if fast_default and summary.ran:  # once, after the files: a refused option or file is the first line if any
        log(_fast_default_line(summary.ran, args.backend, device))
    print(summary)
    failed = [str(r.job.source) for r in summary.failed] + [str(p) for p in summary.clashes]
    if failed or summary.errors:
        count = len(failed) + len(summary.errors)
        print(f"edsr-lib upscale: {count} input(s) failed: {', '.join(failed + summary.errors)}", file=sys.stderr)
    if summary.stopped:
        left = len(summary.left)
        print(
            f"edsr-lib upscale: error: stopped: {summary.stopped}; {left} file{'s' * (left != 1)} left "
            "(the files written are complete; free space and rerun with --skip-existing)",
            file=sys.stderr,
        )
    return 0 if summary.ok else 1


def _fast_default_line(ran: str, asked_backend: str | None, device: torch.device) -> str:
    """The line saying which backend and precision the fast default ran (``ran`` is ``Summary.ran``)."""
    backend, precision = ran.split()
    why = "native on this CPU" if device.type == "cpu" else "the convention on accelerators"
    said = f"{precision} ({why}; --fp32 for the exact float32 result)" if precision != "fp32" else "fp32"
    how = " (the fastest installed here, measured once; --backend to choose)" if asked_backend in (None, "auto") else ""
    return f"precision {said}, backend {backend}{how}"


#: What the precision flags need, in the command line's words (``_device.resolve_half`` owns the rule).
_PRECISION_ERRORS = {
    "fp16": "--half (float16) runs on CUDA and other accelerators, not on {device}; on a CPU use --bf16 "
    "(where the CPU has native bf16) or neither flag",
    "bf16": "--bf16 on {device} needs native bf16 (AVX-512 BF16 or AMX), which this CPU lacks; leave it out "
    "(float32), or run on a GPU with --device cuda",
}


def _write(line: str) -> None:
    """Print a line to standard error without breaking a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
