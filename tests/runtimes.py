"""What the tests of the runtimes share: the installed runtimes as parameters, and a private export cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edsr_lib import backends

#: Each runtime the library knows, skipped where its package is not installed.
RUNTIMES = [
    pytest.param(b, marks=pytest.mark.skipif(b not in backends.installed_runtimes(), reason=f"needs {b}"))
    for b in backends.RUNTIMES
]


def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder of the test module's own, never the user's; its tests share it, so each model is exported once."""
    root = tmp_path_factory.mktemp("edsr_lib_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDSR_LIB_CACHE", str(root))
        yield root / "runtimes"
