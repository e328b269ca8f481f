"""``edsr-lib convert SRC DST_DIR``: turn a third-party checkpoint into the library's format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..convert import LAYOUTS, convert


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``convert`` subcommand."""
    parser = subparsers.add_parser(
        "convert",
        help="convert an EDSR-PyTorch, BasicSR or super-image checkpoint",
        description=(
            "Read a third-party EDSR/MDSR checkpoint (.pt, .pth or .safetensors), detect the model it holds "
            "and write it as model.safetensors + config.json. Official EDSR-PyTorch files are recognised by sha256."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="the checkpoint file")
    parser.add_argument("dst_dir", metavar="DST_DIR", help="the directory to write model.safetensors and config.json")
    parser.add_argument("--variant", metavar="NAME", help="refuse unless the checkpoint holds this registered variant")
    parser.add_argument("--layout", choices=LAYOUTS, help="the source layout, when the key names cannot tell")
    parser.add_argument("--res-scale", type=float, help="residual scaling, which checkpoints do not store")
    parser.add_argument("--rgb-range", type=float, help="the pixel range the checkpoint was trained in")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Convert ``args.src`` into ``args.dst_dir`` and print what was detected."""
    overrides = {
        name: value
        for name, value in (("res_scale", args.res_scale), ("rgb_range", args.rgb_range))
        if value is not None
    }
    model = convert(args.src, args.dst_dir, layout=args.layout, variant=args.variant, **overrides)
    spec = model.conversion
    official = spec.official
    lines = [
        f"source:        {args.src}",
        f"layout:        {spec.layout}",
        f"architecture:  {spec.describe()}",
        f"scales:        {', '.join(f'x{s}' for s in spec.scales)}",
        f"parameters:    {model.num_parameters():,}",
        f"official file: {f'{official.filename} ({official.variant})' if official else 'not recognised'}",
        *(f"note:          {note}" for note in spec.notes),
        f"wrote {Path(args.dst_dir) / 'model.safetensors'} and {Path(args.dst_dir) / 'config.json'}",
    ]
    print("\n".join(lines))
    return 0
