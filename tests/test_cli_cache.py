"""``edsr-lib cache``: where the library's cache is, what each part holds, and ``--clear``.

The cache has one owner of its folder (:func:`edsr_lib._cache.cache_root`): the runtimes'
exports and the trainer's LR images both follow ``EDSR_LIB_CACHE``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edsr_lib
from edsr_lib import _cache, backends
from edsr_lib.backends.cache import cache_dir
from edsr_lib.cli import main
from edsr_lib.io import write_image
from edsr_lib.train.data import default_cache_dir


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fill(folder: Path, sizes: list[int]) -> None:
    for i, size in enumerate(sizes):
        path = folder / f"sub{i % 2}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


def test_every_part_of_the_cache_follows_one_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDSR_LIB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_root() == tmp_path / "xdg" / "edsr_lib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_root() == tmp_path / "home" / ".cache" / "edsr_lib"
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" / "runtimes"
    assert default_cache_dir() == tmp_path / "mine" / "lr"
    assert {p.folder.name for p in _cache.usage()} == set(_cache.PARTS)


def test_the_listing_counts_each_part(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(cache / "runtimes", [1000, 2_000_000, 500_000])
    _fill(cache / "lr", [300_000])
    (cache / "unrelated.txt").write_text("not ours")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out
    runtimes = next(line for line in out.splitlines() if line.split()[:1] == ["runtimes"])
    lr = next(line for line in out.splitlines() if line.split()[:1] == ["lr"])
    assert "3 files" in " ".join(runtimes.split()) and "2.5 MB" in runtimes
    assert "1 files" in " ".join(lr.split()) and "0.3 MB" in lr
    assert "total  2.8 MB" in out and "hf cache scan" in out


def test_an_empty_or_missing_cache_lists_zero_and_creates_nothing(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache"]) == 0
    assert "total  0.0 MB" in capsys.readouterr().out
    assert not cache.exists()
    assert main(["cache", "--clear"]) == 0
    assert "nothing to delete" in capsys.readouterr().out
    assert not cache.exists()


def test_clear_deletes_the_parts_asked_for_and_nothing_else(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(cache / "runtimes", [10, 20])
    _fill(cache / "lr", [30])
    (cache / "unrelated.txt").write_text("not ours")
    assert main(["cache", "--clear", "runtimes"]) == 0
    out = capsys.readouterr().out
    assert "deleted" in out and "runtimes" in out and "2 files" in out
    assert not (cache / "runtimes").exists() and (cache / "lr" / "sub0" / "f0.bin").exists()
    assert main(["cache", "--clear"]) == 0
    assert not (cache / "lr").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["unrelated.txt"]  # no half-deleted folder left


def test_a_cache_that_is_a_file_or_an_unknown_part_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("EDSR_LIB_CACHE", str(tmp_path / "a_file"))
    assert main(["cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a_file" in err and "EDSR_LIB_CACHE" in err
    with pytest.raises(SystemExit) as exc:
        main(["cache", "--clear", "weights"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown cache part"):
        _cache.clear(["weights"])


@pytest.mark.skipif("onnxruntime" not in backends.installed_runtimes(), reason="needs onnxruntime")
def test_a_real_export_is_listed_and_cleared_then_made_again(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edsr_lib.create_model("edsr_baseline_x2", n_resblocks=1, n_feats=8).save_pretrained(tmp_path / "model")
    write_image(tmp_path / "a.png", np.random.default_rng(0).integers(0, 256, (9, 8, 3), dtype=np.uint8))
    args = ["upscale", str(tmp_path / "a.png"), "--model", str(tmp_path / "model"), "--backend", "onnxruntime"]
    assert main([*args, "-o", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    (exported,) = _cache.usage()[:1]
    assert exported.part == "runtimes" and exported.files >= 2 and exported.size > 0  # the file and its digest
    assert main(["cache", "--clear", "runtimes"]) == 0
    assert not cache_dir().exists()
    assert main([*args, "-o", str(tmp_path / "two")]) == 0  # exported again
    assert (tmp_path / "one" / "a_x2.png").read_bytes() == (tmp_path / "two" / "a_x2.png").read_bytes()
