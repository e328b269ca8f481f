"""One name, one meaning: a public name means the same thing wherever the package exports it.

Swept over every public module (not ``cli``, not ``_private`` ones), so that a module added
tomorrow is checked too: a constant two modules export is one object (a re-export) or one
value (functions of one name in two integrations, such as ``install``, are each module's
verb), and a package whose names load lazily (PEP 562) exports no name of a submodule, since
importing that submodule would bind the module over the name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict
from types import ModuleType
from typing import Any

import pytest

import edsr_lib


def _public_modules() -> dict[str, ModuleType]:
    names = ["edsr_lib"] + [
        info.name
        for info in pkgutil.walk_packages(edsr_lib.__path__, "edsr_lib.")
        if not any(part.startswith("_") for part in info.name.split(".")) and not info.name.startswith("edsr_lib.cli")
    ]
    modules = {}
    for name in names:
        try:
            modules[name] = importlib.import_module(name)
        except ModuleNotFoundError as err:  # an optional extra (spandrel, ray) that is not installed
            if (err.name or "").startswith("edsr_lib"):
                raise
    return modules


MODULES = _public_modules()


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # a value whose == is not a plain truth (tensors)
        return False


def test_the_sweep_sees_the_public_modules() -> None:
    assert {"edsr_lib", "edsr_lib.hub", "edsr_lib.registry", "edsr_lib.convert", "edsr_lib.published"} <= set(MODULES)


def test_a_name_means_one_thing_in_every_module_that_exports_it() -> None:
    exported: dict[str, dict[str, Any]] = defaultdict(dict)
    for module_name, module in MODULES.items():
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if not callable(value) and not isinstance(value, ModuleType):
                exported[name][module_name] = value
    clashes = {
        name: sorted(f"{m}: {type(v).__name__}" for m, v in where.items())
        for name, where in exported.items()
        if not all(_same(v, next(iter(where.values()))) for v in where.values())
    }
    assert not clashes, f"names that mean different things in different modules: {clashes}"


@pytest.mark.parametrize(
    "package", sorted(n for n, m in MODULES.items() if hasattr(m, "__path__") and "__getattr__" in vars(m))
)
def test_no_lazy_package_exports_something_else_under_a_submodules_name(package: str) -> None:
    module = MODULES[package]
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    shadowed = sorted(
        name
        for name in getattr(module, "__all__", ())
        if name in submodules and not isinstance(getattr(module, name), ModuleType)
    )
    assert not shadowed, f"{package} exports {shadowed}, which are also the names of its submodules"
