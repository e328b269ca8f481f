"""The folder engine from Python: planning, the summary, another kind of input plugged in by file type."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import edsr_lib
from edsr_lib.cli import main
from edsr_lib.jobs import Job, JobKind, plan_jobs, planning, register_kind, upscale_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = edsr_lib.create_model("edsr_baseline_x2", n_resblocks=2, n_feats=8)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny_x2")


def _save(path: Path, shape: tuple[int, ...], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8).squeeze()).save(path)
    return path


class Doubler:
    """A stand-in for video: a text file whose result is its text repeated ``scale`` times."""

    name = "text"
    suffixes = (".txt",)

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Path, dict[str, Any]]] = []

    def output_suffix(self, source: Path) -> str:
        return ".txt"

    def process(self, upscaler: Any, source: Path, target: Path) -> None:
        self.calls.append((source, target, upscaler.options))
        text = source.read_text()
        if "bad" in text:
            raise ValueError(f"{source}: not a clip")
        target.write_text(text * upscaler.scale)


def test_python_and_the_command_line_write_the_same_files(model_dir: Path, tmp_path: Path) -> None:
    _save(tmp_path / "in" / "a.png", (6, 7, 3), 1)
    _save(tmp_path / "in" / "sub" / "b.png", (5, 5), 2)
    summary = upscale_folder(tmp_path / "in", tmp_path / "py", model=model_dir, recursive=True, progress=False)
    cli = ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "cli"), "--model", str(model_dir), "--recursive"]
    assert main(cli) == 0
    assert edsr_lib.upscale_folder is upscale_folder
    assert summary.ok and str(summary) == f"wrote 2 images to {tmp_path / 'py'} (0 failed, 0 skipped)"
    assert sorted(p.relative_to(tmp_path / "py") for p in summary.written) == [Path("a_x2.png"), Path("sub/b_x2.png")]
    for path in summary.written:
        assert filecmp.cmp(path, tmp_path / "cli" / path.relative_to(tmp_path / "py"), shallow=False)


def test_another_kind_of_input_plugs_in_by_suffix(model_dir: Path, tmp_path: Path) -> None:
    _save(tmp_path / "in" / "a.png", (6, 6, 3))
    (tmp_path / "in" / "clip.txt").write_text("ab")
    (tmp_path / "in" / "deep").mkdir()
    (tmp_path / "in" / "deep" / "clip2.txt").write_text("cd")
    (tmp_path / "in" / "zz_bad.txt").write_text("bad")
    kind = Doubler()
    lines: list[str] = []
    out = tmp_path / "out"
    summary = upscale_folder(
        tmp_path / "in", out, model=model_dir, recursive=True, kinds=[kind], progress=False, log=lines.append, tile=8
    )
    assert (out / "clip_x2.txt").read_text() == "abab" and (out / "deep" / "clip2_x2.txt").read_text() == "cdcd"
    assert (out / "a_x2.png").exists()
    assert [r.job.source.name for r in summary.failed] == ["zz_bad.txt"]
    assert lines == [f"error: {tmp_path / 'in' / 'zz_bad.txt'}: not a clip"]
    assert str(summary).startswith("wrote 3 files to")  # not all images: files
    assert kind.calls[0][2].device == torch.device("cpu") and kind.calls[0][2].tile == 8

    # the engine's rules hold for the new kind: skip what exists, take a shard
    again = upscale_folder(tmp_path / "in", out, model=model_dir, recursive=True, kinds=[kind], skip_existing=True)
    assert {r.job.source.name for r in again.skipped} == {"a.png", "clip.txt", "clip2.txt"}
    kind.calls.clear()
    shard = upscale_folder(tmp_path / "in", tmp_path / "s", model=model_dir, kinds=[kind], shard=(1, 2), progress=False)
    assert len(shard.results) == 1 and shard.others == 2  # a.png, clip.txt, zz_bad.txt: the second of every two
    assert [c[0].name for c in kind.calls] == ["clip.txt"]


def test_a_kind_is_registered_once_for_every_run(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(planning, "registered", [])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.txt").write_text("x")
    with pytest.raises(ValueError, match="nothing to upscale"):
        upscale_folder(tmp_path / "in", tmp_path / "out", model=model_dir)
    register_kind(Doubler())
    assert isinstance(planning.registered[0], JobKind)
    upscale_folder(tmp_path / "in", tmp_path / "out", model=model_dir, progress=False)
    assert (tmp_path / "out" / "clip_x2.txt").read_text() == "xx"
    with pytest.raises(ValueError, match="image files are the engine's own"):
        register_kind(type("Bad", (Doubler,), {"suffixes": (".png",)})())
    with pytest.raises(TypeError, match="JobKind"):
        register_kind(object())  # type: ignore[arg-type]


def test_plan_names_mirrors_and_leaves_out_its_own_outputs(tmp_path: Path) -> None:
    for rel in ("a.png", "a_x2.png", "x/b.jpg", "x/.hidden/c.png", "holiday_x2.png"):
        _save(tmp_path / rel, (4, 4, 3))
    plan = plan_jobs(tmp_path, tmp_path, suffix="_x2", recursive=True)
    assert {(j.source.relative_to(tmp_path), j.target.relative_to(tmp_path)) for j in plan.jobs} == {
        (Path("a.png"), Path("a_x2.png")),
        (Path("x/b.jpg"), Path("x/b_x2.png")),
        (Path("holiday_x2.png"), Path("holiday_x2_x2.png")),  # the user's own file, whatever -o is
    }
    assert plan.left_out == [tmp_path / "a_x2.png"]  # the output of a.png
    assert plan_jobs(tmp_path / "a.png", tmp_path, suffix="").clashes == [tmp_path / "a.png"]
    assert Job(tmp_path / "f.tif", tmp_path / "f_x2.png").outputs() == (tmp_path / "f_x2.png", tmp_path / "f_x2.tif")


def test_jobs_refuse_two_inputs_with_one_output(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", (4, 4, 3))
    _save(tmp_path / "a.jpg", (4, 4, 3))
    with pytest.raises(ValueError, match="would both be written to"):
        plan_jobs(tmp_path, tmp_path / "out", suffix="_x2")
