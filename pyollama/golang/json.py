"""Go's encoding/json: Marshal and Encoder.Encode byte for byte, and the decoder's error texts.

Marshal writes compact JSON, escapes `<`, `>`, `&`, U+2028 and U+2029 (HTML-safe, as
json.Marshal and a default json.Encoder do), writes invalid UTF-8 as `\\ufffd`, floats in
'f' notation unless tiny or huge, and sorts map keys. Byte-identical output matters: the
digests of the blobs Ollama writes (config, params) depend on it.

Decoding uses Python's json module; `decode` only turns its failures into Go's texts
(`invalid character 'x' looking for beginning of value`).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from pyollama.golang.fmt import type_name
from pyollama.golang.strconv import format_float as _strconv_format_float
from pyollama.golang.strconv import quote_rune
from pyollama.golang.values import NO_VALUE, OMIT_EMPTY, OMIT_NIL, NilPointer, Struct, Typed, is_nil


class UnsupportedValueError(ValueError):
    """json.Marshal refuses the value (NaN, an infinity, a complex number); str() is Go's error text."""


class DecodeError(ValueError):
    """json.SyntaxError: decoding failed; str() is Go's error text (`unexpected EOF`, `invalid character ...`)."""


# -- encoding --------------------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    esc = _ESCAPES.get(ch)
    if esc is not None:
        return esc
    if 0xD800 <= ord(ch) <= 0xDFFF:  # not valid UTF-8 (a surrogateescape'd byte): Go writes \ufffd
        return "\\ufffd"
    return f"\\u{ord(ch):04x}"


def quote(s: str) -> str:
    """A JSON string as json.Marshal writes it (HTML-safe)."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def format_float(f: float, bits: int = 64) -> str:
    """A float64 (or, with bits=32, a float32: a []float32's element) as encoding/json writes it:
    shortest digits, 'e' notation (e-7, not e-07) only below 1e-6 and from 1e21 on (compared as
    a float32 for 32 bits). UnsupportedValueError for NaN and the infinities."""
    if math.isnan(f) or math.isinf(f):
        raise UnsupportedValueError(f"json: unsupported value: {_strconv_format_float(f)}")
    if bits == 32:
        a32 = abs(np.float32(f))
        exponent = a32 != 0 and bool(a32 < np.float32(1e-6) or a32 >= np.float32(1e21))
    else:
        exponent = f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21)
    fmt = "e" if exponent else "f"
    s = _strconv_format_float(f, fmt, -1, bits)
    if fmt == "e":
        s = re.sub(r"e-0(\d)$", r"e-\1", s)
    return s


def marshal(v: Any, *, sort_keys: bool = True) -> str:
    """json.Marshal, as text (no trailing newline).

    Python dicts are Go maps, whose keys Go sorts; pass `sort_keys=False` for a dict that stands
    for a Go struct (fields in declaration order). `Struct` values always keep field order and
    honour `omitempty`. UnsupportedValueError with Go's text for what Go cannot marshal.
    """
    if v is None or v is NO_VALUE or isinstance(v, NilPointer):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, (bytes, bytearray)):
        return '"' + base64.b64encode(bytes(v)).decode("ascii") + '"'
    if isinstance(v, Typed):
        if v.marshal is not None:
            return v.marshal()
        if v.nil:
            return "null"
        return marshal(v.value, sort_keys=sort_keys)
    if isinstance(v, Struct):
        parts = []
        for name, field, omit in v.json_fields:
            x = v.fields.get(field)
            if omit == OMIT_EMPTY and _is_empty(x):
                continue
            if omit == OMIT_NIL and is_nil(x):
                continue
            parts.append(quote(name) + ":" + marshal(x))
        return "{" + ",".join(parts) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(marshal(x, sort_keys=sort_keys) for x in v) + "]"
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: str(kv[0])) if sort_keys else list(v.items())
        return "{" + ",".join(quote(str(k)) + ":" + marshal(x, sort_keys=sort_keys) for k, x in items) + "}"
    raise UnsupportedValueError(f"json: unsupported type: {type_name(v)}")


def encode(v: Any, *, sort_keys: bool = True) -> bytes:
    """json.NewEncoder(w).Encode(v): marshal's text plus a newline, as UTF-8 bytes."""
    return (marshal(v, sort_keys=sort_keys) + "\n").encode("utf-8")


def _is_empty(v: Any) -> bool:
    """encoding/json's omitempty test."""
    if v is None or v is NO_VALUE or isinstance(v, NilPointer):
        return True
    if isinstance(v, (bool, int, float, str, bytes, list, tuple, dict)):
        return not v
    if isinstance(v, Typed):
        return v.nil or not v.value
    return False


# -- decoding errors -------------------------------------------------------------------------------


def kind(value: Any) -> str:
    """How the decoder names a JSON value in its type errors: bool, number, string, array, object."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_text(value: float) -> str:
    """The literal of a decoded number, as near as Python keeps it (Go quotes the source text)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def unmarshal_type_error(value: Any, field: str, go_type: str) -> str:
    """json.UnmarshalTypeError's text for `value` found in struct field `field` of type `go_type`."""
    what = kind(value)
    if what == "number" and go_type.startswith(("int", "uint")):
        what = f"number {_number_text(value)}"
    return f"json: cannot unmarshal {what} into Go struct field {field} of type {go_type}"


class _ConstantError(ValueError):
    """NaN/Infinity, which Python's json accepts and Go's rejects."""


def _reject_constant(name: str) -> Any:
    raise _ConstantError(name)


class _RangeError(ValueError):
    """A number literal beyond float64, which Go's decoder refuses (strconv.ParseFloat's range error)."""


def _parse_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _RangeError(literal)
    return value


def _parse_int(literal: str) -> int:
    # float64 ends at 309 digits; checked before int(), which refuses 4,300 digits and more.
    if len(literal) > 308 and math.isinf(float(literal)):
        raise _RangeError(literal)
    return int(literal)


def _quote_char(text: str, pos: int) -> str:
    """quoteChar of the byte at `pos`, as encoding/json quotes an offending byte."""
    raw = text[pos:].encode("utf-8")[:1]
    return quote_rune(raw[0]) if raw else "''"


def _innermost_container(text: str, end: int) -> str:
    """'{' or '[' for the container open at `end` (scans outside string literals)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


# Python's JSONDecodeError message -> what Go's scanner says about the offending character.
_SYNTAX_CONTEXTS = (
    ("Expecting value", "looking for beginning of value"),
    ("Expecting property name", "looking for beginning of object key string"),
    ("Expecting ':'", "after object key"),
    ("Invalid control character", "in string literal"),
    ("Invalid \\uXXXX", "in \\u hexadecimal character escape"),
)


def _syntax_error_text(text: str, exc: json.JSONDecodeError) -> str:
    pos = exc.pos
    if pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    if exc.msg.startswith("Invalid \\escape"):
        return f"invalid character {_quote_char(text, pos + 1)} in string escape code"
    context = "looking for beginning of value"
    if exc.msg.startswith("Expecting ',' delimiter"):
        in_object = _innermost_container(text, pos) == "{"
        context = "after object key:value pair" if in_object else "after array element"
    for prefix, go_context in _SYNTAX_CONTEXTS:
        if exc.msg.startswith(prefix):
            context = go_context
    return f"invalid character {_quote_char(text, pos)} {context}"


# UTF-16 surrogates: a JSON escape of one that is not part of a pair decodes to U+FFFD in Go.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogate(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _replace_lone_surrogates(root: Any) -> Any:
    """Go's decoding of `"\\ud800"`: U+FFFD. Python keeps the lone surrogate, which no UTF-8
    encoder (tokenizer, file name, JSON reply) accepts. Walked without recursion: the value may
    be as deep as the decoder allows."""
    if isinstance(root, str):
        return _without_surrogate(root)
    stack = [root] if isinstance(root, (dict, list)) else []
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = _without_surrogate(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
            continue
        for key in [k for k in node if _SURROGATE.search(k)]:
            node[_without_surrogate(key)] = node.pop(key)
        for key, item in node.items():
            if isinstance(item, str):
                node[key] = _without_surrogate(item)
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return root


def decode(text: str) -> Any:
    """json.Decoder.Decode: the first JSON value of `text` (what follows is ignored).

    DecodeError with Go's text when it is not JSON, NaN and Infinity included, and when it nests
    deeper than the decoder goes (Go's limit is 10,000 levels; Python's recursion limit is
    lower, and nothing a client sends on purpose comes near either). A number beyond float64's
    range (`1e400`) is Go's UnmarshalTypeError, so no infinity reaches the code behind it.
    Unpaired surrogate escapes become U+FFFD, as in Go.
    """
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int)
    try:
        value, _ = decoder.raw_decode(text)
    except RecursionError:
        raise DecodeError("exceeded max depth") from None
    except _RangeError as exc:
        raise DecodeError(f"json: cannot unmarshal number {exc} into Go value of type float64") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(_syntax_error_text(text, exc)) from None
    except _ConstantError as exc:
        name = str(exc)
        if name.startswith("-"):
            raise DecodeError(f"invalid character '{name[1]}' in numeric literal") from None
        raise DecodeError(f"invalid character '{name[0]}' looking for beginning of value") from None
    return _replace_lone_surrogates(value)
