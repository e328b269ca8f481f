"""Shared fixtures: the real image sets, when present, determinism, and which device tests see."""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The benchmark and training images live beside the repository, never inside it.
DATASETS_DIR = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))

#: Whether this machine really has CUDA, asked before ``--fake-cuda`` can change the answer.
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The folder of real image sets; skips the test when it is absent."""
    if not (DATASETS_DIR / "Set5" / "HR").is_dir():
        pytest.skip(f"needs the image sets at {DATASETS_DIR} (set EDSR_LIB_DATASETS to point elsewhere)")
    return DATASETS_DIR


#: Where installed packages live: the folders they add to sys.path when imported (ray, setuptools) are theirs.
_LIBRARY_ROOTS = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")})
#: Folders of the repository whose files are imported under their own names (tests/ is on sys.path).
_IMPORTABLE_ROOTS = (REPO_ROOT / "edsr_lib", Path(__file__).parent)


def _importable(file: str) -> bool:
    return file.startswith(_LIBRARY_ROOTS) or any(Path(file).is_relative_to(root) for root in _IMPORTABLE_ROOTS)


def _leaks(path: list[str], modules: dict[str, object], threads: int) -> list[str]:
    """What a test left in ``sys.path``, ``sys.modules`` and torch's threads that outlasts it, against before it."""
    found = [f"sys.path gained {p!r}" for p in sys.path if p not in path and not p.startswith(_LIBRARY_ROOTS)]
    if torch.get_num_threads() != threads:
        found.append(f"torch.set_num_threads({torch.get_num_threads()}) where it was {threads}")
    if sys.modules.get("__main__") is not modules.get("__main__"):
        found.append("sys.modules['__main__'] was replaced")
    for name, module in list(sys.modules.items()):
        if name in modules:
            continue
        if module is None:
            found.append(f"sys.modules[{name!r}] = None")
            continue
        file = getattr(module, "__file__", None) or ""
        # installed packages alias their own modules when first imported (requests.packages.*): only others count
        if getattr(module, "__name__", name) != name and not file.startswith(_LIBRARY_ROOTS):
            found.append(f"sys.modules[{name!r}] is an alias of {module.__name__!r}")
        elif file and not _importable(file):
            found.append(f"sys.modules[{name!r}] holds {file}, loaded by path")
    return found


_State = tuple[list[str], dict[str, object], int]


def _import_state() -> _State:
    return list(sys.path), dict(sys.modules), torch.get_num_threads()


@pytest.fixture(autouse=True, scope="module")
def _no_leaked_imports_by_module() -> Iterator[None]:
    """What a module's own fixtures add to sys.path or sys.modules is undone when the module ends, or it fails."""
    before = _import_state()
    yield
    if leaks := _leaks(*before):
        pytest.fail("the module (its fixtures, or a test) leaked global state: " + "; ".join(leaks), pytrace=False)


_BEFORE_TEST = pytest.StashKey[_State]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    result = yield
    item.stash[_BEFORE_TEST] = _import_state()  # once the fixtures are set up: what monkeypatch undoes is not a leak
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test that adds to sys.path, registers a module by hand or sets torch's threads undoes it, or fails.

    Each outlasts the test and changes what every later test imports or how it runs (monkeypatch undoes the
    first two; a fixture that puts the threads back, as test_train's, the third).
    """
    result = yield
    if (before := item.stash.get(_BEFORE_TEST, None)) and (leaks := _leaks(*before)):
        pytest.fail("the test leaked global state: " + "; ".join(leaks), pytrace=False)
    return result


@pytest.fixture(autouse=True, scope="session")
def _private_runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The runtimes' exports and ``"auto"``'s record go to a folder of the session, never the user's cache.

    An :class:`edsr_lib.Upscaler` made with its defaults on a CPU measures the installed
    backends once (``backend="auto"``); a test that needs its own folder sets ``EDSR_LIB_CACHE`` again.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDSR_LIB_CACHE", str(tmp_path_factory.mktemp("edsr_lib_cache")))
        yield


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Puts torch's CPU threads back after a test that runs code which sets them (``--threads``)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def report_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch report one CUDA device (``torch.cuda`` and ``torch.accelerator``) on a machine without one.

    Nothing can run there: this only shows which code asks for the default device.
    """
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "device_count", lambda: 1)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("cuda"))


def hide_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torch report no accelerator, in this process and (``CUDA_VISIBLE_DEVICES``) in the ones it starts."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    monkeypatch.setattr(torch.accelerator, "device_count", lambda: 0)
    # without the check, torch names the accelerator its build is for, available or not (torch.optim asks with it)
    built_for = torch.accelerator.current_accelerator
    monkeypatch.setattr(
        torch.accelerator, "current_accelerator", lambda check_available=False: None if check_available else built_for()
    )
    # this process asked CUDA for its devices at collection (HAS_CUDA), so only child processes read this
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch reports one CUDA device during the test (see :func:`report_cuda`), even in a test not marked ``gpu``."""
    report_cuda(monkeypatch)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests not marked ``gpu`` run on the CPU whatever the host has.

    They compare with CPU results (byte for byte, or to 1e-6), which CUDA under TF32 or
    bf16 would not match, so every default device (``device="auto"``, the command line's,
    Ray's) must resolve to the CPU. Run with ``--fake-cuda`` to see it on a machine
    without CUDA.
    """
    # markers, not keywords: a folder named "gpu" on the path is a keyword too
    if request.node.get_closest_marker("gpu") is None:
        hide_accelerators(monkeypatch)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fake-cuda",
        action="store_true",
        help="report a CUDA device (torch.cuda, torch.accelerator) on a machine without one, to check that the "
        "tests not marked gpu keep to the CPU; the gpu tests are then skipped",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fake-cuda"):
        patch = pytest.MonkeyPatch()
        report_cuda(patch)
        config.add_cleanup(patch.undo)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` on a machine without CUDA (CI has none), or when CUDA is faked."""
    if HAS_CUDA and not config.getoption("--fake-cuda"):
        return
    reason = "CUDA is faked (--fake-cuda)" if config.getoption("--fake-cuda") else "needs a CUDA device"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
