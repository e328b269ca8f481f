"""The suite's device rule: tests not marked ``gpu`` run on the CPU even where CUDA is reported (``--fake-cuda``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

INNER_TESTS = """
import subprocess, sys

import pytest, torch

from edsr_lib._device import resolve_device


def test_a_plain_test_sees_no_accelerator():
    assert resolve_device() == torch.device("cpu") and resolve_device("auto") == torch.device("cpu")
    assert not torch.cuda.is_available() and torch.cuda.device_count() == 0
    child = "import torch; print(torch.cuda.is_available(), torch.cuda.device_count())"
    assert subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout.split() == [
        "False", "0"
    ]


def test_the_fake_cuda_fixture_reports_cuda(fake_cuda):
    assert resolve_device() == torch.device("cuda")


@pytest.mark.gpu
def test_gpu_tests_are_skipped_when_cuda_is_faked():
    raise AssertionError("a gpu test ran on a machine without CUDA")
"""


def test_fake_cuda_keeps_plain_tests_on_the_cpu_and_skips_gpu_tests(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs CUDA\naddopts = --strict-markers\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--fake-cuda", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed, 1 skipped" in done.stdout and "CUDA is faked (--fake-cuda)" in done.stdout


def test_cuda_tests_are_marked_gpu_not_skipped_by_hand() -> None:
    """A CUDA test needs the ``gpu`` mark: the GPU window runs ``pytest -m gpu``, which deselects the rest.

    A ``skipif(not torch.cuda.is_available())`` without the mark is never run anywhere
    (test_imresize's CUDA check was such a test).
    """
    unmarked = []
    for path in sorted(CONFTEST.parent.glob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        if "pytestmark = pytest.mark.gpu" in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = [ast.unparse(d) for d in node.decorator_list]
                cuda_only = any(m.startswith("pytest.mark.skipif(not torch.cuda.is_available()") for m in marks)
                if cuda_only and "pytest.mark.gpu" not in marks:
                    unmarked.append(f"{path.name}::{node.name}")
    assert unmarked == [], f"mark these @pytest.mark.gpu (the GPU window runs only those): {unmarked}"
