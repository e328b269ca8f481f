"""Listing image files: which files a path, a folder or a glob pattern holds (:func:`list_images`)."""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from .base import PathLike

#: File suffixes that :func:`list_images` picks up in folders and globs (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class SkippedInputWarning(UserWarning):
    """A path a folder walk or a glob found but passed over: a broken link, a folder named like an image."""


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def _take(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Whether a path found by a walk or a glob is an input; a near miss is reported, never dropped in silence."""
    if path.suffix.lower() not in suffixes:
        return False
    if path.is_file():
        return True
    if path.is_symlink() and not path.exists():
        warnings.warn(f"{path} is a broken link (to {os.readlink(path)}): passed over", SkippedInputWarning, 3)
    elif path.is_dir():
        warnings.warn(f"{path} is a folder, not an image: passed over", SkippedInputWarning, 3)
    else:
        warnings.warn(f"{path} is not a regular file: passed over", SkippedInputWarning, 3)
    return False


def list_images(
    sources: PathLike | Iterable[PathLike], *, recursive: bool = False, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """Expand files, folders and glob patterns into a list of image files.

    A file is taken as given; a folder contributes its image files (by suffix), sorted by
    name, and with ``recursive`` those of its subfolders too; a glob pattern (``*``, ``?``,
    ``[``; ``**`` recurses) contributes its matching image files, sorted. Duplicates are
    dropped, order kept. Folder walks and globs follow one rule for hidden names: files and
    folders whose name starts with ``.`` are passed over (name them, or a pattern starting
    with ``.``, to take them). A broken link or a folder with an image suffix that a walk or
    a glob finds is passed over with a :class:`SkippedInputWarning`.

    Args:
        sources: One path or pattern, or several.
        recursive: Walk folders into their subfolders.
        suffixes: The file suffixes to take, lower case (default :data:`IMAGE_SUFFIXES`).

    Returns:
        The image files, in order.

    Raises:
        FileNotFoundError: If a path does not exist (and is not a pattern), or is a broken link.
        ValueError: If nothing at all matches.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            matches = sorted(p for p in walk if not _hidden(p, path) and _take(p, suffixes))
        elif path.is_file():
            matches = [path]
        elif path.is_symlink():
            raise FileNotFoundError(f"{source} is a broken link (to {os.readlink(path)})")
        elif any(c in source for c in "*?["):
            matches = sorted(p for p in map(Path, glob.glob(source, recursive=True)) if _take(p, suffixes))
        else:
            raise FileNotFoundError(f"no such file or folder: {source}")
        found.update(dict.fromkeys(matches))
    if not found:
        where = ", ".join(sources) or "an empty list"
        raise ValueError(f"no images found in {where} (looked for {', '.join(suffixes)})")
    return list(found)
