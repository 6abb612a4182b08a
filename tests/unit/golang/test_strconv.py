"""pyollama.golang.strconv against outputs of Go's strconv (Go 1.22)."""

from __future__ import annotations

import pytest

from pyollama.golang.strconv import format_float, quote, quote_rune


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x01\x7f", '"\\x01\\x7f"'),
        ("é 😀", '"é 😀"'),
        ("\u00a0\u200b\u0085", '"\\u00a0\\u200b\\u0085"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("a\udc80b", '"a\\x80b"'),  # a raw byte outside UTF-8 (surrogateescape)
    ],
)
def test_quote_matches_go_strconv_quote(text: str, quoted: str) -> None:
    assert quote(text) == quoted


@pytest.mark.parametrize(("code", "quoted"), [(ord("'"), "'\\''"), (ord('"'), "'\"'"), (1, "'\\x01'"),
                                              (0xE4, "'ä'")])
def test_quote_rune_matches_go_quote_rune(code: int, quoted: str) -> None:
    assert quote_rune(code) == quoted


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.7, "0.7"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (131072.0, "131072"),
     (1e-05, "1e-05"), (0.0001, "0.0001"), (1e21, "1e+21"), (-2.5, "-2.5"), (-0.0, "-0"),
     (float("inf"), "+Inf"), (float("nan"), "NaN")],
)
def test_format_float_shortest_g_is_go_v_verb(value: float, text: str) -> None:
    assert format_float(value) == text


@pytest.mark.parametrize(
    ("value", "fmt", "prec", "text"),
    [(3.14159, "f", 2, "3.14"), (1234.5, "e", 3, "1.234e+03"), (1234.5, "E", -1, "1.2345E+03"),
     (0.000012345, "g", 3, "1.23e-05"), (100.0, "g", 3, "100"), (1.5, "x", -1, "0x1.8p+00")],
)
def test_format_float_with_format_and_precision(value: float, fmt: str, prec: int, text: str) -> None:
    assert format_float(value, fmt, prec) == text
