"""The ``edsr-lib`` command line: a thin shell over the library.

Each subcommand lives in its own module of this package, which defines
``add_parser(subparsers)`` (registering its arguments and ``func``); ``func(args)``
returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand name -> module that implements it.
COMMANDS: dict[str, str] = {
    "convert": "edsr_lib.cli.convert",
    "train": "edsr_lib.cli.train",
    "upscale": "edsr_lib.cli.upscale",
    "models": "edsr_lib.cli.models",
    "export-onnx": "edsr_lib.cli.export_onnx",
    "make-lr": "edsr_lib.cli.make_lr",
    "evaluate": "edsr_lib.cli.evaluate",
}


class CLIError(Exception):
    """An error to report to the user in one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="edsr-lib", description="EDSR and MDSR super-resolution.")
    parser.add_argument("--version", action="version", version=f"edsr-lib {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"edsr-lib {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
