"""``edsr-lib export-onnx MODEL OUT.onnx [--scale S]``: ``edsr-lib export --format onnx``, under its first name."""

from __future__ import annotations

import argparse
from typing import Any

from .export import add_arguments


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``export-onnx`` subcommand (an alias of ``export --format onnx``)."""
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (dynamic batch, height and width); same as export --format onnx",
        description=(
            "Export a model at one scale to ONNX: input 'lr' (float32 NxCxHxW in [0, 1]), output 'sr'. "
            "Batch, height and width are dynamic. The file is checked against PyTorch with onnxruntime "
            '(within 1e-4) before it is written. Needs the onnx extra: pip install "edsr-lib[onnx]". '
            "Same as edsr-lib export --format onnx."
        ),
    )
    add_arguments(parser, choose_format=False)
    return parser
