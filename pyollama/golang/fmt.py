"""Go's fmt: Sprint, Sprintln, Sprintf with its verbs and flags, and %T type names.

Values are the Python shapes of Go values described in `pyollama.golang.values`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyollama.golang.strconv import format_float, quote, quote_rune
from pyollama.golang.values import NO_VALUE, NilPointer, Struct, Typed, Uint8


def format_unicode(code: int) -> str:
    """fmt's %#U: `U+0023 '#'`."""
    if 0 <= code < 0x110000 and chr(code).isprintable():
        return f"U+{code:04X} '{chr(code)}'"
    return f"U+{code:04X}"


def _format_complex(c: complex) -> str:
    imag = format_float(c.imag)
    if not imag.startswith("-") and not imag.startswith("+"):
        imag = "+" + imag
    return f"({format_float(c.real)}{imag}i)"


def type_name(v: Any, *, json_decoded: bool = False) -> str:
    """The Go type of a value, as fmt's %T and error messages write it.

    `json_decoded`: `v` is what encoding/json decodes into an interface{}, where every number
    is a float64 (Ollama's request errors); otherwise a Python int stands for a Go int.
    """
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Uint8):
        return "uint8"
    if isinstance(v, int):
        return "float64" if json_decoded else "int"
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


def sorted_items(d: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Go sorts map keys when printing and ranging (internal/fmtsort)."""
    return sorted(d.items(), key=lambda kv: _sort_key(kv[0]))


def sprint_value(v: Any, depth: int = 0) -> str:
    """fmt's %v of one operand."""
    return _Fmt(verb="v").value(v, depth)


def sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither is a string."""
    out: list[str] = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(arg))
        prev_string = is_string
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """fmt.Sprintln: spaces always, newline at the end."""
    return " ".join(sprint_value(a) for a in args) + "\n"


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
        return f"%!{self.verb}({type_name(v)}={as_v.value(v)})"

    def value(self, v: Any, depth: int = 0) -> str:
        verb = self.verb
        if verb == "T":
            return self.pad(type_name(v))
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
            items = " ".join(f"{self.value(k, depth + 1)}:{self.value(x, depth + 1)}" for k, x in sorted_items(v))
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
            return self.pad(quote_rune(n) if 0 <= n < 0x110000 else "'\ufffd'")
        elif verb == "U":
            n = n % (1 << 64) if n < 0 else n
            return self.pad(format_unicode(n) if self.sharp else f"U+{n:04X}")
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
            s = format_float(f, "g", -1 if self.prec is None else self.prec)
        elif verb in "eEfFgG":
            fmt = "f" if verb == "F" else verb
            prec = self.prec if self.prec is not None else (6 if verb in "eEfF" else -1)
            s = format_float(f, fmt, prec)
        elif verb in "xX" and self.prec is None and math.isfinite(f):
            s = format_float(f, verb)
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
            return self.pad(quote(s))
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


def sprintf(fmt: str, args: Sequence[Any]) -> str:
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
            "<nil>" if a is None else f"{type_name(a)}={sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)

