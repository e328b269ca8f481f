"""Where the library keeps what it makes for itself, how big that is, and how to delete it.

One folder, :func:`cache_root`, holds every part of the library's cache (:data:`PARTS`):

- ``runtimes``: the files exported for OpenVINO and ONNX Runtime and ``"auto"``'s record
  (:mod:`edsr_lib.backends.cache`), about 5.5 MB per set of EDSR-baseline weights and scale;
- ``lr``: the LR images the trainer makes from HR folders (:mod:`edsr_lib.train.data`).

Everything in it is made again when needed, so deleting it is always safe. Weights downloaded
from the Hugging Face Hub (and their converted copies) live in the Hub's own cache instead,
which ``hf cache scan`` and ``hf cache delete`` manage. This module imports no torch, so that
``edsr-lib cache`` answers at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PARTS", "CacheUsage", "cache_root", "clear", "part_dir", "usage"]

#: The parts of the cache, by folder name, with what each holds.
PARTS: dict[str, str] = {
    "runtimes": "files exported for OpenVINO and ONNX Runtime, and auto's measurements",
    "lr": "LR images made by the trainer from HR folders",
}


def cache_root() -> Path:
    """The library's cache folder: ``$EDSR_LIB_CACHE``, else ``$XDG_CACHE_HOME/edsr_lib``, else ``~/.cache/edsr_lib``.

    Every part of the cache (:data:`PARTS`) is a folder in it.
    """
    root = os.environ.get("EDSR_LIB_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edsr_lib"


def part_dir(part: str) -> Path:
    """The folder of one part of the cache (a key of :data:`PARTS`)."""
    if part not in PARTS:
        raise ValueError(f"unknown cache part {part!r}; choose from {', '.join(PARTS)}")
    return cache_root() / part


@dataclass(frozen=True)
class CacheUsage:
    """What one part of the cache holds now.

    Attributes:
        part: The part's name (a key of :data:`PARTS`).
        folder: Its folder.
        files: How many files it holds (in every subfolder).
        size: Their total size in bytes.
    """

    part: str
    folder: Path
    files: int
    size: int


def _walk(folder: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += (Path(dirpath) / name).lstat().st_size
            except OSError:
                continue  # removed while we looked
            files += 1
    return files, size


def usage() -> list[CacheUsage]:
    """The files and bytes in each part of the cache (a missing folder holds none).

    Raises:
        NotADirectoryError: The cache root (or a part of it) is a file, not a folder.
    """
    out = []
    for folder in (cache_root(), *(part_dir(part) for part in PARTS)):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"the cache folder {folder} is a file; set EDSR_LIB_CACHE to a folder")
    for part in PARTS:
        folder = part_dir(part)
        out.append(CacheUsage(part, folder, *_walk(folder)))
    return out


def clear(parts: list[str] | None = None) -> list[CacheUsage]:
    """Delete parts of the cache (all of them by default); returns what each held.

    A part is first renamed to a hidden name beside it, then deleted: a process that starts
    meanwhile finds no half-deleted folder, and exports or makes its files again.

    Raises:
        ValueError: An unknown part.
        OSError: A part could not be deleted (the message names its folder).
    """
    chosen = parts or list(PARTS)
    for part in chosen:
        part_dir(part)  # unknown names fail before anything is deleted
    done = []
    for found in usage():
        if found.part not in chosen or not found.folder.exists():
            continue
        try:
            doomed = Path(tempfile.mkdtemp(prefix=f".{found.part}.deleting-", dir=found.folder.parent))
            found.folder.rename(doomed / found.part)
            shutil.rmtree(doomed)
        except OSError as err:
            raise OSError(f"cannot delete {found.folder} ({err.strerror or err})") from None
        done.append(found)
    return done
