"""``edsr-lib export [--format onnx|ncnn] MODEL OUT``: write a model as ONNX or NCNN, checked against PyTorch."""

from __future__ import annotations

import argparse
from typing import Any

from . import CLIError

#: What ``--format`` takes; ``export-onnx`` is ``export --format onnx``.
EXPORT_FORMATS = ("onnx", "ncnn")


def add_arguments(parser: argparse.ArgumentParser, *, choose_format: bool = True) -> None:
    """The arguments of ``export`` (and, without ``--format``, of its alias ``export-onnx``)."""
    parser.add_argument(
        "model", metavar="MODEL", help="registered model (pretrained weights) or a save_pretrained folder"
    )
    if choose_format:
        where = "onnx: the .onnx file to write; ncnn: a folder for <name>.param and <name>.bin, or a .param path"
        parser.add_argument("output", metavar="OUT", help=where)
    else:
        parser.add_argument("output", metavar="OUT.onnx", help="the file to write")
    if choose_format:
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="the file format (default onnx)")
    parser.add_argument("--scale", type=int, help="the scale to export (required for MDSR: one file per scale)")
    parser.add_argument("--opset", type=int, help="onnx: ONNX opset version (default: the exporter's)")
    if choose_format:
        parser.add_argument(
            "--name", help="ncnn: the file stem in OUT (default: the model's name with _x<scale>, as upscayl reads it)"
        )
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    parser.set_defaults(func=run, format="onnx", name=None)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or NCNN (upscayl, realesrgan-ncnn-vulkan)",
        description=(
            "Export a model at one scale. onnx: input 'lr' (float32 NxCxHxW in [0, 1]), output 'sr', dynamic "
            "batch, height and width, checked with onnxruntime within 1e-4 (the onnx extra). ncnn: <name>.param and "
            "<name>.bin with the blobs 'data' and 'output' that upscayl and realesrgan-ncnn-vulkan look up, the "
            "scale in the file name as upscayl reads it, checked with the ncnn package within 1e-3 (the ncnn extra: "
            'pip install "edsr-lib[ncnn]").'
        ),
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Export the model and report what was written."""
    from ..export import check_opset, export_ncnn, export_onnx
    from ..inference import load_model

    # what the format does not use is refused rather than ignored, before the model is loaded
    if args.format == "ncnn" and args.opset is not None:
        raise CLIError("--opset applies to --format onnx; an NCNN file has no opset")
    if args.format == "onnx" and args.name is not None:
        raise CLIError("--name applies to --format ncnn; for onnx, OUT is the file's name")
    if args.name is not None and args.output.endswith(".param"):
        raise CLIError(f"--name names the files in a folder; OUT {args.output} names them already")
    check_opset(args.opset)
    model = load_model(args.model)
    if args.scale is None and len(model.scales) > 1:
        scales = ", ".join(map(str, model.scales))
        raise CLIError(f"{args.model} serves the scales {scales}: pass --scale, one of them (one file per scale)")
    scale = model.resolve_scale(args.scale)
    check = not args.no_check
    if args.format == "ncnn":
        param, weights = export_ncnn(model, args.output, scale, name=args.name, check=check)
        checked = " (the ncnn package matches PyTorch within 1e-3)" if check else ""
        print(f"wrote {param} and {weights}: x{scale}, blobs data/output{checked}")
        return 0
    path = export_onnx(model, args.output, scale, opset=args.opset, check=check)
    checked = " (onnxruntime matches PyTorch within 1e-4)" if check else ""
    print(f"wrote {path}: x{scale}, dynamic batch/height/width{checked}")
    return 0
