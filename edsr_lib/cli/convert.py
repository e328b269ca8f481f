"""``edsr-lib convert``: third-party checkpoints in, and the library's models out.

``edsr-lib convert SRC DST_DIR`` turns a third-party checkpoint into the library's format;
``edsr-lib convert --to LAYOUT SRC DST`` writes a library model in a third-party layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import CLIError

#: The layout names ``--layout`` and ``--to`` offer, spelled here so that ``--help`` needs no torch;
#: :data:`edsr_lib.convert.LAYOUTS` and ``WRITABLE_LAYOUTS`` own them (a test keeps the two equal).
LAYOUT_CHOICES = ("edsr-pytorch", "basicsr", "super-image", "torchsr")
WRITABLE_CHOICES = ("edsr-pytorch", "basicsr", "torchsr")
#: The flag that sets each setting a checkpoint may not hold.
_FLAGS = {"rgb_range": "--rgb-range", "rgb_mean": "--rgb-mean", "res_scale": "--res-scale"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``convert`` subcommand."""
    parser = subparsers.add_parser(
        "convert",
        help="convert an EDSR-PyTorch, torchSR, BasicSR or super-image checkpoint, or write one (--to)",
        description=(
            "Read a third-party EDSR/MDSR checkpoint (.pt, .pth or .safetensors), detect the model it holds "
            "and write it as model.safetensors + config.json. Official EDSR-PyTorch files are recognised by sha256. "
            "With --to, the other way: write a library model (a registered name with pretrained weights, or a "
            "saved folder) as a checkpoint file in the EDSR-PyTorch, BasicSR or torchSR layout."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="the checkpoint file (with --to: a model name or a saved folder)")
    parser.add_argument(
        "dst", metavar="DST", help="the directory to write model.safetensors and config.json (with --to: the file)"
    )
    parser.add_argument(
        "--to", choices=WRITABLE_CHOICES, help="write SRC, a library model, as a checkpoint file in this layout"
    )
    parser.add_argument("--variant", metavar="NAME", help="refuse unless the checkpoint holds this registered variant")
    parser.add_argument("--layout", choices=LAYOUT_CHOICES, help="the source layout, when the key names cannot tell")
    parser.add_argument("--res-scale", type=float, help="residual scaling, which checkpoints do not store")
    parser.add_argument("--rgb-range", type=float, help="the pixel range the checkpoint was trained in")
    parser.add_argument(
        "--rgb-mean",
        type=float,
        nargs=3,
        metavar=("R", "G", "B"),
        help="the dataset mean in [0, 1] that the checkpoint was trained with (BasicSR's rgb_mean option)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Convert ``args.src`` into ``args.dst`` (or write it in ``args.to``) and print what was done."""
    from ..convert import convert

    if args.to:
        return _write(args)
    overrides = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    model = convert(args.src, args.dst, layout=args.layout, variant=args.variant, **overrides)
    spec = model.conversion
    official = spec.official
    assumed_names = [name for name in _FLAGS if name in spec.assumed]  # in the order of the flags
    assumed = ", ".join(
        f"{name} {spec.assumed[name]:g}"
        if isinstance(spec.assumed[name], float)
        else f"{name} {_fmt(spec.assumed[name])}"
        for name in assumed_names
    )
    lines = [
        f"source:        {args.src}",
        f"layout:        {spec.layout}",
        f"architecture:  {spec.describe()}",
        f"scales:        {', '.join(f'x{s}' for s in spec.scales)}",
        f"pixels:        rgb_range {spec.kwargs['rgb_range']:g}, rgb_mean {_fmt(spec.kwargs['rgb_mean'])}",
        f"parameters:    {model.num_parameters():,}",
        f"official file: {f'{official.filename} ({official.variant})' if official else 'not recognised'}",
    ]
    if assumed:
        flags = ", ".join(_FLAGS[name] for name in assumed_names)
        lines.append(f"assumed:       {assumed} (the checkpoint does not hold them; set them with {flags})")
    lines += [f"note:          {note}" for note in spec.notes]
    lines.append(f"wrote {Path(args.dst) / 'model.safetensors'} and {Path(args.dst) / 'config.json'}")
    print("\n".join(lines))
    return 0


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _write(args: argparse.Namespace) -> int:
    reading_only = [flag for name, flag in (("variant", "--variant"), ("layout", "--layout")) if getattr(args, name)]
    reading_only += [flag for name, flag in _FLAGS.items() if getattr(args, name) is not None]
    if reading_only:
        raise CLIError(f"{', '.join(reading_only)} apply when reading a third-party checkpoint, not with --to")
    from ..convert import export_checkpoint

    exported = export_checkpoint(args.src, args.dst, args.to)
    options = ", ".join(f"{k}={v!r}" for k, v in exported.options.items())
    lines = [
        f"source:        {args.src}",
        f"layout:        {exported.layout}",
        f"tensors:       {len(exported.state_dict)}"
        + (f" (saved under '{exported.wrapper}')" if exported.wrapper else ""),
        f"options:       {options}",
        *(f"note:          {note}" for note in exported.notes),
        f"wrote {args.dst}",
    ]
    print("\n".join(lines))
    return 0
