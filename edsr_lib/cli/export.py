"""``edsr-lib export [--format onnx|ncnn|coreml|executorch] MODEL OUT``: write a model for a runtime, checked."""

from __future__ import annotations

import argparse
from typing import Any

from . import CLIError

#: What ``--format`` takes; ``export-onnx`` is ``export --format onnx``.
EXPORT_FORMATS = ("onnx", "ncnn", "coreml", "executorch")
#: The precisions ``--precision`` takes per format (the first is the default).
PRECISIONS = {"onnx": ("fp32", "fp16", "bf16"), "ncnn": ("fp32",), "coreml": ("fp16", "fp32"), "executorch": ("fp32",)}
#: The largest input height and width by default, for the formats that fix one (``--max-size``).
MAX_SIZES = {"coreml": 2048, "executorch": 512}


def add_arguments(parser: argparse.ArgumentParser, *, choose_format: bool = True) -> None:
    """The arguments of ``export`` (and, without ``--format``, of its alias ``export-onnx``)."""
    parser.add_argument(
        "model", metavar="MODEL", help="registered model (pretrained weights) or a save_pretrained folder"
    )
    if choose_format:
        where = (
            "onnx: the .onnx file to write; ncnn: a folder for <name>.param and <name>.bin, or a .param path; "
            "coreml: the .mlpackage to make; executorch: the .pte file to write"
        )
        parser.add_argument("output", metavar="OUT", help=where)
    else:
        parser.add_argument("output", metavar="OUT.onnx", help="the file to write")
    if choose_format:
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help="the file format (default onnx)")
    parser.add_argument("--scale", type=int, help="the scale to export (required for MDSR: one file per scale)")
    parser.add_argument("--opset", type=int, help="onnx: ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        help="onnx: fp32 (default), fp16 (float16 input/output) or bf16 (float32 input/output), the last "
        "convolution kept in float32; coreml: fp16 (default, the Neural Engine's) or fp32",
    )
    parser.add_argument(
        "--io-names",
        choices=("edsr", "community"),
        default=None,
        help="onnx: edsr (default: lr/sr, dynamic batch) or community (input/output, 1x3xHxW with H and W "
        "dynamic, as chaiNNer, ComfyUI's TensorRT nodes and vs-mlrt expect)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        help="coreml, executorch: the largest input height and width (default 2048 and 512; ExecuTorch plans "
        "its memory for it)",
    )
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
        help="export a model to ONNX (fp32/fp16/bf16), NCNN (upscayl), Core ML or ExecuTorch",
        description=(
            "Export a model at one scale. onnx: input 'lr' (float32 NxCxHxW in [0, 1]), output 'sr', dynamic "
            "batch, height and width, checked with onnxruntime within 1e-4 (the onnx extra). ncnn: <name>.param and "
            "<name>.bin with the blobs 'data' and 'output' that upscayl and realesrgan-ncnn-vulkan look up, the "
            "scale in the file name as upscayl reads it, checked with the ncnn package within 1e-3 (the ncnn extra: "
            'pip install "edsr-lib[ncnn]"). --precision fp16|bf16 and --io-names community write the ONNX files '
            "GPU upscalers take (TensorRT: docs/speed.md). coreml: an .mlpackage (ML program, input 'input', output "
            "'output', fp16 but the last convolution; the coreml extra). executorch: a .pte with the XNNPACK "
            "delegate, checked with ExecuTorch's runtime within 1e-4 (the executorch extra)."
        ),
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Export the model and report what was written."""
    from ..export import check_opset, export_coreml, export_executorch, export_ncnn, export_onnx
    from ..inference import load_model

    # what the format does not use is refused rather than ignored, before the model is loaded
    if args.format == "ncnn" and args.opset is not None:
        raise CLIError("--opset applies to --format onnx; an NCNN file has no opset")
    if args.format == "onnx" and args.name is not None:
        raise CLIError("--name applies to --format ncnn; for onnx, OUT is the file's name")
    if args.name is not None and args.output.endswith(".param"):
        raise CLIError(f"--name names the files in a folder; OUT {args.output} names them already")
    if args.format in ("coreml", "executorch") and args.opset is not None:
        raise CLIError(f"--opset applies to --format onnx, not {args.format}")
    if args.precision is not None and args.precision not in PRECISIONS[args.format]:
        raise CLIError(f"--format {args.format} writes --precision {' or '.join(PRECISIONS[args.format])}")
    if args.io_names is not None and args.format != "onnx":
        raise CLIError("--io-names applies to --format onnx")
    if args.max_size is not None and args.format not in MAX_SIZES:
        raise CLIError(f"--max-size applies to --format {' or '.join(MAX_SIZES)}; {args.format} takes any size")
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
    precision = args.precision or PRECISIONS[args.format][0]
    if args.format == "coreml":
        max_size = args.max_size or MAX_SIZES["coreml"]
        path = export_coreml(model, args.output, scale, precision=precision, max_size=max_size, check=check)
        checked = " (spec, inputs, outputs and precisions checked; Core ML itself runs only on Apple systems)"
        print(f"wrote {path}: x{scale}, {precision}, input/output 1x{model.n_colors}xHxW, H, W <= {max_size}{checked}")
        return 0
    if args.format == "executorch":
        max_size = args.max_size or MAX_SIZES["executorch"]
        path = export_executorch(model, args.output, scale, max_size=max_size, check=check)
        checked = " (ExecuTorch's runtime matches PyTorch within 1e-4)" if check else ""
        print(f"wrote {path}: x{scale}, XNNPACK, input 1x{model.n_colors}xHxW, H, W <= {max_size}{checked}")
        return 0
    from ..export import IO_NAMES, ONNX_TOLERANCE

    io_names = args.io_names or "edsr"
    path = export_onnx(model, args.output, scale, opset=args.opset, check=check, precision=precision, io_names=io_names)
    runtime = "ONNX's reference evaluator" if precision == "bf16" else "onnxruntime"
    checked = f" ({runtime} matches the float32 model within {ONNX_TOLERANCE[precision]:g})" if check else ""
    input_name, output_name, batch_of_one = IO_NAMES[io_names]
    shape = f"1x{model.n_colors}xHxW" if batch_of_one else "dynamic batch/height/width"
    print(f"wrote {path}: x{scale}, {precision}, {input_name}/{output_name}, {shape}{checked}")
    return 0
