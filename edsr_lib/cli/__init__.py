"""The ``edsr-lib`` command line: a thin shell over the library.

Each subcommand lives in its own module of this package, which defines ``add_parser(subparsers)``;
:mod:`~edsr_lib.cli.main` lists them (:data:`COMMANDS`), builds the parser and runs :func:`main`.
"""

from __future__ import annotations

from .main import COMMANDS, CLIError, add_max_pixels, build_parser, main

__all__ = ["COMMANDS", "CLIError", "add_max_pixels", "build_parser", "main"]
