"""The package's import graph points one way: no circle, and no import hidden inside a function.

The graph is read from the source (``ast``), not by importing: an edge A -> B for every
``import`` in A of a module B of ``edsr_lib``, at module level, inside a function, or
type-only (``if TYPE_CHECKING:``). Type-only imports run nothing, but a module typed against
another knows it as much as one that imports it: a circle through them is a circle.
Importing ``edsr_lib.x.y`` runs ``edsr_lib/x/__init__.py`` first, so the edge goes to that
package too (unless A is inside it).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "edsr_lib"

#: Third-party modules a function may import, because the package must not pay for them on import.
LAZY_THIRD_PARTY = {
    "onnx": "optional extra [onnx]; the ONNX export's opset range, the check of the opset it wrote, and the check "
    "of an exported file (its inputs, and bf16 files run by onnx.reference) need it",
    "onnxruntime": "optional extra [onnx]; the ONNX check after an export and backend='onnxruntime' need it",
    "openvino": "optional extra [openvino]; only backend='openvino' needs it",
    "pnnx": "optional extra [ncnn]; only the NCNN export needs it",
    "executorch.exir": "optional extra [executorch] (seconds to import); only the ExecuTorch export needs it",
    "executorch.backends.xnnpack.partition.xnnpack_partitioner": "optional extra [executorch]: the export's delegate",
    "executorch.runtime": "optional extra [executorch]; only the check of an ExecuTorch export runs it",
    "coremltools": "optional extra [coreml]; only the Core ML export and its check need it",
    "ncnn": "optional extra [ncnn]; only the check of an NCNN export needs it",
    "torch.utils.tensorboard": "optional (tensorboard); seconds to import, and only runs that log to it need it",
}

#: The modules allowed to import by name at run time (``importlib.import_module``, ``__import__``).
DYNAMIC_IMPORTERS = {
    "edsr_lib": "the package's lazy attributes (PEP 562), and timm_bridge when timm is already imported",
    "edsr_lib.export": "checks that the optional onnx and onnxruntime are installed, to name the extra if not",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who, where, what, whether it sits inside a function, whether it is type-only."""

    module: str
    line: int
    target: str
    in_function: bool
    type_only: bool = False


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The modules an import statement imports (``from pkg import sub`` imports ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [source, *subs]


def _imports_in(tree: ast.AST, module: str) -> list[Import]:
    """The imports of one module's syntax tree, type-only ones included (and marked)."""
    found = []

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) and _is_type_checking(child):
                for stmt in child.body:
                    visit_one(stmt, in_function, True)
                for stmt in child.orelse:
                    visit_one(stmt, in_function, type_only)
                continue
            visit_one(child, in_function, type_only)

    def visit_one(child: ast.AST, in_function: bool, type_only: bool) -> None:
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.extend(Import(module, child.lineno, t, in_function, type_only) for t in _targets(child, module))
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        visit(child, inner, type_only)

    visit(tree, False, False)
    return found


def _imports() -> list[Import]:
    return [imp for module, path in MODULES.items() for imp in _imports_in(ast.parse(path.read_text("utf-8")), module)]


def _owner(target: str) -> str | None:
    """The edsr_lib module ``target`` names (``edsr_lib.hub.from_pretrained`` -> ``edsr_lib.hub``)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in _imports():
        target = _owner(imp.target)
        if target is None or target == imp.module:
            continue
        graph[imp.module].add(target)
        parts = target.split(".")
        for n in range(1, len(parts)):  # the packages above the target run first
            package = ".".join(parts[:n])
            if not (imp.module == package or imp.module.startswith(package + ".")):
                graph[imp.module].add(package)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _in_cli(module: str) -> bool:
    return module == "edsr_lib.cli" or module.startswith("edsr_lib.cli.")


def test_the_graph_sees_the_packages_modules() -> None:
    graph = _graph()
    assert {"edsr_lib.registry", "edsr_lib._registry", "edsr_lib.hub", "edsr_lib.models.edsr"} <= set(graph)
    assert "edsr_lib._registry" in graph["edsr_lib.models.edsr"]
    assert "edsr_lib.models" in graph["edsr_lib.registry"]


def test_type_only_imports_are_edges() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .models import SRModel\nimport torch\n"
    found = _imports_in(ast.parse(source), "edsr_lib._hub")
    assert [(i.target, i.type_only) for i in found] == [("typing", False), ("edsr_lib.models", True), ("torch", False)]


def test_a_circle_is_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, f"import circles (module-level, function-level and type-only imports together): {cycles}"


def test_no_function_level_import_outside_the_cli() -> None:
    hidden = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in _imports()
        if imp.in_function
        and not imp.type_only
        and not _in_cli(imp.module)
        and not any(imp.target == lazy or imp.target.startswith(lazy + ".") for lazy in LAZY_THIRD_PARTY)
    ]
    assert not hidden, "imports inside functions (move them to the top of the module): " + "; ".join(hidden)


@pytest.mark.parametrize("lazy", sorted(LAZY_THIRD_PARTY))
def test_each_allowed_lazy_import_is_still_used(lazy: str) -> None:
    assert any(imp.in_function and imp.target == lazy for imp in _imports()), f"{lazy} is no longer imported lazily"


def test_only_the_package_init_imports_by_name() -> None:
    dynamic = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            by_name = isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__")
            if by_name and module not in DYNAMIC_IMPORTERS and not _in_cli(module):
                dynamic.append(f"{module}:{node.lineno}")
    assert not dynamic, f"imports by name at run time, which the graph cannot see: {dynamic}"


# ------------------------------------------------------------------ privacy is a module property
def _imported_names() -> list[tuple[str, int, str, str]]:
    """``(module, line, source module, name)`` for every ``from X import name`` of a module of the package."""
    found = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == "edsr_lib" or source.startswith("edsr_lib."):
                found.extend((module, node.lineno, source, alias.name) for alias in node.names)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_another_modules_private_names() -> None:
    """A name with a leading underscore is its module's own: used there and nowhere else in the package."""
    leaks = [
        f"{module}:{line} imports {name} from {source}"
        for module, line, source, name in _imported_names()
        if _is_private(name) and f"{source}.{name}" not in MODULES
    ]
    assert not leaks, "private names imported from another module (make them public in a private module): " + (
        "; ".join(leaks)
    )


def test_a_private_module_is_imported_only_within_its_package() -> None:
    """``pkg/_mod.py`` is ``pkg``'s own: modules inside ``pkg`` (and its subpackages) may import it, no other."""
    outside = []
    for imp in _imports():
        target = _owner(imp.target)
        if target is None:
            continue
        parts = target.split(".")
        for depth, part in enumerate(parts):
            if _is_private(part):
                package = ".".join(parts[:depth])
                if not (imp.module == package or imp.module.startswith(package + ".")):
                    outside.append(f"{imp.module}:{imp.line} imports {target}")
    assert not outside, f"private modules imported from outside their package: {outside}"


def test_the_privacy_checks_see_a_leak() -> None:
    source = "from ._hub import _read, WEIGHTS_NAME\nfrom .models import SRModel\n"
    names = [
        alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) for alias in node.names
    ]
    assert [n for n in names if _is_private(n)] == ["_read"] and not _is_private("__version__")


#: The package faces that do more than re-export, and why.
FACES_THAT_DO_MORE = {
    "edsr_lib": "the lazy re-exports of PEP 562 (__getattr__, __dir__), so that import edsr_lib needs no torch",
}


def test_package_faces_only_re_export() -> None:
    """An ``__init__.py`` holds a docstring, imports and ``__all__``: what it offers is defined in a module."""
    defining = {}
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module in FACES_THAT_DO_MORE:
            continue
        body = ast.parse(path.read_text("utf-8")).body
        extra = [
            f"{type(node).__name__} at line {node.lineno}"
            for node in body
            if not isinstance(node, ast.Import | ast.ImportFrom)
            and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
            and not (isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"])
        ]
        if extra:
            defining[module] = extra
    assert not defining, f"package faces that define more than they re-export: {defining}"
