"""The distribution: ``python -m build`` makes a wheel and an sdist that pass ``twine check``, hold
what they should, and install and work in a fresh venv, as do the ComfyUI node's install routes.

A fresh venv gets edsr-lib with ``--no-deps --no-index`` (nothing is downloaded) and then
borrows this environment's dependencies (torch, timm, ...) through a ``.pth`` file; edsr-lib
is installed before that file exists, so pip never sees this environment's (editable)
edsr-lib. An install from sources (the sdist, a checkout) builds without isolation, with this
environment's setuptools lent through PYTHONPATH.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
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
    """The source tree copied as a clean clone would have it, and the wheel built from it (the sdist beside it)."""
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


def _sdist(wheel: Path) -> Path:
    (sdist,) = wheel.parent.glob("edsr_lib-*.tar.gz")
    return sdist


#: What neither archive may hold: tests, data, caches, build and run outputs.
_NEVER = re.compile(
    r"(^|/)(tests|docs|examples|benchmarks|tools|runs|\.data|shared|__pycache__|\.[a-z_]+_cache)/|\.py[cod]$"
)


def _shipped_data(files: list[str]) -> set[str]:
    """The package's data files in the source tree: weights, their cards and records, the int8 models, the rest."""
    return {f for f in files if f.startswith("edsr_lib/") and not f.endswith(".py")}


def test_twine_check_passes_for_the_wheel_and_the_sdist(built: tuple[Path, Path, list[str]]) -> None:
    _, wheel, _ = built
    pytest.importorskip("twine", reason="twine comes with the dev extra")
    out = _run(sys.executable, "-m", "twine", "check", "--strict", wheel, _sdist(wheel), cwd=wheel.parent)
    assert out.count("PASSED") == 2, out


def test_wheel_holds_the_whole_package(built: tuple[Path, Path, list[str]]) -> None:
    _, wheel, files = built
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _shipped_data(files)
    # what the package ships beside the code, by kind: every kind present, so that a pattern lost
    # from package-data cannot pass because nothing of that kind exists
    kinds = {
        "weights": [f for f in data if f.endswith("/model.safetensors")],
        "cards": [f for f in data if f.endswith("/README.md")],
        "int8 models": [f for f in data if "/openvino_int8_x" in f and f.endswith((".xml", ".bin"))],
    }
    for kind, found in kinds.items():
        assert found, f"the source tree has no {kind}"
        assert set(found) <= names, f"{kind} missing from the wheel: {sorted(set(found) - names)}"
    assert not [n for n in names if _NEVER.search(n)], [n for n in names if _NEVER.search(n)]
    modules = {f for f in files if f.startswith("edsr_lib/") and f.endswith(".py")}
    assert modules, "no package sources found"
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert data <= names, f"package data missing from the wheel: {sorted(data - names)}"
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: edsr-lib" in text and f"Version: {edsr_lib.__version__}" in text
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "edsr-lib = edsr_lib.cli:main" in entry_points


def test_sdist_holds_the_sources_and_data_and_no_tests(built: tuple[Path, Path, list[str]]) -> None:
    _, wheel, files = built
    with tarfile.open(_sdist(wheel)) as archive:
        top = f"edsr_lib-{edsr_lib.__version__}/"
        names = {m.name.removeprefix(top) for m in archive.getmembers() if m.isfile()}
    modules = {f for f in files if f.startswith("edsr_lib/") and f.endswith(".py")}
    assert modules <= names, f"modules missing from the sdist: {sorted(modules - names)}"
    assert _shipped_data(files) <= names, sorted(_shipped_data(files) - names)
    assert {"pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO"} <= names
    assert not [n for n in names if _NEVER.search(n)], [n for n in names if _NEVER.search(n)]


def _fresh_venv(where: Path) -> tuple[Path, dict[str, str]]:
    """A venv without pip or packages, and an environment that runs it offline, away from the sources."""
    venv = where / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=where)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(where / "hf-home"), "PIP_NO_INDEX": "1"}
    return venv / "bin" / "python", env


def _pip_install(python: Path, *args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    """``pip install --no-deps --no-index`` into ``python``'s venv; sources build with this environment's setuptools."""
    lend = cwd / "lent-setuptools"  # the build backend, lent without installing it: its packages and metadata
    if not lend.exists():
        lend.mkdir()
        setuptools = importlib.metadata.distribution("setuptools")
        site = Path(setuptools.locate_file(""))
        for name in (
            "setuptools",
            "_distutils_hack",
            "pkg_resources",
            *[p.name for p in site.glob("setuptools-*-info")],
        ):
            if (site / name).exists():
                (lend / name).symlink_to(site / name)
        # what setuptools' distutils-precedence.pth does in a site-packages
        (lend / "sitecustomize.py").write_text("__import__('_distutils_hack').add_shim()\n")
    env = env | {"PYTHONPATH": str(lend)}
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index")
    return _run(*pip, "--no-build-isolation", *args, cwd=cwd, env=env)


def _borrow_dependencies(python: Path, cwd: Path) -> Path:
    """Let ``python``'s venv import this environment's packages (after its own); its site-packages."""
    site_packages = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=cwd).strip())
    borrowed = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site_packages / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    return site_packages


def _readme_first_command() -> list[str]:
    """The README's first ``edsr-lib`` command line (its install-and-upscale block)."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    line = next(line for line in block.splitlines() if line.startswith("edsr-lib "))
    return shlex.split(line)


def _run_readme_command(venv_bin: Path, sources: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """Run the README's first command with ``venv_bin``'s console script, in a copy of its inputs."""
    command = _readme_first_command()
    work = tmp_path / "readme"
    for arg in command:
        if (sources / arg).is_file():
            (work / arg).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(sources / arg, work / arg)
    from PIL import Image

    _run(venv_bin / command[0], *command[1:], cwd=work, env=env)
    inputs = [a for a in command if (work / a).is_file()]
    (written,) = (work / "out").glob("*.png")
    with Image.open(work / inputs[0]) as lr, Image.open(written) as sr:
        assert sr.size == (2 * lr.width, 2 * lr.height)


def test_wheel_installs_and_runs_in_a_fresh_venv(built: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    src, wheel, _ = built
    python, env = _fresh_venv(tmp_path)
    _pip_install(python, wheel, cwd=tmp_path, env=env)
    site_packages = _borrow_dependencies(python, tmp_path)

    elsewhere = tmp_path / "elsewhere"  # not the source tree, so `import edsr_lib` cannot find it there
    elsewhere.mkdir()
    probe = json.loads(_run(python, "-c", _PROBE, cwd=elsewhere, env=env))
    assert Path(probe["file"]).is_relative_to(site_packages), probe["file"]
    assert probe["version"] == edsr_lib.__version__
    assert probe["models"] == edsr_lib.list_models()
    assert probe["pretrained"] == edsr_lib.list_models(pretrained=True)
    # every weights file a pretrained config says is shipped loads from the installed package
    assert probe["shipped"] == [c.name for c in edsr_lib.list_pretrained() if c.package_file]

    console = python.parent / "edsr-lib"
    assert "usage: edsr-lib" in _run(console, "--help", cwd=elsewhere, env=env)
    assert _run(console, "--version", cwd=elsewhere, env=env).strip() == f"edsr-lib {edsr_lib.__version__}"
    _run_readme_command(python.parent, src, tmp_path, env)


def test_sdist_installs_and_runs_the_readme_command_in_a_fresh_venv(
    built: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    src, wheel, _ = built
    python, env = _fresh_venv(tmp_path)
    _pip_install(python, _sdist(wheel), cwd=tmp_path, env=env)
    site_packages = _borrow_dependencies(python, tmp_path)
    where = _run(python, "-c", "import edsr_lib; print(edsr_lib.__file__)", cwd=tmp_path, env=env).strip()
    assert Path(where).is_relative_to(site_packages), where
    _run_readme_command(python.parent, src, tmp_path, env)


#: How the ComfyUI node's README installs edsr-lib before it is on the index: from a wheel or a checkout.
_COMFYUI_ROUTES = ("wheel", "checkout")


@pytest.mark.parametrize("route", _COMFYUI_ROUTES)
def test_the_comfyui_node_installs_as_its_readme_says(
    built: tuple[Path, Path, list[str]], tmp_path: Path, route: str
) -> None:
    pytest.importorskip("spandrel", reason="the spandrel extra is not installed")
    src, wheel, _ = built
    node = src / "integrations" / "comfyui"
    readme = (node / "README.md").read_text()
    target = wheel if route == "wheel" else src
    # the README's commands for this route, with its placeholder paths pointing here
    placeholder = {"wheel": "/path/to/edsr_lib-VERSION-py3-none-any.whl", "checkout": "/path/to/edsr-lib"}[route]
    line = next((ln for ln in readme.splitlines() if f'"{placeholder}[spandrel]"' in ln), None)
    assert line is not None, f"the node's README has no install line for a {route} ({placeholder})"
    assert line.lstrip().startswith("pip install ")
    python, env = _fresh_venv(tmp_path)
    _pip_install(python, f"{target}[spandrel]", cwd=tmp_path, env=env)
    # then the README's `pip install -r requirements.txt` finds edsr-lib[spandrel] installed
    out = _pip_install(python, "-r", node / "requirements.txt", cwd=tmp_path, env=env)
    assert "Requirement already satisfied: edsr-lib" in out, out
    site_packages = _borrow_dependencies(python, tmp_path)
    # ComfyUI imports the node's folder; it registers EDSR/MDSR with spandrel from the installed edsr-lib
    load = (
        "import importlib.util, sys, edsr_lib, spandrel\n"
        f"sys.path.insert(0, {str(REPO_ROOT / 'tests' / 'comfyui_stand_in')!r})\n"
        f"spec = importlib.util.spec_from_file_location('edsr-lib-nodes', {str(node / '__init__.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['edsr-lib-nodes'] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(edsr_lib.__file__, spandrel.MAIN_REGISTRY.get('EDSR') is not None)\n"
    )
    where, registered = _run(python, "-c", load, cwd=tmp_path, env=env).split()
    assert Path(where).is_relative_to(site_packages), where
    assert registered == "True"


def test_the_wheel_size_in_the_docs_is_the_built_one(built: tuple[Path, Path, list[str]]) -> None:
    _, wheel, _ = built
    text = (REPO_ROOT / "docs" / "installation.md").read_text()
    stated = re.search(r"The wheel is about (\d+) MB", text)
    assert stated, "docs/installation.md does not state the wheel's size"
    size = wheel.stat().st_size / 1e6
    assert abs(size - int(stated.group(1))) <= max(2.0, 0.05 * size), (
        f"the wheel is {size:.1f} MB; docs/installation.md says about {stated.group(1)} MB"
    )


def test_the_version_has_one_owner_and_the_changelog_names_it() -> None:
    version = edsr_lib.__version__
    assert re.search(r'^dynamic = \["version"\]', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    for path in (REPO_ROOT / "edsr_lib").rglob("*.py"):
        if path.name != "_version.py":
            text = path.read_text()
            assert not re.search(r"^__version__\s*=", text, re.M), f"{path} sets __version__ too"
            assert f'"{version}"' not in text, f"{path} writes the version {version} out"
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[([^\]]+)\]", changelog, re.M)
    assert first and first.group(1) == version, f"CHANGELOG.md's latest section is not {version}"


def test_the_torch_floor_is_the_same_in_pyproject_and_the_docs() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    floor = re.search(r'"torch>=([\d.]+)"', (root / "pyproject.toml").read_text()).group(1)
    import torch

    assert hasattr(torch, "accelerator") and hasattr(torch, "OutOfMemoryError")  # what the floor is for
    assert f"Any PyTorch from {floor} works" in (root / "README.md").read_text()
    assert f"PyTorch {floor} or newer" in (root / "docs" / "installation.md").read_text()
    assert tuple(int(p) for p in floor.split(".")) >= (2, 6)  # torch.accelerator is new in 2.6
