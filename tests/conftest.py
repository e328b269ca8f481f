"""Shared fixtures: the real image sets, when present, and determinism."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The benchmark and training images live beside the repository, never inside it.
DATASETS_DIR = Path(os.environ.get("EDSR_LIB_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The folder of real image sets; skips the test when it is absent."""
    if not (DATASETS_DIR / "Set5" / "HR").is_dir():
        pytest.skip(f"needs the image sets at {DATASETS_DIR} (set EDSR_LIB_DATASETS to point elsewhere)")
    return DATASETS_DIR


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` on a machine without CUDA (CI has none)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
