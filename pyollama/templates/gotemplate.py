"""Go's text/template, as Ollama configures it, written in Python.

Ollama renders prompts with `template.New("").Option("missingkey=zero").Funcs(...)`
(template/template.go). This module is a port of the parts of Go's
text/template that such templates can reach: the lexer, the parser (including
`define`, `block`, `template`, `break`, `continue`, `else if`, `else with`) and
the executor, with Go's builtin functions plus Ollama's `json`, `currentDate`,
`yesterdayDate` and `toTypeScriptType`. Behaviour follows Go 1.22+ (the Go
Ollama ships with), down to error texts such as
`template: :1: unexpected "}" in operand` and to the way values print
(`[a b]`, `map[k:v]`, `1e+06`, `<no value>`).

Python values stand for Go values: str, bool, int, float, bytes ([]byte), list
([]interface{}), dict (map[string]interface{}), None (a nil interface). Go
structs, named types with a String() or MarshalJSON method and typed nil
pointers are modelled by `Struct`, `Typed` and `NilPointer`.

Parsed templates are immutable and shared between threads; `Template.parse`
caches them by text. Execution keeps all its state in a per-call `_State`.
"""

from __future__ import annotations

import base64
import datetime
import functools
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyollama.errors import BadRequestError


class TemplateError(BadRequestError):
    """A template that does not parse or fails while executing; the message is Go's."""


# --------------------------------------------------------------------------------------------------
# Go values that Python has no native shape for.


class _NoValue:
    """Go's invalid reflect.Value: what a missing key yields; prints as `<no value>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()


class _Uint8(int):
    """A byte: what `index` of a string yields in Go (a uint8)."""

    __slots__ = ()


# How a struct field's `omitempty` behaves: never omitted; omitted when empty (false, 0, "", empty
# slice or map); omitted only when nil (interface and pointer fields).
OMIT_NEVER, OMIT_EMPTY, OMIT_NIL = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Struct:
    """A Go struct value (or pointer to one, when `pointer`).

    `fields` maps exported field names, in declaration order, to values.
    `json_fields` says how encoding/json writes it: (json name, field name, OMIT_*).
    `string` is the type's String() method, when it has one.
    """

    type_name: str
    fields: Mapping[str, Any]
    json_fields: tuple[tuple[str, str, int], ...] = ()
    pointer: bool = False
    string: Callable[[], str] | None = None


@dataclass(frozen=True, eq=False)
class Typed:
    """A value of a named Go type over a slice, map or string.

    It ranges, indexes and measures like `value`, but prints with `string`
    (its String() method) and marshals with `marshal` (its MarshalJSON) when given.
    `nil` marks a nil slice or map, which encoding/json writes as `null`.
    """

    type_name: str
    value: Any
    string: Callable[[], str] | None = None
    marshal: Callable[[], str] | None = None
    nil: bool = False


@dataclass(frozen=True)
class NilPointer:
    """A typed nil pointer: false, prints `<nil>`, and field access on it fails."""

    type_name: str


# --------------------------------------------------------------------------------------------------
# Go's fmt and strconv formatting, as far as templates can reach them.

_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal."""
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable():
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:  # a raw byte that is not UTF-8 (surrogateescape)
                out.append(f"\\x{code - 0xDC00:02x}")
            else:
                out.append(ch)
        else:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:
                out.append(f"\\x{code - 0xDC00:02x}")
            elif code < 0x20 or code == 0x7F:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _quote_rune(code: int) -> str:
    """strconv.QuoteRune."""
    if code == ord("'"):
        return "'\\''"
    if code == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(code))[1:-1] + "'"


def _rune_u(code: int) -> str:
    """fmt's %#U: `U+0023 '#'`."""
    if 0 <= code < 0x110000 and chr(code).isprintable():
        return f"U+{code:04X} '{chr(code)}'"
    return f"U+{code:04X}"


def _shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and the decimal point position: 0.DIGITS x 10^dp."""
    mantissa, _, exp = repr(abs(f)).partition("e")
    whole, _, frac = mantissa.partition(".")
    m = whole + frac
    point = len(whole) + (int(exp) if exp else 0)
    zeros = len(m) - len(m.lstrip("0"))
    digits = m[zeros:].rstrip("0")
    if not digits:
        return "0", 1
    return digits, point - zeros


def _format_e_shortest(digits: str, dp: int, upper: bool = False) -> str:
    exp = dp - 1 if digits != "0" else 0
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return f"{mant}{'E' if upper else 'e'}{sign}{abs(exp):02d}"


def _format_f_shortest(digits: str, dp: int) -> str:
    if digits == "0":
        return "0"
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def go_format_float(f: float, fmt: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(f, fmt, prec, 64) for fmt in e, E, f, g, G (prec -1: shortest)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    upper = fmt in "EG"
    if prec >= 0 and fmt in "eEfF":
        return sign + f"{abs(f):.{prec}{fmt.lower()}}".replace("e", "E" if upper else "e")
    if prec >= 0:
        # %g with a precision: round to `prec` significant digits, Go's trailing zeros trimmed.
        p = max(prec, 1)
        mant, _, exp_s = f"{abs(f):.{p - 1}e}".partition("e")
        digits = mant.replace(".", "").rstrip("0") or "0"
        dp = int(exp_s) + 1 if digits != "0" else 1
        eprec = p
        if eprec > len(digits) and len(digits) >= dp:
            eprec = len(digits)
    else:
        digits, dp = _shortest_digits(f)
        if fmt in "eE":
            return sign + _format_e_shortest(digits, dp, upper)
        if fmt in "fF":
            return sign + _format_f_shortest(digits, dp)
        eprec = 6
    exp = dp - 1
    if digits != "0" and (exp < -4 or exp >= eprec):
        return sign + _format_e_shortest(digits, dp, upper)
    return sign + _format_f_shortest(digits, dp)


def _hex_float(f: float, upper: bool) -> str:
    """strconv.FormatFloat(f, 'x', -1, 64): 0x1.8p+01."""
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        text = "0x0p+00"
    else:
        mant, _, exp = abs(f).hex().partition("p")
        head, _, frac = mant.partition(".")
        frac = frac.rstrip("0")
        e = int(exp)
        text = head + ("." + frac if frac else "") + "p" + ("-" if e < 0 else "+") + f"{abs(e):02d}"
    return sign + (text.upper() if upper else text)


def _format_complex(c: complex) -> str:
    imag = go_format_float(c.imag)
    if not imag.startswith("-") and not imag.startswith("+"):
        imag = "+" + imag
    return f"({go_format_float(c.real)}{imag}i)"


def go_type_name(v: Any) -> str:
    """The Go type of a value, as fmt's %T and error messages write it."""
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, _Uint8):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (Struct, Typed, NilPointer)):
        return v.type_name
    return type(v).__name__


def _sort_key(k: Any) -> tuple[int, Any]:
    if isinstance(k, bool):
        return (0, k)
    if isinstance(k, (int, float)):
        return (1, k)
    return (2, str(k))


def _sorted_items(d: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Go sorts map keys when printing and ranging (internal/fmtsort)."""
    return sorted(d.items(), key=lambda kv: _sort_key(kv[0]))


def go_sprint_value(v: Any, depth: int = 0) -> str:
    """fmt's %v of one operand."""
    return _Fmt(verb="v").value(v, depth)


def go_sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither is a string."""
    out: list[str] = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(go_sprint_value(arg))
        prev_string = is_string
    return "".join(out)


def go_sprintln(args: Sequence[Any]) -> str:
    """fmt.Sprintln: spaces always, newline at the end."""
    return " ".join(go_sprint_value(a) for a in args) + "\n"


class _Fmt:
    """One fmt verb with its flags, applied to a value (fmt/print.go printValue)."""

    __slots__ = ("minus", "plus", "prec", "sharp", "space", "verb", "width", "zero")

    def __init__(self, verb: str, *, minus: bool = False, plus: bool = False, sharp: bool = False,
                 space: bool = False, zero: bool = False, width: int | None = None,
                 prec: int | None = None) -> None:
        self.verb = verb
        self.minus = minus
        self.plus = plus
        self.sharp = sharp
        self.space = space
        self.zero = zero
        self.width = width
        self.prec = prec

    def pad(self, s: str, numeric: bool = False, spaces_only: bool = False) -> str:
        """Pad to the width: zeros go after a number's sign, infinities and NaN get spaces."""
        if self.width is None or len(s) >= self.width:
            return s
        fill = self.width - len(s)
        if self.minus:
            return s + " " * fill
        if self.zero and not spaces_only:
            if numeric and s[:1] in "+- ":
                return s[0] + "0" * fill + s[1:]
            return "0" * fill + s
        return " " * fill + s

    def bad(self, v: Any) -> str:
        """fmt's badVerb: `%!d(string=x)`, the value printed with %v and the same width and precision."""
        if v is None or v is NO_VALUE:
            return f"%!{self.verb}(<nil>)"
        as_v = _Fmt("v", minus=self.minus, plus=self.plus, sharp=self.sharp, space=self.space, zero=self.zero,
                    width=self.width, prec=self.prec)
        return f"%!{self.verb}({go_type_name(v)}={as_v.value(v)})"

    def value(self, v: Any, depth: int = 0) -> str:
        verb = self.verb
        if verb == "T":
            return self.pad(go_type_name(v))
        if v is None or v is NO_VALUE:
            if depth > 0:
                return "<nil>"  # a nil interface inside a container: written as is, never padded
            return self.pad("<nil>") if verb == "v" else self.bad(v)
        if isinstance(v, Typed):
            if v.string is not None and verb in "vsxXq":
                return self.string(v.string())
            return self.value(v.value, depth)
        if isinstance(v, Struct):
            if v.string is not None and verb in "vsxXq":
                return self.string(v.string())
            body = "{" + " ".join(self.value(x, depth + 1) for x in v.fields.values()) + "}"
            return ("&" + body) if v.pointer and depth == 0 else body
        if isinstance(v, NilPointer):
            return self.pad("<nil>")
        if isinstance(v, bool):
            if verb in "vt":
                return self.pad("true" if v else "false")
            return self.bad(v)
        if isinstance(v, int):
            return self.integer(v)
        if isinstance(v, float):
            return self.float(v)
        if isinstance(v, complex):
            if verb in "vgeEfFG":
                return self.pad(_format_complex(v))
            return self.bad(v)
        if isinstance(v, str):
            return self.string(v)
        if isinstance(v, (bytes, bytearray)):
            if verb in "sq":
                return self.string(bytes(v).decode("utf-8", "surrogateescape"))
            if verb in "xX" and not isinstance(v, str):
                text = bytes(v).hex()
                return self.pad(text.upper() if verb == "X" else text)
            return "[" + " ".join(self.integer(b) for b in v) + "]"
        if isinstance(v, (list, tuple)):
            return "[" + " ".join(self.value(x, depth + 1) for x in v) + "]"
        if isinstance(v, dict):
            items = " ".join(f"{self.value(k, depth + 1)}:{self.value(x, depth + 1)}" for k, x in _sorted_items(v))
            return "map[" + items + "]"
        return self.pad(str(v))

    def integer(self, n: int) -> str:
        verb = self.verb
        if verb in "vd":
            s = str(abs(n))
        elif verb == "b":
            s = format(abs(n), "b")
        elif verb == "o":
            s = format(abs(n), "o")
            if self.sharp:
                s = "0" + s
        elif verb == "O":
            s = "0o" + format(abs(n), "o")
        elif verb in "xX":
            s = format(abs(n), "x" if verb == "x" else "X")
            if self.sharp:
                s = ("0x" if verb == "x" else "0X") + s
        elif verb == "c":
            return self.pad(chr(n) if 0 <= n < 0x110000 else "\ufffd")
        elif verb == "q":
            return self.pad(_quote_rune(n) if 0 <= n < 0x110000 else "'\ufffd'")
        elif verb == "U":
            n = n % (1 << 64) if n < 0 else n
            return self.pad(_rune_u(n) if self.sharp else f"U+{n:04X}")
        elif verb in "eEfFgG":
            return self.bad(n)
        else:
            return self.bad(n)
        if self.prec is not None:
            s = s.rjust(self.prec, "0")
        if n < 0:
            s = "-" + s
        elif self.plus:
            s = "+" + s
        elif self.space:
            s = " " + s
        return self.pad(s, numeric=self.prec is None)

    def float(self, f: float) -> str:
        verb = self.verb
        if verb == "v":
            s = go_format_float(f, "g", -1 if self.prec is None else self.prec)
        elif verb in "eEfFgG":
            fmt = "f" if verb == "F" else verb
            prec = self.prec if self.prec is not None else (6 if verb in "eEfF" else -1)
            s = go_format_float(f, fmt, prec)
        elif verb in "xX" and self.prec is None and math.isfinite(f):
            s = _hex_float(f, upper=verb == "X")
        else:
            return self.bad(f)
        if not s.startswith(("-", "+")):  # only +Inf carries a sign of its own
            if self.plus:
                s = "+" + s
            elif self.space:
                s = " " + s
        return self.pad(s, numeric=True, spaces_only=not math.isfinite(f))

    def string(self, s: str) -> str:
        verb = self.verb
        if verb in "vs":
            if self.prec is not None:
                s = s[: self.prec]
            return self.pad(s)
        if verb == "q":
            if self.prec is not None:
                s = s[: self.prec]
            if self.sharp and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                return self.pad("`" + s + "`")
            return self.pad(go_quote(s))
        if verb in "xX":
            data = s.encode("utf-8", "surrogateescape")
            if self.prec is not None:
                data = data[: self.prec]
            text = data.hex()
            if self.space:
                text = " ".join(text[i:i + 2] for i in range(0, len(text), 2))
            return self.pad(text.upper() if verb == "X" else text)
        return self.bad(s)


_VERBS = set("vTtbcdoOqxXUeEfFgGsp")


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf with Go's verbs, flags, width and precision, and its %!verb(...) complaints."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = {"minus": False, "plus": False, "sharp": False, "space": False, "zero": False}
        while i < n and fmt[i] in "-+# 0":
            flags[{"-": "minus", "+": "plus", "#": "sharp", " ": "space", "0": "zero"}[fmt[i]]] = True
            i += 1
        width: int | None = None
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                width = args[argi]
                if width < 0:
                    flags["minus"] = True
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                width = int(fmt[start:i])
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    prec = max(args[argi], 0)
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        f = _Fmt(verb, width=width, prec=prec, **flags)
        if verb not in _VERBS:
            out.append(f.bad(arg))
            continue
        out.append(f.value(arg))
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{go_type_name(a)}={go_sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


class _JSONUnsupported(Exception):
    """encoding/json refuses the value (NaN or an infinity)."""


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _json_escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    esc = _JSON_ESCAPES.get(ch)
    if esc is not None:
        return esc
    if 0xD800 <= ord(ch) <= 0xDFFF:  # not valid UTF-8: encoding/json writes U+FFFD
        return "\ufffd"
    return f"\\u{ord(ch):04x}"


def go_json_string(s: str) -> str:
    """encoding/json's string encoding, HTML-safe like json.Marshal."""
    return '"' + _JSON_NEEDS_ESCAPE.sub(_json_escape_char, s) + '"'


def go_json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise _JSONUnsupported(go_format_float(f))
    a = abs(f)
    fmt = "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f"
    s = go_format_float(f, fmt, -1)
    if fmt == "e":
        s = re.sub(r"e-0(\d)$", r"e-\1", s)
    return s


def go_json(v: Any, *, sort_keys: bool = True) -> str:
    """json.Marshal of a value; map keys sorted like Go unless `sort_keys` is False."""
    if v is None or v is NO_VALUE or isinstance(v, NilPointer):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_json_float(v)
    if isinstance(v, str):
        return go_json_string(v)
    if isinstance(v, (bytes, bytearray)):
        return '"' + base64.b64encode(bytes(v)).decode("ascii") + '"'
    if isinstance(v, Typed):
        if v.marshal is not None:
            return v.marshal()
        if v.nil:
            return "null"
        return go_json(v.value, sort_keys=sort_keys)
    if isinstance(v, Struct):
        parts = []
        for name, field, omit in v.json_fields:
            x = v.fields.get(field)
            if omit == OMIT_EMPTY and _json_empty(x):
                continue
            if omit == OMIT_NIL and _is_nil(x):
                continue
            parts.append(go_json_string(name) + ":" + go_json(x))
        return "{" + ",".join(parts) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x, sort_keys=sort_keys) for x in v) + "]"
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: str(kv[0])) if sort_keys else list(v.items())
        return "{" + ",".join(go_json_string(str(k)) + ":" + go_json(x, sort_keys=sort_keys)
                              for k, x in items) + "}"
    if isinstance(v, complex):
        raise _JSONUnsupported("complex128")
    raise _JSONUnsupported(go_type_name(v))


def _json_empty(v: Any) -> bool:
    """encoding/json's omitempty test."""
    if v is None or v is NO_VALUE or isinstance(v, NilPointer):
        return True
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float, str, bytes, list, tuple, dict)):
        return not v
    if isinstance(v, Typed):
        return v.nil or not v.value
    return False


# --------------------------------------------------------------------------------------------------
# Lexer (text/template/parse/lex.go).

(I_ERROR, I_BOOL, I_CHAR, I_CHAR_CONSTANT, I_COMMENT, I_COMPLEX, I_ASSIGN, I_DECLARE, I_EOF, I_FIELD,
 I_IDENTIFIER, I_LEFT_DELIM, I_LEFT_PAREN, I_NUMBER, I_PIPE, I_RAW_STRING, I_RIGHT_DELIM, I_RIGHT_PAREN,
 I_SPACE, I_STRING, I_TEXT, I_VARIABLE, I_KEYWORD, I_BLOCK, I_BREAK, I_CONTINUE, I_DOT, I_DEFINE, I_ELSE,
 I_END, I_IF, I_NIL, I_RANGE, I_TEMPLATE, I_WITH) = range(35)

_KEYWORDS = {".": I_DOT, "block": I_BLOCK, "break": I_BREAK, "continue": I_CONTINUE, "define": I_DEFINE,
             "else": I_ELSE, "end": I_END, "if": I_IF, "range": I_RANGE, "nil": I_NIL,
             "template": I_TEMPLATE, "with": I_WITH}
_SPACE = " \t\r\n"
_LEFT, _RIGHT = "{{", "}}"


class _Item:
    __slots__ = ("line", "pos", "typ", "val")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.line = line

    def __str__(self) -> str:
        if self.typ == I_EOF:
            return "EOF"
        if self.typ == I_ERROR:
            return self.val
        if self.typ > I_KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode("utf-8", "surrogateescape")) > 10:  # Go measures bytes, truncates runes
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


def _has_left_trim(s: str, i: int) -> bool:
    return i + 1 < len(s) and s[i] == "-" and s[i + 1] in _SPACE


def _has_right_trim(s: str, i: int) -> bool:
    return i + 1 < len(s) and s[i] in _SPACE and s[i + 1] == "-"


class _Lexer:
    """Scans the whole input up front; the parser walks the item list (same items Go's channel yields)."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.items: list[_Item] = []
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def line_at(self, pos: int) -> int:
        lo, hi = 0, len(self._newlines)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._newlines[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1

    def run(self) -> list[_Item]:
        state: Callable[[], Any] | None = self.lex_text
        while state is not None:
            state = state()
        return self.items

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.pos = len(self.input) + 1  # mark EOF; backup() undoes it
            return ""
        ch = self.input[self.pos]
        self.pos += 1
        return ch

    def peek(self) -> str:
        return self.input[self.pos] if self.pos < len(self.input) else ""

    def backup(self) -> None:
        self.pos -= 1

    def emit(self, typ: int) -> None:
        self.items.append(_Item(typ, self.start, self.input[self.start:self.pos], self.line_at(self.start)))
        self.start = self.pos

    def ignore(self) -> None:
        self.start = self.pos

    def errorf(self, msg: str) -> Callable[[], Any] | None:
        """Emit an error item and stop scanning (Go's lexer returns a nil state function)."""
        self.items.append(_Item(I_ERROR, self.start, msg, self.line_at(self.start)))
        return None

    def at_terminator(self) -> bool:
        ch = self.peek()
        if ch == "" or ch in _SPACE or ch in ".,|:)(":
            return True
        return self.input.startswith(_RIGHT, self.pos)

    def at_right_delim(self) -> tuple[bool, bool]:
        if _has_right_trim(self.input, self.pos) and self.input.startswith(_RIGHT, self.pos + 2):
            return True, True
        if self.input.startswith(_RIGHT, self.pos):
            return True, False
        return False, False

    def lex_text(self) -> Callable[[], Any] | None:
        x = self.input.find(_LEFT, self.pos)
        if x >= 0:
            self.pos = x
            trim = 0
            if _has_left_trim(self.input, self.pos + len(_LEFT)):
                chunk = self.input[self.start:self.pos]
                trim = len(chunk) - len(chunk.rstrip(_SPACE))
            self.pos -= trim
            if self.pos > self.start:
                self.emit(I_TEXT)
            self.pos += trim
            self.ignore()
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.emit(I_TEXT)
        self.emit(I_EOF)
        return None

    def lex_left_delim(self) -> Callable[[], Any] | None:
        self.pos += len(_LEFT)
        trim = _has_left_trim(self.input, self.pos)
        after = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(I_LEFT_DELIM)
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self) -> Callable[[], Any] | None:
        self.pos += 2
        i = self.input.find("*/", self.pos)
        if i < 0:
            return self.errorf("unclosed comment")
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(_RIGHT)
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(_SPACE))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self) -> Callable[[], Any] | None:
        trim = _has_right_trim(self.input, self.pos)
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(_RIGHT)
        self.emit(I_RIGHT_DELIM)
        if trim:
            rest = self.input[self.pos:]
            self.pos += len(rest) - len(rest.lstrip(_SPACE))
            self.ignore()
        return self.lex_text

    def lex_inside_action(self) -> Callable[[], Any] | None:
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        ch = self.next()
        if ch == "":
            return self.errorf("unclosed action")
        if ch in _SPACE:
            self.backup()
            return self.lex_space
        if ch == "=":
            self.emit(I_ASSIGN)
        elif ch == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            self.emit(I_DECLARE)
        elif ch == "|":
            self.emit(I_PIPE)
        elif ch == '"':
            return self.lex_quote
        elif ch == "`":
            return self.lex_raw_quote
        elif ch == "$":
            return self.lex_variable
        elif ch == "'":
            return self.lex_char
        elif ch == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            return self.lex_field
        elif ch in ".+-" or "0" <= ch <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(ch):
            self.backup()
            return self.lex_identifier
        elif ch == "(":
            self.emit(I_LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self.emit(I_RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf(f"unexpected right paren {_rune_u(ord(ch))}")
        elif ord(ch) <= 0x7F and ch.isprintable():
            self.emit(I_CHAR)
        else:
            return self.errorf(f"unrecognized character in action: {_rune_u(ord(ch))}")
        return self.lex_inside_action

    def lex_space(self) -> Callable[[], Any] | None:
        n = 0
        while self.peek() != "" and self.peek() in _SPACE:
            self.pos += 1
            n += 1
        # A space followed by "-}}" belongs to the trim marker of the closing delimiter.
        if _has_right_trim(self.input, self.pos - 1) and self.input.startswith(_RIGHT, self.pos + 1):
            self.backup()
            if n == 1:
                return self.lex_right_delim
        self.emit(I_SPACE)
        return self.lex_inside_action

    def lex_identifier(self) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch != "" and _is_alnum(ch):
                continue
            if ch != "":
                self.backup()
            else:
                self.pos = len(self.input)
            word = self.input[self.start:self.pos]
            if not self.at_terminator():
                return self.errorf(f"bad character {_rune_u(ord(self.peek()))}")
            kw = _KEYWORDS.get(word, 0)
            if kw > I_KEYWORD:
                self.emit(kw)
            elif word[0] == ".":
                self.emit(I_FIELD)
            elif word in ("true", "false"):
                self.emit(I_BOOL)
            else:
                self.emit(I_IDENTIFIER)
            return self.lex_inside_action

    def lex_field(self) -> Callable[[], Any] | None:
        return self._lex_field_or_variable(I_FIELD)

    def lex_variable(self) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(I_VARIABLE)
            return self.lex_inside_action
        return self._lex_field_or_variable(I_VARIABLE)

    def _lex_field_or_variable(self, typ: int) -> Callable[[], Any] | None:
        if self.at_terminator():
            self.emit(I_VARIABLE if typ == I_VARIABLE else I_DOT)
            return self.lex_inside_action
        while self.pos < len(self.input) and _is_alnum(self.input[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            return self.errorf(f"bad character {_rune_u(ord(self.peek()))}")
        self.emit(typ)
        return self.lex_inside_action

    def _lex_quoted(self, close: str, typ: int, msg: str) -> Callable[[], Any] | None:
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
                return self.errorf(msg)
            if ch in ("", "\n"):
                return self.errorf(msg)
            if ch == close:
                break
        self.emit(typ)
        return self.lex_inside_action

    def lex_char(self) -> Callable[[], Any] | None:
        return self._lex_quoted("'", I_CHAR_CONSTANT, "unterminated character constant")

    def lex_quote(self) -> Callable[[], Any] | None:
        return self._lex_quoted('"', I_STRING, "unterminated quoted string")

    def lex_raw_quote(self) -> Callable[[], Any] | None:
        end = self.input.find("`", self.pos)
        if end < 0:
            return self.errorf("unterminated raw quoted string")
        self.pos = end + 1
        self.emit(I_RAW_STRING)
        return self.lex_inside_action

    def lex_number(self) -> Callable[[], Any] | None:
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {go_quote(self.input[self.start:self.pos])}")
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf(f"bad number syntax: {go_quote(self.input[self.start:self.pos])}")
            self.emit(I_COMPLEX)
        else:
            self.emit(I_NUMBER)
        return self.lex_inside_action

    def _accept(self, valid: str) -> bool:
        ch = self.peek()
        if ch != "" and ch in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if self.peek() != "" and _is_alnum(self.peek()):
            self.pos += 1
            return False
        return True


# --------------------------------------------------------------------------------------------------
# Literals: strconv.Unquote, ParseInt/ParseFloat as the parser uses them.


class _SyntaxError(Exception):
    pass


_SIMPLE_UNQUOTE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _unquote(quoted: str) -> str:
    """strconv.Unquote for "..." and `...` literals; raw bytes outside UTF-8 survive as surrogateescape."""
    if len(quoted) < 2:
        raise _SyntaxError("invalid syntax")
    q = quoted[0]
    if q != quoted[-1]:
        raise _SyntaxError("invalid syntax")
    body = quoted[1:-1]
    if q == "`":
        if "`" in body:
            raise _SyntaxError("invalid syntax")
        return body.replace("\r", "")
    if q not in "\"'":
        raise _SyntaxError("invalid syntax")
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == q or ch == "\n":
            raise _SyntaxError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= n:
            raise _SyntaxError("invalid syntax")
        c = body[i + 1]
        i += 2
        if c in _SIMPLE_UNQUOTE:
            if (c == "'" and q == '"') or (c == '"' and q == "'"):
                raise _SyntaxError("invalid syntax")
            out.append(_SIMPLE_UNQUOTE[c])
        elif c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            hexs = body[i:i + width]
            if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise _SyntaxError("invalid syntax")
            i += width
            value = int(hexs, 16)
            if c == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise _SyntaxError("invalid syntax")
                out += chr(value).encode("utf-8")
        elif "0" <= c <= "7":
            octs = body[i - 1:i + 2]
            if len(octs) != 3 or any(o not in "01234567" for o in octs):
                raise _SyntaxError("invalid syntax")
            value = int(octs, 8)
            if value > 255:
                raise _SyntaxError("invalid syntax")
            out.append(value)
            i += 2
        else:
            raise _SyntaxError("invalid syntax")
    text = out.decode("utf-8", "surrogateescape")
    if q == "'" and len(text) != 1:
        raise _SyntaxError("invalid syntax")
    return text


def _unquote_char(s: str, quote: str) -> tuple[int, str]:
    """strconv.UnquoteChar: the first (possibly escaped) character of s and the rest."""
    if not s:
        raise _SyntaxError("invalid syntax")
    c = s[0]
    if c == quote and quote in "'\"":
        raise _SyntaxError("invalid syntax")
    if c != "\\":
        return ord(c), s[1:]
    if len(s) < 2:
        raise _SyntaxError("invalid syntax")
    e = s[1]
    if e in _SIMPLE_UNQUOTE:
        if e in "'\"" and e != quote:
            raise _SyntaxError("invalid syntax")
        return _SIMPLE_UNQUOTE[e], s[2:]
    if e in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[e]
        hexs = s[2:2 + width]
        if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
            raise _SyntaxError("invalid syntax")
        value = int(hexs, 16)
        if e != "x" and (value > 0x10FFFF or 0xD800 <= value <= 0xDFFF):
            raise _SyntaxError("invalid syntax")
        return value, s[2 + width:]
    if "0" <= e <= "7":
        octs = s[1:4]
        if len(octs) != 3 or any(o not in "01234567" for o in octs) or int(octs, 8) > 255:
            raise _SyntaxError("invalid syntax")
        return int(octs, 8), s[4:]
    raise _SyntaxError("invalid syntax")


def _underscore_ok(s: str) -> bool:
    """strconv's rule: underscores only between digits or after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in "+-":
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexa = s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) without the range check."""
    s = text
    neg = False
    if s[:1] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if not s:
        return None
    base = 10
    body = s
    if len(s) >= 2 and s[0] == "0":
        p = s[1].lower()
        if p == "x":
            base, body = 16, s[2:]
        elif p == "o":
            base, body = 8, s[2:]
        elif p == "b":
            base, body = 2, s[2:]
        else:
            base, body = 8, s[1:]
    if "_" in s and not _underscore_ok(text):
        return None
    body = body.replace("_", "")
    if not body:
        return None
    try:
        value = int(body, base)
    except ValueError:
        return None
    return -value if neg else value


def _parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for decimal and hexadecimal literals."""
    if "_" in text and not _underscore_ok(text):
        return None
    s = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+", s):
            return float.fromhex(s)
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
            return float(s)
    except (ValueError, OverflowError):
        return None
    return None


# --------------------------------------------------------------------------------------------------
# Parse tree (text/template/parse/node.go). `pos` is a character offset into the template text.


class Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return self.go_string()

    def go_string(self) -> str:
        """Go's Node.String(): the node written back as template text."""
        raise TypeError(type(self).__name__)


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node] | None = None) -> None:
        super().__init__(pos)
        self.nodes: list[Node] = nodes if nodes is not None else []

    def go_string(self) -> str:
        return "".join(n.go_string() for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text

    def go_string(self) -> str:
        return self.text


class CommentNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text

    def go_string(self) -> str:
        return "{{" + self.text + "}}"


class IdentifierNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident = ident

    def go_string(self) -> str:
        return self.ident


class VariableNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident: tuple[str, ...] = tuple(ident.split("."))

    def go_string(self) -> str:
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident: tuple[str, ...] = tuple(ident[1:].split("."))

    def go_string(self) -> str:
        return "".join("." + i for i in self.ident)


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        super().__init__(pos)
        self.value = value

    def go_string(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    __slots__ = (
        "complex_value",
        "float_value",
        "int_value",
        "is_complex",
        "is_float",
        "is_int",
        "is_uint",
        "text",
    )

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int_value = 0
        self.float_value = 0.0
        self.complex_value = 0j

    def go_string(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        super().__init__(pos)
        self.quoted = quoted
        self.text = text

    def go_string(self) -> str:
        return self.quoted


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.args: list[Node] = []

    def go_string(self) -> str:
        return " ".join("(" + a.go_string() + ")" if isinstance(a, PipeNode) else a.go_string()
                        for a in self.args)


class PipeNode(Node):
    __slots__ = ("cmds", "decl", "is_assign", "line")

    def __init__(self, pos: int, line: int) -> None:
        super().__init__(pos)
        self.line = line
        self.is_assign = False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def go_string(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(v.go_string() for v in self.decl) + " := "
        return head + " | ".join(c.go_string() for c in self.cmds)


class ChainNode(Node):
    __slots__ = ("fields", "node")

    def __init__(self, pos: int, node: Node) -> None:
        super().__init__(pos)
        self.node = node
        self.fields: list[str] = []

    def go_string(self) -> str:
        head = self.node.go_string()
        if isinstance(self.node, PipeNode):
            head = "(" + head + ")"
        return head + "".join("." + f for f in self.fields)


class ActionNode(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: PipeNode) -> None:
        super().__init__(pos)
        self.line = line
        self.pipe = pipe

    def go_string(self) -> str:
        return "{{" + self.pipe.go_string() + "}}"


class BranchNode(Node):
    __slots__ = ("else_list", "line", "list", "pipe")
    keyword = ""

    def __init__(self, pos: int, line: int, pipe: PipeNode, list_: ListNode,
                 else_list: ListNode | None) -> None:
        super().__init__(pos)
        self.line = line
        self.pipe = pipe
        self.list = list_
        self.else_list = else_list

    def go_string(self) -> str:
        s = "{{" + self.keyword + " " + self.pipe.go_string() + "}}" + self.list.go_string()
        if self.else_list is not None:
            s += "{{else}}" + self.else_list.go_string()
        return s + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class BreakNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{continue}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None) -> None:
        super().__init__(pos)
        self.line = line
        self.name = name
        self.pipe = pipe

    def go_string(self) -> str:
        s = "{{template " + go_quote(self.name)
        if self.pipe is not None:
            s += " " + self.pipe.go_string()
        return s + "}}"


class _EndNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{end}}"


class _ElseNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{else}}"


def is_empty_tree(n: Node | None) -> bool:
    """parse.IsEmptyTree: only whitespace text and comments."""
    if n is None or isinstance(n, CommentNode):
        return True
    if isinstance(n, ListNode):
        return all(is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return n.text.strip(" \t\r\n\v\f\x85\xa0") == ""
    return False


# --------------------------------------------------------------------------------------------------
# Parser (text/template/parse/parse.go).


class _ParseError(Exception):
    pass


class _Parser:
    """One tree's parser; `define` and `block` bodies get their own _Parser over the shared item list."""

    def __init__(self, name: str, items: list[_Item], cursor: list[int], tree_set: dict[str, ListNode],
                 funcs: frozenset[str], parse_name: str) -> None:
        self.name = name
        self.parse_name = parse_name
        self.items = items
        self.cursor = cursor  # shared [index, furthest index read] between nested parsers
        self.tree_set = tree_set
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.root: ListNode | None = None

    # Token stream --------------------------------------------------------------------------------

    def next(self) -> _Item:
        i = self.cursor[0]
        item = self.items[min(i, len(self.items) - 1)]
        self.cursor[0] = i + 1
        self.cursor[1] = max(self.cursor[1], i)
        return item

    def backup(self, n: int = 1) -> None:
        self.cursor[0] -= n

    def mark(self) -> int:
        return self.cursor[0]

    def reset(self, mark: int) -> None:
        self.cursor[0] = mark

    def peek(self) -> _Item:
        item = self.next()
        self.backup()
        return item

    def next_non_space(self) -> _Item:
        while True:
            item = self.next()
            if item.typ != I_SPACE:
                return item

    def peek_non_space(self) -> _Item:
        item = self.next_non_space()
        self.backup()
        return item

    # Errors ----------------------------------------------------------------------------------------

    def errorf(self, msg: str) -> None:
        line = self.items[min(self.cursor[1], len(self.items) - 1)].line
        raise _ParseError(f"template: {self.parse_name}:{line}: {msg}")

    def unexpected(self, item: _Item, context: str) -> None:
        if item.typ == I_ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != item.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{item}{extra}")
        self.errorf(f"unexpected {item} in {context}")

    def expect(self, typ: int, context: str) -> _Item:
        item = self.next_non_space()
        if item.typ != typ:
            self.unexpected(item, context)
        return item

    # Trees -----------------------------------------------------------------------------------------

    def parse(self) -> None:
        self.root = ListNode(self.peek().pos)
        while self.peek().typ != I_EOF:
            if self.peek().typ == I_LEFT_DELIM:
                mark = self.mark()
                self.next()
                if self.next_non_space().typ == I_DEFINE:
                    sub = _Parser("definition", self.items, self.cursor, self.tree_set, self.funcs,
                                  self.parse_name)
                    sub.parse_definition()
                    continue
                self.reset(mark)
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf(f"unexpected {n.go_string()}")
            self.root.nodes.append(n)
        self.add()

    def add(self) -> None:
        existing = self.tree_set.get(self.name)
        if existing is None or is_empty_tree(existing):
            assert self.root is not None
            self.tree_set[self.name] = self.root
            return
        if not is_empty_tree(self.root):
            self.errorf(f"template: multiple definition of template {go_quote(self.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in (I_STRING, I_RAW_STRING):
            self.unexpected(item, context)
        self.name = self._unquote(item.val)
        self.expect(I_RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end.go_string()} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != I_EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.typ == I_TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == I_LEFT_DELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if item.typ == I_COMMENT:
            return CommentNode(item.pos, item.val)
        self.unexpected(item, "input")
        raise AssertionError("unreachable")

    def action(self) -> Node:
        item = self.next_non_space()
        typ = item.typ
        if typ == I_BLOCK:
            return self.block_control()
        if typ == I_BREAK:
            return self.break_control(item, BreakNode, "{{break}}")
        if typ == I_CONTINUE:
            return self.break_control(item, ContinueNode, "{{continue}}")
        if typ == I_ELSE:
            return self.else_control()
        if typ == I_END:
            return _EndNode(self.expect(I_RIGHT_DELIM, "end").pos)
        if typ == I_IF:
            return IfNode(*self.parse_control("if"))
        if typ == I_RANGE:
            return RangeNode(*self.parse_control("range"))
        if typ == I_TEMPLATE:
            return self.template_control()
        if typ == I_WITH:
            return WithNode(*self.parse_control("with"))
        self.backup()
        item = self.peek()
        return ActionNode(item.pos, item.line, self.pipeline("command", I_RIGHT_DELIM))

    def break_control(self, item: _Item, cls: type[Node], context: str) -> Node:
        token = self.next_non_space()
        if token.typ != I_RIGHT_DELIM:
            self.unexpected(token, context)
        if self.range_depth == 0:
            self.errorf(f"{context} outside {{{{range}}}}")
        return cls(item.pos)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:  # declarations: `$x :=`, `$x =`, `$i, $e :=` (range only)
            v = self.peek_non_space()
            if v.typ != I_VARIABLE:
                break
            mark = self.mark()
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (I_ASSIGN, I_DECLARE):
                pipe.is_assign = nxt.typ == I_ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.typ == I_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (I_VARIABLE, I_RIGHT_DELIM, I_RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.reset(mark)
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ in (I_BOOL, I_CHAR_CONSTANT, I_COMPLEX, I_DOT, I_FIELD, I_IDENTIFIER, I_NUMBER,
                            I_NIL, I_RAW_STRING, I_STRING, I_VARIABLE, I_LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(item, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def parse_control(self, context: str) -> tuple[int, int, PipeNode, ListNode, ListNode | None]:
        n_vars = len(self.vars)
        try:
            pipe = self.pipeline(context, I_RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, _ElseNode):
                # `{{else if x}}` / `{{else with x}}` are `{{else}}{{if x}}...{{end}}` with the end implied.
                if context == "if" and self.peek().typ == I_IF:
                    self.next()
                    else_list = ListNode(nxt.pos, [IfNode(*self.parse_control("if"))])
                elif context == "with" and self.peek().typ == I_WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, [WithNode(*self.parse_control("with"))])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf(f"expected end; found {nxt.go_string()}")
            return pipe.pos, pipe.line, pipe, lst, else_list
        finally:
            del self.vars[n_vars:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (I_IF, I_WITH):
            return _ElseNode(peek.pos)
        return _ElseNode(self.expect(I_RIGHT_DELIM, "else").pos)

    def block_control(self) -> Node:
        context = "block clause"
        item = self.next_non_space()
        name = self.parse_template_name(item, context)
        pipe = self.pipeline(context, I_RIGHT_DELIM)
        block = _Parser(name, self.items, self.cursor, self.tree_set, self.funcs, self.parse_name)
        block.root, end = block.item_list()
        if not isinstance(end, _EndNode):
            self.errorf(f"unexpected {end.go_string()} in {context}")
        block.add()
        return TemplateNode(item.pos, item.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        item = self.next_non_space()
        name = self.parse_template_name(item, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != I_RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, I_RIGHT_DELIM)
        return TemplateNode(item.pos, item.line, name, pipe)

    def parse_template_name(self, item: _Item, context: str) -> str:
        if item.typ in (I_STRING, I_RAW_STRING):
            return self._unquote(item.val)
        self.unexpected(item, context)
        raise AssertionError("unreachable")

    def _unquote(self, quoted: str) -> str:
        try:
            return _unquote(quoted)
        except _SyntaxError:
            self.errorf("invalid syntax")
            raise AssertionError("unreachable") from None

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == I_SPACE:
                continue
            if item.typ in (I_RIGHT_DELIM, I_RIGHT_PAREN):
                self.backup()
            elif item.typ != I_PIPE:
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == I_FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == I_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, chain.go_string())
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, chain.go_string())
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {go_quote(node.go_string())}")
            return chain
        return node

    def term(self) -> Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == I_IDENTIFIER:
            if item.val not in self.funcs:
                self.errorf(f"function {go_quote(item.val)} not defined")
            return IdentifierNode(item.pos, item.val)
        if typ == I_DOT:
            return DotNode(item.pos)
        if typ == I_NIL:
            return NilNode(item.pos)
        if typ == I_VARIABLE:
            return self.use_var(item.pos, item.val)
        if typ == I_FIELD:
            return FieldNode(item.pos, item.val)
        if typ == I_BOOL:
            return BoolNode(item.pos, item.val == "true")
        if typ in (I_CHAR_CONSTANT, I_COMPLEX, I_NUMBER):
            return self.new_number(item)
        if typ == I_LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", I_RIGHT_PAREN)
        if typ in (I_STRING, I_RAW_STRING):
            return StringNode(item.pos, item.val, self._unquote(item.val))
        self.backup()
        return None

    def use_var(self, pos: int, name: str) -> VariableNode:
        v = VariableNode(pos, name)
        if v.ident[0] not in self.vars:
            self.errorf(f"undefined variable {go_quote(v.ident[0])}")
        return v

    def new_number(self, item: _Item) -> NumberNode:
        text = item.val
        n = NumberNode(item.pos, text)
        if item.typ == I_CHAR_CONSTANT:
            try:
                code, tail = _unquote_char(text[1:], "'")
            except _SyntaxError:
                self.errorf("invalid syntax")
            if tail != "'":
                self.errorf(f"malformed character constant: {text}")
            n.is_int = n.is_uint = n.is_float = True
            n.int_value, n.float_value = code, float(code)
            return n
        if item.typ == I_COMPLEX:
            # fmt.Sscan of "REAL+IMAGi": the imaginary part starts at the first sign after the first char
            # that does not follow an exponent marker.
            k = next((j for j in range(1, len(text)) if text[j] in "+-" and text[j - 1] not in "eEpP"),
                     len(text) - 1)
            real_text, imag_text = text[:k], text[k:-1]
            real, imag = _parse_float(real_text), _parse_float(imag_text)
            for part, value in ((real_text, real), (imag_text, imag)):
                if value is None:
                    self.errorf(f"strconv.ParseFloat: parsing {go_quote(part)}: invalid syntax")
            assert real is not None and imag is not None
            n.is_complex = True
            n.complex_value = complex(real, imag)
            self._simplify_complex(n)
            return n
        if text.endswith("i"):
            f = _parse_float(text[:-1])
            if f is not None:
                n.is_complex = True
                n.complex_value = complex(0, f)
                self._simplify_complex(n)
                return n
        i = _parse_int(text)
        if i is not None:
            if 0 <= i < 1 << 64:
                n.is_uint = True
            if -(1 << 63) <= i < 1 << 63:
                n.is_int = True
                n.int_value = i
            if n.is_int or n.is_uint:
                n.is_float = True
                n.float_value = float(i)
        if not n.is_int and not n.is_uint:
            f = _parse_float(text)
            if f is not None and not math.isinf(f):
                if not any(c in text for c in ".eEpP"):
                    self.errorf(f"integer overflow: {go_quote(text)}")
                n.is_float = True
                n.float_value = f
                if f == int(f) and -(1 << 63) <= int(f) < 1 << 63:
                    n.is_int = True
                    n.int_value = int(f)
                if f == int(f) and 0 <= int(f) < 1 << 64:
                    n.is_uint = True
        if not n.is_int and not n.is_uint and not n.is_float:
            self.errorf(f"illegal number syntax: {go_quote(text)}")
        return n

    @staticmethod
    def _simplify_complex(n: NumberNode) -> None:
        c = n.complex_value
        n.is_float = c.imag == 0
        if n.is_float:
            n.float_value = c.real
            n.is_int = c.real == int(c.real) if not math.isinf(c.real) else False
            if n.is_int:
                n.int_value = int(c.real)


def _parse_trees(text: str, name: str, funcs: frozenset[str]) -> dict[str, ListNode]:
    items = _Lexer(text).run()
    tree_set: dict[str, ListNode] = {}
    parser = _Parser(name, items, [0, 0], tree_set, funcs, name)
    try:
        parser.parse()
    except _ParseError as e:
        raise TemplateError(str(e)) from None
    except RecursionError:
        raise TemplateError(f"template: {name}: template is nested too deeply") from None
    return tree_set


# --------------------------------------------------------------------------------------------------
# Executor (text/template/exec.go).


class _ExecError(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL = object()  # Go's missingVal: no value piped in from the previous command

# Parameter kinds of template functions: how evalArg converts an argument for them.
_P_VALUE = "reflect.Value"  # any value, a missing one included
_P_ANY = "interface {}"  # a missing value becomes nil
_P_STRING = "string"


@dataclass(frozen=True)
class _Func:
    fn: Callable[..., Any]
    params: tuple[str, ...]  # kinds of the fixed parameters
    variadic: str | None = None  # kind of the ... parameter
    short_circuit: str | None = None  # "and" / "or": evaluated lazily by the executor
    wants_iface: bool = False  # `slice`: needs to know which arguments Go holds in an interface{}


def _indirect_interface(v: Any) -> Any:
    return NO_VALUE if v is None else v


def _truth(v: Any) -> tuple[bool, bool]:
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


def _kind(v: Any) -> str:
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
        return _kind(v.value)
    if isinstance(v, NilPointer):
        return "ptr"
    if isinstance(v, Struct):
        return "ptr" if v.pointer else "struct"
    return "other"


_BASIC = {"bool", "int", "float", "complex", "string"}


class _CallError(Exception):
    """A template function's own error: reported as `error calling NAME: MESSAGE`."""


def _fn_eq(arg1: Any, *args: Any) -> bool:
    if len(args) == 1 and type(arg1) is str and type(args[0]) is str:  # the common `eq .Role "user"`
        return arg1 == args[0]
    arg1 = _indirect_interface(arg1)
    if not args:
        raise _CallError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in args:
        arg = _indirect_interface(arg)
        k2 = _kind(arg)
        truth = False
        if (k1 in _BASIC or k2 in _BASIC) and k1 != k2:
            if arg1 is not NO_VALUE and arg is not NO_VALUE:
                raise _CallError("incompatible types for comparison")
        elif k1 in _BASIC:
            truth = _unwrap(arg1) == _unwrap(arg)
        else:
            if not (k1 == k2 or k1 == "invalid" or k2 == "invalid"):
                raise _CallError(f"non-comparable types {go_sprintf('%s', [arg1])}: {go_type_name(arg1)}, "
                                 f"{go_type_name(arg)}: {go_sprint_value(arg)}")
            nil1, nil2 = _is_nil(arg1), _is_nil(arg)
            if nil1 or nil2:
                truth = nil1 == nil2
            elif k2 in ("slice", "map") or (k2 == "struct"):
                raise _CallError(f"non-comparable type {go_sprintf('%s', [arg])}: {go_type_name(arg)}")
            else:
                truth = _unwrap(arg1) is _unwrap(arg)
        if truth:
            return True
    return False


def _unwrap(v: Any) -> Any:
    return v.value if isinstance(v, Typed) else v


def _is_nil(v: Any) -> bool:
    return v is NO_VALUE or v is None or isinstance(v, NilPointer) or (isinstance(v, Typed) and v.nil)


def _fn_ne(a: Any, b: Any) -> bool:
    return not _fn_eq(a, b)


def _fn_lt(a: Any, b: Any) -> bool:
    a, b = _indirect_interface(a), _indirect_interface(b)
    k1, k2 = _kind(a), _kind(b)
    if k1 not in _BASIC or k2 not in _BASIC:
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise _CallError("invalid type for comparison")
    a, b = _unwrap(a), _unwrap(b)
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
    return not _truth(_indirect_interface(v))[0]


def _fn_len(v: Any) -> int:
    if v is None or isinstance(v, NilPointer):
        raise _CallError("len of nil pointer")
    if v is NO_VALUE:
        raise _CallError("reflect: call of reflect.Value.Type on zero Value")
    inner = _unwrap(v)
    if isinstance(inner, str):
        return len(inner.encode("utf-8", "surrogateescape"))
    if isinstance(inner, (bytes, bytearray, list, tuple, dict)):
        return len(inner)
    raise _CallError(f"len of type {go_type_name(v)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is NO_VALUE:
        raise _CallError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _CallError(f"cannot index slice/array with type {go_type_name(index)}")
    if index < 0 or index > cap:
        raise _CallError(f"index out of range: {index}")
    return index


def _fn_index(item: Any, *indexes: Any) -> Any:
    item = _indirect_interface(item)
    if item is NO_VALUE:
        raise _CallError("index of untyped nil")
    for index in indexes:
        index = _indirect_interface(index)
        if item is None or isinstance(item, NilPointer):
            raise _CallError("index of nil pointer")
        inner = _unwrap(item)
        if isinstance(inner, str):
            data = inner.encode("utf-8", "surrogateescape")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise _CallError("reflect: string index out of range")
            item = _Uint8(data[x])
        elif isinstance(inner, (bytes, bytearray, list, tuple)):
            x = _index_arg(index, len(inner))
            if x == len(inner):
                raise _CallError("reflect: slice index out of range")
            item = inner[x]
        elif isinstance(inner, dict):
            if index is NO_VALUE:
                raise _CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise _CallError(f"value has type {go_type_name(index)}; should be string")
            item = inner.get(index)
        else:
            raise _CallError(f"can't index item of type {go_type_name(item)}")
    return item


def _fn_slice(item: Any, *indexes: Any, iface: Sequence[bool] = ()) -> Any:
    """`slice`; `iface` flags index arguments Go holds in an interface{}, which slice does not unwrap."""
    item = _indirect_interface(item)
    if item is NO_VALUE:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    inner = _unwrap(item)
    data: Any
    if isinstance(inner, str):
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        data = inner.encode("utf-8", "surrogateescape")
    elif isinstance(inner, (bytes, bytearray, list, tuple)):
        data = inner
    else:
        raise _CallError(f"can't slice item of type {go_type_name(item)}")
    idx = [0, len(data), len(data)]
    for i, index in enumerate(indexes):
        if i < len(iface) and iface[i]:
            raise _CallError("cannot index slice/array with type interface {}")
        idx[i] = _index_arg(index, len(data))
    if idx[0] > idx[1]:
        raise _CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = data[idx[0]:idx[1]]
    if isinstance(inner, str):
        return out.decode("utf-8", "surrogateescape")
    return list(out) if isinstance(out, tuple) else out


def _eval_args_string(args: Sequence[Any]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint of printable values (nil: `<no value>`)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(["<no value>" if a is NO_VALUE or a is None else a for a in args])


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
    fn = _indirect_interface(fn)
    if fn is NO_VALUE:
        raise _CallError("call of nil")
    raise _CallError(f"non-function of type {go_type_name(fn)}")


def _fn_json(v: Any) -> str:
    # Ollama: `b, _ := json.Marshal(v); return string(b)`; a marshal error yields "".
    try:
        return go_json(v)
    except _JSONUnsupported:
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
    types = _unwrap(prop.fields.get("Type")) or []
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _fn_to_typescript_type(v: Any) -> str:
    if isinstance(v, Struct) and v.type_name in ("api.ToolProperty", "*api.ToolProperty"):
        return _ts_type(v)
    return "any"


_BUILTINS: dict[str, _Func] = {
    "and": _Func(lambda *a: None, (_P_VALUE,), _P_VALUE, short_circuit="and"),
    "or": _Func(lambda *a: None, (_P_VALUE,), _P_VALUE, short_circuit="or"),
    "call": _Func(_fn_call, (_P_VALUE,), _P_VALUE),
    "html": _Func(_fn_html, (), _P_ANY),
    "index": _Func(_fn_index, (_P_VALUE,), _P_VALUE),
    "slice": _Func(_fn_slice, (_P_VALUE,), _P_VALUE, wants_iface=True),
    "js": _Func(_fn_js, (), _P_ANY),
    "len": _Func(_fn_len, (_P_VALUE,)),
    "not": _Func(_fn_not, (_P_VALUE,)),
    "print": _Func(lambda *a: go_sprint(a), (), _P_ANY),
    "printf": _Func(lambda f, *a: go_sprintf(f, a), (_P_STRING,), _P_ANY),
    "println": _Func(lambda *a: go_sprintln(a), (), _P_ANY),
    "urlquery": _Func(_fn_urlquery, (), _P_ANY),
    "eq": _Func(_fn_eq, (_P_VALUE,), _P_VALUE),
    "ge": _Func(_fn_ge, (_P_VALUE, _P_VALUE)),
    "gt": _Func(_fn_gt, (_P_VALUE, _P_VALUE)),
    "le": _Func(_fn_le, (_P_VALUE, _P_VALUE)),
    "lt": _Func(_fn_lt, (_P_VALUE, _P_VALUE)),
    "ne": _Func(_fn_ne, (_P_VALUE, _P_VALUE)),
}

# Ollama's template.funcs (template/template.go).
_OLLAMA_FUNCS: dict[str, _Func] = {
    "json": _Func(_fn_json, (_P_ANY,)),
    "currentDate": _Func(_fn_current_date, (), _P_STRING),
    "yesterdayDate": _Func(_fn_yesterday_date, (), _P_STRING),
    "toTypeScriptType": _Func(_fn_to_typescript_type, (_P_ANY,)),
}

_ALL_FUNC_NAMES = frozenset(_BUILTINS) | frozenset(_OLLAMA_FUNCS)

# Ceilings that keep a hostile template from hanging or exhausting a server thread (Go has none).
MAX_STEPS = 2_000_000
MAX_OUTPUT_CHARS = 64 * 1024 * 1024
MAX_TEMPLATE_DEPTH = 100


class _State:
    """One execution: output buffer, variable stack, the node being evaluated (for error messages)."""

    __slots__ = (
        "depth",
        "dot_iface",
        "exec_name",
        "last_iface",
        "node",
        "out",
        "out_len",
        "steps",
        "tmpl",
        "vars",
    )

    def __init__(self, tmpl: Template, exec_name: str, dot: Any) -> None:
        self.tmpl = tmpl
        self.exec_name = exec_name
        self.out: list[str] = []
        self.out_len = 0
        # [name, value, iface]: iface tells that Go holds the value in an interface{} (it came out of a
        # map[string]interface{} or []interface{}), which only changes the type named in error messages.
        self.vars: list[list[Any]] = [["$", dot, False]]
        self.node: Node | None = None
        self.depth = 0
        self.steps = 0
        self.dot_iface = False
        self.last_iface = False  # whether the last field chain ended on a value Go holds in an interface{}

    # Errors ----------------------------------------------------------------------------------------

    def errorf(self, msg: str) -> None:
        name = self.exec_name
        if self.node is None:
            raise _ExecError(f"template: {name}: {msg}")
        location, context = self.tmpl.error_context(self.node)
        raise _ExecError(f"template: {location}: executing {go_quote(name)} at <{context}>: {msg}")

    # Variables -------------------------------------------------------------------------------------

    def set_var(self, name: str, value: Any, iface: bool = False) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                entry[2] = iface
                return
        self.errorf(f"undefined variable: {name}")

    def var_entry(self, name: str) -> list[Any]:
        entry: list[Any]
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        self.errorf(f"undefined variable: {name}")
        raise AssertionError("unreachable")

    # Walking ---------------------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.node = node
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.errorf(f"execution stopped after {MAX_STEPS} steps")
        cls = type(node)
        if cls is TextNode:
            self.write(node.text)  # type: ignore[attr-defined]
        elif cls is ActionNode:
            pipe = node.pipe  # type: ignore[attr-defined]
            val = self.eval_pipeline(dot, pipe)
            if not pipe.decl:
                self.print_value(node, val)
        elif cls is ListNode:
            for n in node.nodes:  # type: ignore[attr-defined]
                self.walk(dot, n)
        elif isinstance(node, IfNode):
            self.walk_if_or_with(False, dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, WithNode):
            self.walk_if_or_with(True, dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        elif isinstance(node, CommentNode):
            pass
        else:
            self.errorf(f"unknown node: {node.go_string()}")

    def write(self, s: str) -> None:
        self.out.append(s)
        self.out_len += len(s)
        if self.out_len > MAX_OUTPUT_CHARS:
            self.errorf(f"output exceeds {MAX_OUTPUT_CHARS} characters")

    def walk_if_or_with(self, is_with: bool, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            truth, ok = _truth(_indirect_interface(val))
            if not ok:
                self.errorf(f"if/with can't use {go_sprint_value(val)}")
            if truth:
                if is_with:
                    saved = self.dot_iface
                    self.dot_iface = False
                    try:
                        self.walk(val, node.list)
                    finally:
                        self.dot_iface = saved
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.node = r
        mark0 = len(self.vars)
        try:
            val = self.eval_pipeline(dot, r.pipe)
            if val is None:
                val = NO_VALUE
            mark = len(self.vars)
            decl = r.pipe.decl
            inner = _unwrap(val)
            # Elements of []interface{} and map[string]interface{} are interface values in Go.
            elem_iface = isinstance(inner, (list, tuple, dict))
            saved_iface = self.dot_iface

            def one_iteration(index: Any, elem: Any) -> None:
                if decl:
                    if r.pipe.is_assign:
                        if len(decl) > 1:
                            self.set_var(decl[0].ident[0], index)
                        else:
                            self.set_var(decl[0].ident[0], elem, elem_iface)
                    else:
                        self.vars[-1][1] = elem
                        self.vars[-1][2] = elem_iface
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem, elem_iface)
                    else:
                        self.vars[-2][1] = index
                        self.vars[-2][2] = False
                self.dot_iface = elem_iface
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    self.dot_iface = saved_iface
                    del self.vars[mark:]

            try:
                if isinstance(inner, (list, tuple, bytes, bytearray)) and not isinstance(inner, str):
                    if len(inner):
                        for i, elem in enumerate(inner):
                            one_iteration(i, elem)
                        return
                elif isinstance(inner, dict):
                    if inner:
                        for k, elem in _sorted_items(inner):
                            one_iteration(k, elem)
                        return
                elif isinstance(inner, int) and not isinstance(inner, bool):
                    # Go 1.22: range over an integer n visits 0..n-1.
                    if len(decl) > 1:
                        self.errorf(f"can't use {inner} to iterate over more than one variable")
                    if inner > 0:
                        for i in range(inner):
                            one_iteration(i, i)
                        return
                elif val is NO_VALUE or isinstance(val, NilPointer):
                    pass  # acts like an empty collection
                else:
                    self.errorf(f"range can't iterate over {go_sprint_value(val)}")
            except _Break:
                return
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.node = t
        body = self.tmpl.templates.get(t.name)
        if body is None:
            self.errorf(f"template {go_quote(t.name)} not defined")
        assert body is not None
        if self.depth >= MAX_TEMPLATE_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe) if t.pipe is not None else NO_VALUE
        saved = (self.vars, self.exec_name, self.dot_iface)
        self.vars = [["$", dot, False]]
        self.exec_name = t.name
        self.dot_iface = False
        self.depth += 1
        try:
            self.walk(dot, body)
        finally:
            self.depth -= 1
            self.vars, self.exec_name, self.dot_iface = saved

    # Pipelines and commands --------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            # Go digs one level into interface{} values: a nil interface becomes "no value".
            if value is None:
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value, False])
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0].go_string()}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.node = first
            return self.eval_field_chain(dot, dot, self.dot_iface, first, first.ident, cmd.args, final)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, StringNode):
            return first.text
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        self.errorf(f"can't evaluate command {go_quote(first.go_string())}")

    def ideal_constant(self, c: NumberNode) -> Any:
        self.node = c
        text = c.text
        if c.is_complex:
            return c.complex_value
        is_hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(p in text for p in "pP")
        if c.is_float and not is_hex_int and not text.startswith("'") and any(x in text for x in ".eEpP"):
            return c.float_value
        if c.is_int:
            return c.int_value
        if c.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_chain_node(self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any) -> Any:
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain.go_string()}")
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, False, chain, chain.fields, args, final)

    def eval_variable_node(self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any) -> Any:
        self.node = var
        entry = self.var_entry(var.ident[0])
        value = entry[1]
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, entry[2], var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, iface: bool, node: Node, ident: Sequence[str],
                         args: list[Node] | None, final: Any) -> Any:
        n = len(ident)
        for i in range(n - 1):
            receiver = self.eval_field(dot, ident[i], node, None, _NO_FINAL, receiver, iface)
            iface = not isinstance(receiver, (Struct, Typed, NilPointer))
        value = self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)
        self.last_iface = not isinstance(receiver, Struct)
        return value

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node] | None, final: Any,
                   receiver: Any, iface: bool = False) -> Any:
        if receiver is NO_VALUE:
            if self.tmpl.missingkey == "error":
                self.errorf(f"nil data; no entry for key {go_quote(name)}")
            return NO_VALUE
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if isinstance(receiver, Struct):
            if name in receiver.fields:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        inner = receiver.value if isinstance(receiver, Typed) else receiver
        if isinstance(inner, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in inner:
                return inner[name]
            if self.tmpl.missingkey == "zero":
                return None
            if self.tmpl.missingkey == "error":
                self.errorf(f"map has no entry for key {go_quote(name)}")
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, NilPointer):
            self.errorf(f"nil pointer evaluating {receiver.type_name}.{name}")
        type_name = "interface {}" if iface else go_type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {type_name}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None,
                      final: Any) -> Any:
        self.node = node
        fn = self.tmpl.funcs.get(node.ident)
        if fn is None:
            self.errorf(f"{go_quote(node.ident)} is not a defined function")
        assert fn is not None
        return self.eval_call(dot, fn, cmd, node.ident, args, final)

    def eval_call(self, dot: Any, fn: _Func, node: Node, name: str, args: list[Node] | None,
                  final: Any) -> Any:
        argn = args[1:] if args is not None else []
        num_in = len(argn) + (0 if final is _NO_FINAL else 1)
        num_fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < num_fixed:
                self.errorf(f"wrong number of args for {name}: want at least {num_fixed} got {len(argn)}")
        elif num_in != num_fixed:
            self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")

        if fn.short_circuit is not None:
            want = fn.short_circuit == "or"
            v: Any = NO_VALUE
            for arg in argn:
                v = self.eval_arg(dot, _P_VALUE, arg)
                if _truth(_indirect_interface(v))[0] == want:
                    return v
            if final is not _NO_FINAL:
                v = final
            return v

        argv: list[Any] = []
        ifaces: list[bool] = []
        for i, arg in enumerate(argn):
            kind = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.eval_arg(dot, kind, arg))
            if fn.wants_iface:
                ifaces.append(self._arg_iface(arg, argv[-1]))
        if final is not _NO_FINAL:
            i = len(argn)
            kind = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.validate_type(final, kind))
            ifaces.append(False)
        try:
            if fn.wants_iface:
                result = fn.fn(*argv, iface=ifaces[1:])
            else:
                result = fn.fn(*argv)
        except _CallError as e:
            self.node = node
            self.errorf(f"error calling {name}: {e}")
        return result

    def _arg_iface(self, arg: Node, value: Any) -> bool:
        """Whether Go passes this argument as an interface{} value (a map or slice element, unwrapped)."""
        if value is NO_VALUE:
            return False
        if isinstance(arg, FieldNode) or (isinstance(arg, VariableNode) and len(arg.ident) > 1):
            return self.last_iface
        if isinstance(arg, VariableNode):
            return bool(self.var_entry(arg.ident[0])[2])
        if isinstance(arg, DotNode):
            return self.dot_iface
        return False

    def validate_type(self, value: Any, kind: str | None) -> Any:
        if kind is None or kind == _P_VALUE:
            return value
        if kind == _P_ANY:
            return None if value is NO_VALUE else value
        if value is NO_VALUE:
            self.errorf(f"invalid value; expected {kind}")
        if kind == _P_STRING and not isinstance(value, str):
            got = "interface {}" if value is None else go_type_name(value)
            self.errorf(f"wrong type for value; expected string; got {got}")
        return value

    def eval_arg(self, dot: Any, kind: str | None, n: Node) -> Any:
        self.node = n
        if isinstance(n, FieldNode):
            return self.validate_type(
                self.eval_field_chain(dot, dot, self.dot_iface, n, n.ident, [n], _NO_FINAL), kind)
        if isinstance(n, DotNode):
            return self.validate_type(dot, kind)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, _NO_FINAL), kind)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _NO_FINAL), kind)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, _NO_FINAL), kind)
        if isinstance(n, NilNode):
            if kind in (_P_VALUE, None):
                return NO_VALUE
            if kind == _P_ANY:
                return None
            self.errorf(f"cannot assign nil to {kind}")
        if kind == _P_STRING:
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n.go_string()}")
        if isinstance(n, StringNode):
            return n.text
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        self.errorf(f"can't handle assignment of {n.go_string()} to empty interface argument")

    def print_value(self, node: Node, v: Any) -> None:
        self.node = node
        if v is NO_VALUE or v is None:
            self.write("<no value>")
        elif isinstance(v, str):
            self.write(v)
        elif isinstance(v, Struct) and v.pointer and v.string is None:
            # printableValue indirects a pointer before printing: `{...}`, not `&{...}`.
            self.write(go_sprint_value(Struct(v.type_name, v.fields, v.json_fields, False, v.string)))
        else:
            self.write(go_sprint_value(v))


# --------------------------------------------------------------------------------------------------
# Templates.


class Template:
    """A parsed template: its main tree plus the `define`d and `block` trees it carries.

    Configured like Ollama's: `missingkey=zero` and Ollama's functions on top of Go's builtins.
    """

    __slots__ = ("__weakref__", "funcs", "missingkey", "name", "root", "source", "templates")

    def __init__(self, source: str, name: str, root: ListNode, templates: Mapping[str, ListNode], *,
                 missingkey: str = "zero", funcs: Mapping[str, _Func] | None = None) -> None:
        self.source = source
        self.name = name
        self.root = root
        self.templates = templates
        self.missingkey = missingkey
        self.funcs: Mapping[str, _Func] = funcs if funcs is not None else {**_BUILTINS, **_OLLAMA_FUNCS}

    @staticmethod
    def parse(text: str, name: str = "") -> Template:
        """Parse template text (cached by text: templates are rendered per request)."""
        return _parse_cached(text, name)

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Template({self.source[:40]!r}...)" if len(self.source) > 40 else f"Template({self.source!r})"

    def derive(self, root: ListNode, *, bare: bool = False) -> Template:
        """The same template with another main tree.

        `bare` builds what Go's `template.New("").AddParseTree("", tree)` gives: no `define`d
        templates, no custom functions and the default `missingkey` (Ollama renders the last
        legacy turn that way).
        """
        if bare:
            return Template(self.source, self.name, root, {self.name: root}, missingkey="default",
                            funcs=_BUILTINS)
        templates = dict(self.templates)
        templates[self.name] = root
        return Template(self.source, self.name, root, templates, missingkey=self.missingkey, funcs=self.funcs)

    def execute(self, data: Any) -> str:
        """Run the template over `data` (usually a Mapping); raises TemplateError like Go's errors."""
        if data is None:
            data = NO_VALUE  # reflect.ValueOf(nil) is the invalid value
        state = _State(self, self.name, data)
        try:
            state.walk(data, self.root)
        except _ExecError as e:
            raise TemplateError(str(e)) from None
        except (_Break, _Continue):  # unreachable: the parser rejects break/continue outside range
            pass
        except RecursionError:
            raise TemplateError(f"template: {self.name}: template is nested too deeply") from None
        out = "".join(state.out)
        if _has_surrogates(out):
            # A `slice` cut through a UTF-8 sequence: join the bytes back, then replace what stays broken.
            out = out.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return out

    def error_context(self, node: Node) -> tuple[str, str]:
        """parse.Tree.ErrorContext: `name:line:byte-column` and the node's text."""
        text = self.source[:node.pos]
        line = 1 + text.count("\n")
        last_nl = text.rfind("\n")
        col_text = text if last_nl < 0 else text[last_nl + 1:]
        col = len(col_text.encode("utf-8", "surrogateescape"))
        return f"{self.name}:{line}:{col}", node.go_string()

    def walk_nodes(self) -> Iterator[tuple[str, ListNode]]:
        """(name, root) of the main tree and of every associated template."""
        yield from self.templates.items()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogates(s: str) -> bool:
    return _SURROGATE.search(s) is not None


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str, name: str) -> Template:
    trees = _parse_trees(text, name, _ALL_FUNC_NAMES)
    root = trees.get(name) or ListNode(0)
    return Template(text, name, root, trees)


def identifiers(n: Node | None) -> list[str]:
    """Ollama's template.Identifiers: field and variable names a tree refers to (in order).

    Raises TemplateError for a `{{template "x"}}` without a pipeline, as Ollama does.
    """
    if n is None:
        return []
    if isinstance(n, ListNode):
        out: list[str] = []
        for c in n.nodes:
            out.extend(identifiers(c))
        return out
    if isinstance(n, TemplateNode):
        if n.pipe is None:
            raise TemplateError("undefined template specified")
        return identifiers(n.pipe)
    if isinstance(n, ActionNode):
        return identifiers(n.pipe)
    if isinstance(n, BranchNode):
        out = identifiers(n.pipe)
        out.extend(identifiers(n.list))
        if n.else_list is not None:
            out.extend(identifiers(n.else_list))
        return out
    if isinstance(n, PipeNode):
        out = []
        for c in n.cmds:
            for a in c.args:
                out.extend(identifiers(a))
        return out
    if isinstance(n, (FieldNode, VariableNode)):
        return list(n.ident)
    return []
