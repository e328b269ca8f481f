"""``edsr-lib models [PATTERN]``: list the registered models, their scales, sizes and pretrained tags."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``models`` subcommand."""
    parser = subparsers.add_parser(
        "models",
        help="list models, scales, parameter counts and pretrained tags",
        description="List the registered models with their scales, parameter counts and pretrained weight tags.",
    )
    parser.add_argument("pattern", nargs="?", default="", help="shell-style filter such as 'edsr*'")
    parser.add_argument("--pretrained", action="store_true", help="only models that have pretrained weights")
    parser.set_defaults(func=run)
    return parser


def model_table(pattern: str = "", pretrained: bool = False) -> list[tuple[str, str, str, str]]:
    """Rows ``(name, scales, parameters, pretrained tags)`` for the models matching ``pattern``.

    Models are built on the ``meta`` device, so listing even the 43 M-parameter EDSR
    allocates no weights.
    """
    import torch

    from ..registry import create_model, list_models, list_pretrained

    rows = []
    for name in list_models(pattern, pretrained=pretrained, include_tags=False):
        with torch.device("meta"):
            model = create_model(name)
        tags = [cfg.tag for cfg in list_pretrained(name) if cfg.architecture == name and cfg.has_weights]
        rows.append(
            (
                name,
                ", ".join(f"x{s}" for s in model.scales),
                f"{model.num_parameters() / 1e6:.2f} M",
                ", ".join(tags) or "-",
            )
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the table of models."""
    rows = [("model", "scales", "parameters", "pretrained tags"), *model_table(args.pattern, args.pretrained)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        print(f"(no model matches {args.pattern!r})")
    return 0
