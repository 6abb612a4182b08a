"""The server's layering: route modules call the service modules, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pyollama.server.routes

ROUTES = Path(pyollama.server.routes.__file__).parent


def _imported_modules(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.append("." * node.level + (node.module or ""))
    return names


def test_route_modules_never_import_each_other() -> None:
    modules = sorted(ROUTES.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        imported = _imported_modules(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        routes = [name for name in imported if name.startswith(("pyollama.server.routes", "."))]
        assert routes == [], f"{path.name} imports {routes}"
