"""Files written whole or not at all, and their digests: the one owner of atomic writes and sha256.

Every file the library writes (weights, configs, cards, checkpoints, images, ONNX graphs,
JSON reports) goes through :func:`atomic_path` or :func:`atomic_write`: the bytes go to a
temporary file in the destination's folder, are flushed to disk, and then
:func:`os.replace` puts the file in place in one step. A reader sees the old file or the
new one, never part of one, and a failure (a full disk, an exception in the writer, a
killed process) leaves the old file as it was. This module imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "atomic_folder",
    "atomic_move",
    "atomic_path",
    "atomic_write",
    "missing_folders",
    "remove_empty_folders",
    "sha256sum",
    "stale_temporary_files",
]


def sha256sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, read in chunks.

    Args:
        path: The file.
        chunk_size: Bytes read at a time.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TOKEN_BYTES = 6


def _temporary_name(path: Path, token: str) -> Path:
    return path.with_name(f".{path.name}.{token}.tmp")


def stale_temporary_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The temporary files that :func:`atomic_path` made for ``paths`` and a killed process left behind.

    Each folder is listed once. Call it only where no other process is writing ``paths``
    (a job sweeps its own targets before it starts).

    Args:
        paths: Destination files.
    """
    wanted: dict[Path, set[str]] = {}
    for path in map(Path, paths):
        wanted.setdefault(path.parent, set()).add(path.name)
    pattern = re.compile(rf"\.(.+)\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}\.tmp")
    found = []
    for folder, names in wanted.items():
        try:
            entries = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        found += [p for p in entries if (m := pattern.fullmatch(p.name)) and m[1] in names]
    return sorted(found)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, create: bool = True, keep: str | os.PathLike[str] | None = None
) -> Iterator[Path]:
    """A temporary path to write ``path``'s new contents to; it replaces ``path`` when the block ends.

    For writers that want a file name rather than bytes (Pillow, the ONNX exporter). The
    temporary file sits beside ``path`` (hidden, ``.<name>.<random>.tmp``), so the final
    :func:`os.replace` never crosses a file system. When the block raises, or leaves no
    file, nothing replaces ``path`` and the temporary file is removed.

    Args:
        path: The destination.
        create: Create the temporary file (empty, with the usual permissions under the
            umask) before the block, so that it can be opened for writing; ``False`` only
            reserves the name, for writers that refuse an existing file.
        keep: Where to keep the file that the new one replaces (a training checkpoint's
            previous one): put there, atomically, just before ``path`` is replaced, as a
            hard link where the file system has them (a copy elsewhere). At every moment
            ``path`` holds a whole file, the old or the new.

    Yields:
        The temporary path.

    Raises:
        FileNotFoundError: If the block wrote nothing at the temporary path.
        IsADirectoryError: If ``path`` is a folder (before the block runs).
        OSError: Where the file cannot be made, naming ``path``, not its temporary file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    tmp = _temporary_name(path, secrets.token_hex(_TOKEN_BYTES))
    try:
        with _naming(tmp, path):
            if create:
                # os.open with 0o666 honours the umask, unlike tempfile's private 0o600 files
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            yield tmp
            if not tmp.is_file():
                raise FileNotFoundError(f"nothing was written for {path} (no file at {tmp})")
            _fsync(tmp)
            if keep is not None and path.is_file():
                _keep_copy(path, Path(keep))
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(tmp: Path, path: Path) -> Iterator[None]:
    """Report an OS error about the temporary file ``tmp`` as one about ``path``, the file the user asked for."""
    try:
        yield
    except OSError as err:
        if os.fspath(tmp) not in (os.fspath(f) for f in (err.filename, err.filename2) if f is not None):
            raise
        renamed = type(err)(f"cannot write {path}: {err.strerror or err}")
        renamed.errno = err.errno
        raise renamed from None


def _keep_copy(path: Path, keep: Path) -> None:
    """``path``'s current file also at ``keep``, atomically: a hard link, or a copy where links are refused."""
    with atomic_path(keep, create=False) as spare:
        try:
            os.link(path, spare)
        except OSError:
            shutil.copy2(path, spare)


def atomic_move(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the finished file ``source`` (made by another program, or in a temporary folder) at ``target`` in one step.

    The file is moved beside ``target`` first (a copy when it is on another file system),
    flushed to disk, and then renamed into place, as :func:`atomic_path` does; a reader never
    sees part of it.

    Args:
        source: The complete file; it is gone afterwards.
        target: The destination; its folder must exist.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.
    """
    with atomic_path(target, create=False) as out:
        shutil.move(os.fspath(source), out)
    return Path(target)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder to fill with ``path``'s contents; it becomes ``path`` in one rename when the block ends.

    For results made of several files (a converted model: weights, config and card) that a
    reader must see whole or not at all. The temporary folder sits beside ``path`` (hidden,
    ``.<name>.<random>.tmp``). When the block raises, nothing is renamed and the temporary
    folder is removed.

    Args:
        path: The destination folder; its parent must exist.

    Yields:
        The temporary folder (empty).

    Raises:
        OSError: If ``path`` already exists and is not empty (another writer published it
            first); the caller decides whether that copy will do.
    """
    path = Path(path)
    tmp = _temporary_name(path, secrets.token_hex(_TOKEN_BYTES))
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                _fsync(child)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then :func:`os.replace`.

    Readers see the old file or the new one, never a partial one. On failure the old
    file is left as it was and the temporary file is removed.

    Args:
        path: Destination file; its folder must exist.
        data: The complete contents.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def missing_folders(path: str | os.PathLike[str]) -> list[Path]:
    """The folders that creating ``path`` (with its parents) would make: those missing, deepest first.

    Taken before the folder is made, and given to :func:`remove_empty_folders` when the work
    is over, so that a command that wrote nothing leaves no empty output folder behind.
    """
    missing: list[Path] = []
    folder = Path(path)
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty_folders(folders: Iterable[str | os.PathLike[str]]) -> None:
    """Remove ``folders`` (deepest first, as :func:`missing_folders` lists them) while they are empty.

    The first that is not empty stays, and so do the folders above it.
    """
    for folder in folders:
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            continue
        except OSError:  # not empty
            return
