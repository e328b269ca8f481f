"""The distribution: ``python -m build`` makes a wheel that installs and works in a fresh venv.

The fresh venv gets the wheel with ``--no-deps`` and then borrows this environment's
dependencies (torch, timm, ...) through a ``.pth`` file, so nothing is downloaded; the
wheel is installed before that file exists, so pip never sees this environment's
(editable) edsr-lib.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import edsr_lib

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

_PROBE = """
import json, edsr_lib
shipped = []
for cfg in edsr_lib.list_pretrained():
    if cfg.package_file:
        edsr_lib.create_model(cfg.name, pretrained=True)  # offline, empty cache: only the package has them
        shipped.append(cfg.name)
print(json.dumps({
    "file": edsr_lib.__file__,
    "version": edsr_lib.__version__,
    "models": edsr_lib.list_models(),
    "pretrained": edsr_lib.list_models(pretrained=True),
    "shipped": shipped,
}))
"""


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    return result.stdout


def _source_files() -> list[str]:
    """What a clean clone would hold: tracked files plus untracked ones git does not ignore."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    listing = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT)
    return [f for f in listing.split("\0") if f and (REPO_ROOT / f).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """The source tree copied as a clean clone would have it, and the wheel built from it."""
    root = tmp_path_factory.mktemp("packaging")
    src, dist = root / "src", root / "dist"
    files = _source_files()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, src / name)
    # sdist first, then the wheel from the unpacked sdist, as `python -m build` does; no
    # isolation, so the build needs no network (setuptools comes with the dev extra)
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src, cwd=root)
    (wheel,) = dist.glob("edsr_lib-*.whl")
    assert len(list(dist.glob("edsr_lib-*.tar.gz"))) == 1
    return src, wheel, files


def test_wheel_holds_the_whole_package(built: tuple[Path, Path, list[str]]) -> None:
    _, wheel, files = built
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f for f in files if f.startswith("edsr_lib/") and f.endswith(".py")}
    assert modules, "no package sources found"
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    shipped = {f for f in files if f.startswith("edsr_lib/weights/") and not f.endswith(".py")}
    assert shipped <= names, f"shipped weights files missing from the wheel: {sorted(shipped - names)}"
    assert not {n for n in names if n.startswith(("tests/", "docs/", "examples/", "benchmarks/"))}
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: edsr-lib" in text and f"Version: {edsr_lib.__version__}" in text
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "edsr-lib = edsr_lib.cli:main" in entry_points


def test_wheel_installs_and_runs_in_a_fresh_venv(built: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    _, wheel, _ = built
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    site_packages = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).strip()
    )
    borrowed = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site_packages / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")

    elsewhere = tmp_path / "elsewhere"  # not the source tree, so `import edsr_lib` cannot find it there
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}

    probe = json.loads(_run(python, "-c", _PROBE, cwd=elsewhere, env=env))
    assert Path(probe["file"]).is_relative_to(site_packages), probe["file"]
    assert probe["version"] == edsr_lib.__version__
    assert probe["models"] == edsr_lib.list_models()
    assert probe["pretrained"] == edsr_lib.list_models(pretrained=True)
    # every weights file a pretrained config says is shipped loads from the installed package
    assert probe["shipped"] == [c.name for c in edsr_lib.list_pretrained() if c.package_file]

    console = venv / "bin" / "edsr-lib"
    assert "usage: edsr-lib" in _run(console, "--help", cwd=elsewhere, env=env)
    assert _run(console, "--version", cwd=elsewhere, env=env).strip() == f"edsr-lib {edsr_lib.__version__}"


def test_the_torch_floor_is_the_same_in_pyproject_and_the_docs() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    floor = re.search(r'"torch>=([\d.]+)"', (root / "pyproject.toml").read_text()).group(1)
    import torch

    assert hasattr(torch, "accelerator") and hasattr(torch, "OutOfMemoryError")  # what the floor is for
    assert f"Any PyTorch from {floor} works" in (root / "README.md").read_text()
    assert f"PyTorch {floor} or newer" in (root / "docs" / "installation.md").read_text()
    assert tuple(int(p) for p in floor.split(".")) >= (2, 6)  # torch.accelerator is new in 2.6
