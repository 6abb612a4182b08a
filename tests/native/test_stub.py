"""`pyollama/_native.pyi` against the compiled module: the same names, the same parameters.

The stub is kept by hand, so this is what notices a binding added (or renamed) in native/ without
its stub. Parameters are compared with the signature pybind11 writes at the top of each docstring.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import pyollama
import pyollama._native as native

# The stub lives in the source package (an editable install keeps the .so elsewhere).
STUB = Path(pyollama.__file__).resolve().parent / "_native.pyi"
# Present only in a build with -DGGML_RPC=on (native/rpc.cpp); has_rpc says which.
RPC_ONLY = {"rpc_add_server", "rpc_check_endpoint", "rpc_registered", "rpc_start_server", "rpc_proto_version"}


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_top_level() -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in _stub().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _stub_members(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}


def _is_binding(value: object) -> bool:
    """A function or property that the extension itself defines (not one inherited from object)."""
    return isinstance(value, property) or type(value).__name__ in ("instancemethod", "builtin_function_or_method")


def _module_names() -> set[str]:
    return {name for name in vars(native) if not name.startswith("_")} | {"__version__"}


def _class_members(cls: type) -> set[str]:
    return {
        name
        for name, value in vars(cls).items()
        if _is_binding(value) and name != "_pybind11_conduit_v1_"
    }


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _doc_params(func: object) -> list[tuple[str, bool]]:
    """(name, has default) of each parameter in pybind11's docstring signature, `self` left out."""
    first = (func.__doc__ or "").strip().splitlines()[0]
    inside = first[first.index("(") + 1 : first.rindex(") -> ")]
    params = []
    for part in _split_top_level(inside):
        name = part.split(":", 1)[0].strip()
        if name != "self":
            params.append((name, "=" in part))
    return params


def _stub_params(node: ast.FunctionDef) -> list[tuple[str, bool]]:
    args = node.args.args
    n_plain = len(args) - len(node.args.defaults)
    params = [(arg.arg, i >= n_plain) for i, arg in enumerate(args)]
    return [p for p in params if p[0] != "self"]


def test_stub_names_every_module_level_binding_and_no_others() -> None:
    stub = set(_stub_top_level()) - {"__all__"}  # a stub-only declaration of the public names
    compiled = _module_names()
    assert compiled - stub == set(), "bindings missing from _native.pyi"
    extra = stub - compiled
    if not native.has_rpc:
        extra -= RPC_ONLY
    assert extra == set(), "_native.pyi names things the module lacks"


def test_stub_all_lists_the_public_names() -> None:
    declared = next(
        node.value for node in _stub().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__"
        and node.value is not None
    )
    listed = set(ast.literal_eval(declared))
    assert listed == {name for name in _stub_top_level() if not name.startswith("_")}


@pytest.mark.parametrize("name", sorted(n for n, v in vars(native).items() if inspect.isclass(v)))
def test_stub_class_has_every_method_and_property(name: str) -> None:
    node = _stub_top_level().get(name)
    assert isinstance(node, ast.ClassDef), f"class {name} missing from _native.pyi"
    stubbed = set(_stub_members(node))
    compiled = _class_members(getattr(native, name))
    assert compiled - stubbed == set(), f"{name}: members missing from the stub"
    assert stubbed - compiled == set(), f"{name}: the stub names members the class lacks"


def _functions() -> list[tuple[str, object, ast.FunctionDef]]:
    top = _stub_top_level()
    found: list[tuple[str, object, ast.FunctionDef]] = []
    for name, value in sorted(vars(native).items()):
        node = top.get(name)
        if type(value).__name__ == "builtin_function_or_method" and isinstance(node, ast.FunctionDef):
            found.append((name, value, node))
        elif inspect.isclass(value) and isinstance(node, ast.ClassDef):
            members = _stub_members(node)
            for member, attr in sorted(vars(value).items()):
                if type(attr).__name__ == "instancemethod" and member in members and member != "_pybind11_conduit_v1_":
                    found.append((f"{name}.{member}", attr, members[member]))
    return found


def test_stub_parameters_match_docstring_signatures() -> None:
    checked = 0
    for qualname, func, node in _functions():
        assert _stub_params(node) == _doc_params(func), qualname
        checked += 1
    assert checked > 80


def test_stub_properties_are_properties() -> None:
    top = _stub_top_level()
    for name, cls in vars(native).items():
        if not inspect.isclass(cls):
            continue
        members = _stub_members(top[name])  # type: ignore[arg-type]
        for member, value in vars(cls).items():
            if isinstance(value, property):
                assert member in members, f"{name}.{member} missing from the stub"
                decorators = [d.id for d in members[member].decorator_list if isinstance(d, ast.Name)]
                assert decorators == ["property"], f"{name}.{member}"
