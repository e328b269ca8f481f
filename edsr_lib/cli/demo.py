"""``edsr-lib demo [--host] [--port] [--share]``: serve the page to try the models (:mod:`edsr_lib.demo`).

This module imports nothing heavy at import time, so ``--help`` loads neither torch nor Gradio.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import CLIError


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="serve a page to try the models in a browser (Gradio)",
        description=(
            "Serve a page where one drops an image, picks a model, runs it and compares before and after with "
            "a slider; the download is the file `edsr-lib upscale` writes. One job runs at a time, the others "
            "wait in a queue. Needs the demo extra: pip install 'edsr-lib[demo]'."
        ),
    )
    parser.add_argument("--host", metavar="ADDRESS", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="port (default the first free one from 7860)")
    parser.add_argument(
        "--share", action="store_true", help="also serve through a public gradio.live link (reaches the network)"
    )
    parser.add_argument(
        "--max-megapixels", type=_positive, default=2.0, metavar="MP", help="largest input image (default 2)"
    )
    parser.add_argument(
        "--max-file-mb", type=_positive, default=20.0, metavar="MB", help="largest upload in MB (default 20)"
    )
    parser.add_argument(
        "--device", metavar="DEVICE", help="any torch device: cpu, cuda, cuda:1, mps (default: the accelerator)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve the page until interrupted."""
    try:
        from .. import demo
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("gradio"):
            raise
        raise CLIError("the demo needs Gradio: pip install 'edsr-lib[demo]'") from None
    if args.port is not None and not 0 < args.port < 65536:
        raise CLIError(f"--port must be in 1..65535, got {args.port}")
    limits = demo.Limits(max_megapixels=args.max_megapixels, max_file_mb=args.max_file_mb)
    demo.launch(args.host, args.port, share=args.share, limits=limits, device=args.device)
    return 0
