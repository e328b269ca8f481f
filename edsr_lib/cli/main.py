"""The ``edsr-lib`` command line: a thin shell over the library.

Each subcommand lives in its own module of this package, which defines
``add_parser(subparsers)`` (registering its arguments and ``func``); ``func(args)``
returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
from collections.abc import Sequence

#: Subcommand name -> module that implements it.
COMMANDS: dict[str, str] = {
    "convert": "edsr_lib.cli.convert",
    "train": "edsr_lib.cli.train",
    "upscale": "edsr_lib.cli.upscale",
    "models": "edsr_lib.cli.models",
    "export": "edsr_lib.cli.export",
    "export-onnx": "edsr_lib.cli.export_onnx",
    "make-lr": "edsr_lib.cli.make_lr",
    "evaluate": "edsr_lib.cli.evaluate",
    "demo": "edsr_lib.cli.demo",
    "cache": "edsr_lib.cli.cache",
}


class CLIError(Exception):
    """An error to report to the user in one line, without a traceback."""


def _max_pixels(value: str) -> int:
    if value == "none":
        return 0
    try:
        count = int(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'none', got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"the number of pixels must be positive, got {count}")
    return count


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-pixels N|none``, the decompression-bomb limit of the images a command reads.

    The error for an image over the limit (:func:`edsr_lib.io.load_image`) names this option,
    so every command that reads images has it; run the reading in
    :func:`edsr_lib.io.pixel_limit` with ``args.max_pixels``.
    """
    parser.add_argument(
        "--max-pixels",
        type=_max_pixels,
        metavar="N|none",
        help="refuse images with more pixels, as possible decompression bombs (default: Pillow's limit, "
        "89,478,485); 'none' for no limit",
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand, or with ``argv`` only the one it names.

    ``edsr-lib --help`` and ``edsr-lib COMMAND --help`` must answer at once, but some
    command modules import torch at import time; so with ``argv`` only the named command's
    module is imported, and the others are listed with the help line read from their
    source (:func:`_summary`) instead of being imported.
    """
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="edsr-lib", description="EDSR and MDSR super-resolution.")
    parser.add_argument("--version", action="version", version=f"edsr-lib {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv or () if not a.startswith("-")), None) if argv is not None else None
    for name, module_name in COMMANDS.items():
        if argv is None or name == chosen:
            importlib.import_module(module_name).add_parser(subparsers)
            command = subparsers.choices[name]
            command.set_defaults(command_parser=command)  # its own usage for arguments it does not know
        else:  # only listed: its help line matters only when no command is named
            subparsers.add_parser(name, help=_summary(module_name) if chosen is None else None, add_help=False)
    return parser


_HELP_LINE = re.compile(r"""add_parser\(\s*["'][^"']+["'],\s*help=(["'])(.*?)\1""", re.DOTALL)


def _summary(module_name: str) -> str | None:
    """The ``help=`` of the ``add_parser`` call in a command module, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        match = _HELP_LINE.search(f.read())
    return match[2] if match else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = build_parser(argv).parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"edsr-lib {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The error's message without Python's ``[Errno N]`` prefix: the file and the system's reason."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return f"{' -> '.join(names)}: {exc.strerror}" if names else exc.strerror
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
