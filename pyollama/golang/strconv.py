"""Go's strconv: quoting, float formatting and the literal parsing text/template relies on.

Strings carry raw bytes that are not UTF-8 as surrogateescape code points (U+DC80-U+DCFF),
so a Go string that holds invalid UTF-8 round-trips through these functions.
"""

from __future__ import annotations

import math
import re

import numpy as np


class NumError(ValueError):
    """strconv's ErrSyntax: the text is not a valid literal (str(): "invalid syntax")."""


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal (also fmt's %q and %#v of a string).

    Printable characters stay as they are (Python's isprintable and Go's IsPrint agree: letters,
    marks, numbers, punctuation, symbols and the ASCII space); raw non-UTF-8 bytes become \\xNN.
    """
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def quote_rune(code: int) -> str:
    """strconv.QuoteRune; also encoding/json's quoteChar of a byte in its syntax errors."""
    if code == ord("'"):
        return "'\\''"
    if code == ord('"'):
        return "'\"'"
    return "'" + quote(chr(code))[1:-1] + "'"


def _shortest_digits(f: float, bit_size: int = 64) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| (as a float64, or as a float32 for bit_size 32)
    and the decimal point position: 0.DIGITS x 10^dp."""
    if bit_size == 32:
        # numpy's unique float32 digits (Dragon4): the shortest that read back as the same float32,
        # the closest of those on a tie, as Go's 32-bit shortest formatting picks them.
        text = np.format_float_scientific(np.float32(abs(f)), unique=True, trim="-")
    else:
        text = repr(abs(f))
    mantissa, _, exp = text.partition("e")
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


def format_float(f: float, fmt: str = "g", prec: int = -1, bit_size: int = 64) -> str:
    """strconv.FormatFloat(f, fmt, prec, bit_size) for fmt in e, E, f, g, G (prec -1: shortest),
    and in x, X with prec -1 (64 bits only). With bit_size 32, f is taken as a float32 (rounded
    to one first): only the shortest digits differ, 0.1 rather than 0.10000000149011612.

    `format_float(f)` ('g', shortest) is also fmt's %v of a float64: 1, 0.7, 1e+06, 1e-05.
    """
    if bit_size == 32:
        f = float(np.float32(f))
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if fmt in "xX":
        return _hex_float(f, upper=fmt == "X")
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
        digits, dp = _shortest_digits(f, bit_size)
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


_SIMPLE_UNQUOTE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def unquote(quoted: str) -> str:
    """strconv.Unquote for "..." and `...` literals; raw bytes outside UTF-8 survive as surrogateescape."""
    if len(quoted) < 2:
        raise NumError("invalid syntax")
    q = quoted[0]
    if q != quoted[-1]:
        raise NumError("invalid syntax")
    body = quoted[1:-1]
    if q == "`":
        if "`" in body:
            raise NumError("invalid syntax")
        return body.replace("\r", "")
    if q not in "\"'":
        raise NumError("invalid syntax")
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == q or ch == "\n":
            raise NumError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= n:
            raise NumError("invalid syntax")
        c = body[i + 1]
        i += 2
        if c in _SIMPLE_UNQUOTE:
            if (c == "'" and q == '"') or (c == '"' and q == "'"):
                raise NumError("invalid syntax")
            out.append(_SIMPLE_UNQUOTE[c])
        elif c in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[c]
            hexs = body[i:i + width]
            if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise NumError("invalid syntax")
            i += width
            value = int(hexs, 16)
            if c == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise NumError("invalid syntax")
                out += chr(value).encode("utf-8")
        elif "0" <= c <= "7":
            octs = body[i - 1:i + 2]
            if len(octs) != 3 or any(o not in "01234567" for o in octs):
                raise NumError("invalid syntax")
            value = int(octs, 8)
            if value > 255:
                raise NumError("invalid syntax")
            out.append(value)
            i += 2
        else:
            raise NumError("invalid syntax")
    text = out.decode("utf-8", "surrogateescape")
    if q == "'" and len(text) != 1:
        raise NumError("invalid syntax")
    return text


def unquote_char(s: str, quote: str) -> tuple[int, str]:
    """strconv.UnquoteChar: the first (possibly escaped) character of s and the rest."""
    if not s:
        raise NumError("invalid syntax")
    c = s[0]
    if c == quote and quote in "'\"":
        raise NumError("invalid syntax")
    if c != "\\":
        return ord(c), s[1:]
    if len(s) < 2:
        raise NumError("invalid syntax")
    e = s[1]
    if e in _SIMPLE_UNQUOTE:
        if e in "'\"" and e != quote:
            raise NumError("invalid syntax")
        return _SIMPLE_UNQUOTE[e], s[2:]
    if e in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[e]
        hexs = s[2:2 + width]
        if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
            raise NumError("invalid syntax")
        value = int(hexs, 16)
        if e != "x" and (value > 0x10FFFF or 0xD800 <= value <= 0xDFFF):
            raise NumError("invalid syntax")
        return value, s[2 + width:]
    if "0" <= e <= "7":
        octs = s[1:4]
        if len(octs) != 3 or any(o not in "01234567" for o in octs) or int(octs, 8) > 255:
            raise NumError("invalid syntax")
        return int(octs, 8), s[4:]
    raise NumError("invalid syntax")


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


def parse_int(text: str) -> int | None:
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


def parse_float(text: str) -> float | None:
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
