"""The package's import graph: dependencies point one way, so module-level imports form no cycle,
and the layers import only downwards (DESIGN.md: server -> engine, store, templates -> llama ->
_native; store never imports engine or server; engine never imports flask)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "pyollama"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(path: Path) -> set[str]:
    """pyollama modules imported when `path` is imported (not lazily inside functions, not only
    for type checking). `from pkg import name` counts as importing pkg.name when that is a module."""
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("pyollama"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyollama"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in MODULES else node.module)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {name for name in found if name in MODULES}


GRAPH = {name: _module_level_imports(path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
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
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return out


def _package_of(name: str) -> str:
    """The modules that share a package, treated as one part: pyollama.server.routes.chat -> server."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or name in ("pyollama.cli",) else parts[-1]


def test_module_level_imports_form_no_cycle() -> None:
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    cycles = [c for c in _cycles() if not all(m.startswith(c[0].rsplit(".", 1)[0]) for m in c)]
    assert cycles == []


def test_layers_import_only_downwards() -> None:
    forbidden = {
        "store": {"engine", "server", "cli"},
        "engine": {"server", "cli"},
        "templates": {"engine", "server", "store", "cli"},
        "llama": {"engine", "server", "store", "templates", "cli"},
        "golang": {"engine", "server", "store", "templates", "llama", "cli", "gguf"},
        "gguf": {"engine", "server", "store", "templates", "llama", "cli"},
        "server": {"cli"},
    }
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _package_of(target) in forbidden.get(_package_of(module), set())
    )
    assert wrong == []


def test_engine_never_imports_flask() -> None:
    for name, path in MODULES.items():
        if name.startswith("pyollama.engine"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not any(m == "flask" or m.startswith("flask.") for m in imported), name
