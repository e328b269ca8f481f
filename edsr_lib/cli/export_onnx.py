"""``edsr-lib export-onnx MODEL OUT.onnx [--scale S]``: write a model as ONNX, checked with onnxruntime."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``export-onnx`` subcommand."""
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (dynamic batch, height and width)",
        description=(
            "Export a model at one scale to ONNX: input 'lr' (float32 NxCxHxW in [0, 1]), output 'sr'. "
            "Batch, height and width are dynamic. The file is checked against PyTorch with onnxruntime "
            '(within 1e-4) before it is written. Needs the onnx extra: pip install "edsr-lib[onnx]".'
        ),
    )
    parser.add_argument(
        "model", metavar="MODEL", help="registered model (pretrained weights) or a save_pretrained folder"
    )
    parser.add_argument("output", metavar="OUT.onnx", help="the file to write")
    parser.add_argument("--scale", type=int, help="the scale to export (required for MDSR: one file per scale)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Export the model and report what was written."""
    from ..export import export_onnx
    from ..inference import load_model

    model = load_model(args.model)
    scale = model.resolve_scale(args.scale)
    path = export_onnx(model, args.output, scale, opset=args.opset, check=not args.no_check)
    checked = "" if args.no_check else " (onnxruntime matches PyTorch within 1e-4)"
    print(f"wrote {path}: x{scale}, dynamic batch/height/width{checked}")
    return 0
