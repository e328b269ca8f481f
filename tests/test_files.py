"""Atomic writes and digests (``edsr_lib._files``), the one owner every writer of the package goes through."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edsr_lib import _files, hub


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old contents that are longer")
    assert hub.atomic_write(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_honours_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _files.atomic_write(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644


def test_atomic_path_replaces_only_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer failed"), _files.atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        assert tmp.parent == tmp_path and tmp.name.startswith(".f.txt.") and tmp.suffix == ".tmp"
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]

    with _files.atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing changes until the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_path_refuses_a_writer_that_wrote_nothing(tmp_path: Path) -> None:
    target = tmp_path / "f.onnx"
    target.write_text("old")
    with (
        pytest.raises(FileNotFoundError, match=r"nothing was written for .*f\.onnx"),
        _files.atomic_path(target, create=False),
    ):
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.onnx"]


def test_failed_fsync_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        _files.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_the_hub_digest_is_this_one() -> None:
    assert hub.sha256sum is _files.sha256sum  # tests/test_hub.py checks it against hashlib


def test_every_writer_of_the_package_goes_through_one_owner() -> None:
    """No module but ``_files`` renames a temporary file into place or defines a file digest."""
    root = Path(_files.__file__).parent
    offenders = [
        f"{p.relative_to(root)}: {word}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "_files.py"
        for word in ("os.replace(", "token_hex(", "def sha256sum(")
        if word in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """A folder is renamed into place only when its block ends well; an existing one is never replaced."""
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), _files.atomic_folder(target) as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []

    with _files.atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".")
        (staging / "a.txt").write_text("whole")
    assert (target / "a.txt").read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]

    with pytest.raises(OSError), _files.atomic_folder(target) as staging:
        (staging / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_move_puts_a_finished_file_in_place(tmp_path: Path) -> None:
    """A file made elsewhere replaces the target whole, and leaves no temporary file behind."""
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "model.bin"
    target.write_bytes(b"old")
    source = tmp_path / "made.bin"
    source.write_bytes(b"new")
    assert _files.atomic_move(source, target) == target
    assert target.read_bytes() == b"new" and not source.exists()
    assert [p.name for p in target.parent.iterdir()] == ["model.bin"]


def test_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder") as caught:
        _files.atomic_write(tmp_path / "folder", b"x")
    assert ".tmp" not in str(caught.value)
    assert list((tmp_path / "folder").iterdir()) == []
    with pytest.raises(FileNotFoundError, match=r"^cannot write .*missing.x\.bin: ") as caught:
        _files.atomic_write(tmp_path / "missing" / "x.bin", b"x")  # the folder is the caller's to make
    assert ".tmp" not in str(caught.value)


def test_atomic_path_keeps_the_file_it_replaces_when_asked(tmp_path: Path) -> None:
    target, kept = tmp_path / "checkpoint.pt", tmp_path / "checkpoint_previous.pt"
    with _files.atomic_path(target, keep=kept) as tmp:  # nothing to keep yet
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first" and not kept.exists()
    with _files.atomic_path(target, keep=kept) as tmp:
        tmp.write_bytes(b"second")
    assert target.read_bytes() == b"second" and kept.read_bytes() == b"first"
    with pytest.raises(RuntimeError), _files.atomic_path(target, keep=kept) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the disk filled up")
    assert target.read_bytes() == b"second" and kept.read_bytes() == b"first"  # a failed write keeps both
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "checkpoint_previous.pt"]


def test_atomic_path_keeps_a_copy_where_links_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(_files.os, "link", no_links)
    target, kept = tmp_path / "a.bin", tmp_path / "a_previous.bin"
    target.write_bytes(b"old")
    with _files.atomic_path(target, keep=kept) as tmp:
        tmp.write_bytes(b"new")
    assert (target.read_bytes(), kept.read_bytes()) == (b"new", b"old")
