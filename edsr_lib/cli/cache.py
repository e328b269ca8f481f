"""``edsr-lib cache [--clear [PART ...]]``: where the library's cache is, how big it is, and deleting it.

Without options, one line per part of the cache (:data:`edsr_lib._cache.PARTS`): its
folder, files and size. ``--clear`` deletes every part, ``--clear runtimes`` one of them;
everything is made again when needed. Weights from the Hugging Face Hub are in the Hub's
own cache (``hf cache scan``), which this command leaves alone.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import _cache
from . import CLIError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``cache`` subcommand."""
    parser = subparsers.add_parser(
        "cache",
        help="show the size of the library's cache (exported runtime files, LR images) or delete it",
        description=(
            "Show where the library's cache is (EDSR_LIB_CACHE, else $XDG_CACHE_HOME/edsr_lib, else "
            "~/.cache/edsr_lib) and what each part holds, or delete it. Deleting is always safe: the files are "
            "made again when needed. Hub weights are in the Hugging Face cache (hf cache scan)."
        ),
    )
    parser.add_argument(
        "--clear",
        nargs="*",
        choices=tuple(_cache.PARTS),
        metavar="PART",
        help=f"delete these parts of the cache ({', '.join(_cache.PARTS)}; all of them when none is named)",
    )
    parser.set_defaults(func=run)
    return parser


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    """Print the cache's parts, or delete those asked for; returns the exit status."""
    try:
        if args.clear is not None:
            done = _cache.clear(args.clear)
            if not done:
                print(f"nothing to delete in {_cache.cache_root()}")
            for found in done:
                print(f"deleted {found.folder}: {found.files} files, {_mb(found.size)}")
            return 0
        parts = _cache.usage()
    except (OSError, ValueError) as err:
        raise CLIError(str(err)) from None
    print(f"cache: {_cache.cache_root()} (EDSR_LIB_CACHE moves it)")
    width = max(len(p.part) for p in parts)
    for p in parts:
        print(f"  {p.part:<{width}}  {p.files:>5} files  {_mb(p.size):>9}  {_cache.PARTS[p.part]}")
    print(f"  total  {_mb(sum(p.size for p in parts))}; `edsr-lib cache --clear` deletes it (safe: remade when needed)")
    print("Hub weights are in the Hugging Face cache: `hf cache scan` lists them")
    return 0
