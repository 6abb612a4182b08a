"""The functions templates call: Go's builtins (text/template/funcs.go) and Ollama's
(`json`, `currentDate`, `yesterdayDate`, `toTypeScriptType`, template/template.go).
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyollama.golang.fmt import sprint, sprint_value, sprintf, sprintln, type_name
from pyollama.golang.json import UnsupportedValueError, marshal
from pyollama.golang.values import NO_VALUE, NilPointer, Struct, Typed, Uint8, is_nil

# Parameter kinds of template functions: how evalArg converts an argument for them.
P_VALUE = "reflect.Value"  # any value, a missing one included
P_ANY = "interface {}"  # a missing value becomes nil
P_STRING = "string"


@dataclass(frozen=True)
class Func:
    fn: Callable[..., Any]
    params: tuple[str, ...]  # kinds of the fixed parameters
    variadic: str | None = None  # kind of the ... parameter
    short_circuit: str | None = None  # "and" / "or": evaluated lazily by the executor
    wants_iface: bool = False  # `slice`: needs to know which arguments Go holds in an interface{}


def indirect_interface(v: Any) -> Any:
    return NO_VALUE if v is None else v


def is_true(v: Any) -> tuple[bool, bool]:
    """isTrue: (truth, ok)."""
    if v is NO_VALUE or v is None:
        return False, True
    if isinstance(v, bool):
        return v, True
    if isinstance(v, (int, float, complex, str, bytes, bytearray, list, tuple, dict)):
        return bool(v), True
    if isinstance(v, Typed):
        return bool(v.value), True
    if isinstance(v, NilPointer):
        return False, True
    if isinstance(v, Struct):
        return True, True
    return False, False


def kind_of(v: Any) -> str:
    if v is NO_VALUE:
        return "invalid"
    if v is None:
        return "interface"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray, list, tuple)):
        return "slice"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, Typed):
        return kind_of(v.value)
    if isinstance(v, NilPointer):
        return "ptr"
    if isinstance(v, Struct):
        return "ptr" if v.pointer else "struct"
    return "other"


_BASIC = {"bool", "int", "float", "complex", "string"}


class CallError(Exception):
    """A template function's own error: reported as `error calling NAME: MESSAGE`."""


def _fn_eq(arg1: Any, *args: Any) -> bool:
    if len(args) == 1 and type(arg1) is str and type(args[0]) is str:  # the common `eq .Role "user"`
        return arg1 == args[0]
    arg1 = indirect_interface(arg1)
    if not args:
        raise CallError("missing argument for comparison")
    k1 = kind_of(arg1)
    for arg in args:
        arg = indirect_interface(arg)
        k2 = kind_of(arg)
        truth = False
        if (k1 in _BASIC or k2 in _BASIC) and k1 != k2:
            if arg1 is not NO_VALUE and arg is not NO_VALUE:
                raise CallError("incompatible types for comparison")
        elif k1 in _BASIC:
            truth = unwrap(arg1) == unwrap(arg)
        else:
            if not (k1 == k2 or k1 == "invalid" or k2 == "invalid"):
                raise CallError(f"non-comparable types {sprintf('%s', [arg1])}: {type_name(arg1)}, "
                                 f"{type_name(arg)}: {sprint_value(arg)}")
            nil1, nil2 = is_nil(arg1), is_nil(arg)
            if nil1 or nil2:
                truth = nil1 == nil2
            elif k2 in ("slice", "map") or (k2 == "struct"):
                raise CallError(f"non-comparable type {sprintf('%s', [arg])}: {type_name(arg)}")
            else:
                truth = unwrap(arg1) is unwrap(arg)
        if truth:
            return True
    return False


def unwrap(v: Any) -> Any:
    return v.value if isinstance(v, Typed) else v


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(a: Any, b: Any) -> bool:
    a, b = indirect_interface(a), indirect_interface(b)
    k1, k2 = kind_of(a), kind_of(b)
    if k1 not in _BASIC or k2 not in _BASIC:
        raise CallError("invalid type for comparison")
    if k1 != k2:
        raise CallError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise CallError("invalid type for comparison")
    a, b = unwrap(a), unwrap(b)
    if k1 == "string":
        return bool(a.encode("utf-8", "surrogateescape") < b.encode("utf-8", "surrogateescape"))
    return bool(a < b)


def _fn_le(a: Any, b: Any) -> bool:
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a: Any, b: Any) -> bool:
    return not _fn_le(a, b)


def _fn_ge(a: Any, b: Any) -> bool:
    return not _fn_lt(a, b)


def _fn_not(v: Any) -> bool:
    return not is_true(indirect_interface(v))[0]


def _fn_len(v: Any) -> int:
    if v is None or isinstance(v, NilPointer):
        raise CallError("len of nil pointer")
    if v is NO_VALUE:
        raise CallError("reflect: call of reflect.Value.Type on zero Value")
    inner = unwrap(v)
    if isinstance(inner, str):
        return len(inner.encode("utf-8", "surrogateescape"))
    if isinstance(inner, (bytes, bytearray, list, tuple, dict)):
        return len(inner)
    raise CallError(f"len of type {type_name(v)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is NO_VALUE:
        raise CallError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise CallError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise CallError(f"index out of range: {index}")
    return index


def _fn_index(item: Any, *indexes: Any) -> Any:
    item = indirect_interface(item)
    if item is NO_VALUE:
        raise CallError("index of untyped nil")
    for index in indexes:
        index = indirect_interface(index)
        if item is None or isinstance(item, NilPointer):
            raise CallError("index of nil pointer")
        inner = unwrap(item)
        if isinstance(inner, str):
            data = inner.encode("utf-8", "surrogateescape")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise CallError("reflect: string index out of range")
            item = Uint8(data[x])
        elif isinstance(inner, (bytes, bytearray, list, tuple)):
            x = _index_arg(index, len(inner))
            if x == len(inner):
                raise CallError("reflect: slice index out of range")
            item = inner[x]
        elif isinstance(inner, dict):
            if index is NO_VALUE:
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise CallError(f"value has type {type_name(index)}; should be string")
            item = inner.get(index)
        else:
            raise CallError(f"can't index item of type {type_name(item)}")
    return item


def _fn_slice(item: Any, *indexes: Any, iface: Sequence[bool] = ()) -> Any:
    """`slice`; `iface` flags index arguments Go holds in an interface{}, which slice does not unwrap."""
    item = indirect_interface(item)
    if item is NO_VALUE:
        raise CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise CallError(f"too many slice indexes: {len(indexes)}")
    inner = unwrap(item)
    data: Any
    if isinstance(inner, str):
        if len(indexes) == 3:
            raise CallError("cannot 3-index slice a string")
        data = inner.encode("utf-8", "surrogateescape")
    elif isinstance(inner, (bytes, bytearray, list, tuple)):
        data = inner
    else:
        raise CallError(f"can't slice item of type {type_name(item)}")
    idx = [0, len(data), len(data)]
    for i, index in enumerate(indexes):
        if i < len(iface) and iface[i]:
            raise CallError("cannot index slice/array with type interface {}")
        idx[i] = _index_arg(index, len(data))
    if idx[0] > idx[1]:
        raise CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = data[idx[0]:idx[1]]
    if isinstance(inner, str):
        return out.decode("utf-8", "surrogateescape")
    return list(out) if isinstance(out, tuple) else out


def _eval_args_string(args: Sequence[Any]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint of printable values (nil: `<no value>`)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is NO_VALUE or a is None else a for a in args])


def _fn_html(*args: Any) -> str:
    s = _eval_args_string(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\x00", "\ufffd"))


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
               "=": "\\u003D"}


def _fn_js(*args: Any) -> str:
    out = []
    for ch in _eval_args_string(args):
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ord(ch) >= 0x80 and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _fn_urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args_string(args).encode("utf-8", "surrogateescape"), safe="~")


def _fn_call(fn: Any, *args: Any) -> Any:
    fn = indirect_interface(fn)
    if fn is NO_VALUE:
        raise CallError("call of nil")
    raise CallError(f"non-function of type {type_name(fn)}")


def _fn_json(v: Any) -> str:
    # Ollama: `b, _ := json.Marshal(v); return string(b)`; a marshal error yields "".
    try:
        return marshal(v)
    except UnsupportedValueError:
        return ""


def _fn_current_date(*_args: str) -> str:
    # Ollama ignores the optional format argument and always writes YYYY-MM-DD (local time).
    return datetime.date.today().isoformat()


def _fn_yesterday_date(*_args: str) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


def _ts_type(prop: Struct) -> str:
    any_of = prop.fields.get("AnyOf") or []
    if any_of:
        return " | ".join(_ts_type(p) if isinstance(p, Struct) else "any" for p in any_of)
    types = unwrap(prop.fields.get("Type")) or []
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _fn_to_typescript_type(v: Any) -> str:
    if isinstance(v, Struct) and v.type_name in ("api.ToolProperty", "*api.ToolProperty"):
        return _ts_type(v)
    return "any"


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: None, (P_VALUE,), P_VALUE, short_circuit="and"),
    "or": Func(lambda *a: None, (P_VALUE,), P_VALUE, short_circuit="or"),
    "call": Func(_fn_call, (P_VALUE,), P_VALUE),
    "html": Func(_fn_html, (), P_ANY),
    "index": Func(_fn_index, (P_VALUE,), P_VALUE),
    "slice": Func(_fn_slice, (P_VALUE,), P_VALUE, wants_iface=True),
    "js": Func(_fn_js, (), P_ANY),
    "len": Func(_fn_len, (P_VALUE,)),
    "not": Func(_fn_not, (P_VALUE,)),
    "print": Func(lambda *a: sprint(a), (), P_ANY),
    "printf": Func(lambda f, *a: sprintf(f, a), (P_STRING,), P_ANY),
    "println": Func(lambda *a: sprintln(a), (), P_ANY),
    "urlquery": Func(_fn_urlquery, (), P_ANY),
    "eq": Func(_fn_eq, (P_VALUE,), P_VALUE),
    "ge": Func(_fn_ge, (P_VALUE, P_VALUE)),
    "gt": Func(_fn_gt, (P_VALUE, P_VALUE)),
    "le": Func(_fn_le, (P_VALUE, P_VALUE)),
    "lt": Func(_fn_lt, (P_VALUE, P_VALUE)),
    "ne": Func(_fn_ne, (P_VALUE, P_VALUE)),
}

# Ollama's template.funcs (template/template.go).
OLLAMA_FUNCS: dict[str, Func] = {
    "json": Func(_fn_json, (P_ANY,)),
    "currentDate": Func(_fn_current_date, (), P_STRING),
    "yesterdayDate": Func(_fn_yesterday_date, (), P_STRING),
    "toTypeScriptType": Func(_fn_to_typescript_type, (P_ANY,)),
}

ALL_FUNC_NAMES = frozenset(BUILTINS) | frozenset(OLLAMA_FUNCS)
