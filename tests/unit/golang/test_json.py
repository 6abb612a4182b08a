"""pyollama.golang.json: json.Marshal / Encoder.Encode bytes and the decoder's error texts."""

from __future__ import annotations

import numpy as np
import pytest

from pyollama.golang import json as gojson
from pyollama.golang.values import OMIT_EMPTY, Struct


def test_marshal_is_compact_html_safe_and_sorts_map_keys() -> None:
    assert gojson.marshal({"b": [1, 2.5, None], "a": "<x>&\u2028"}) == '{"a":"\\u003cx\\u003e\\u0026\\u2028","b":[1,2.5,null]}'


def test_marshal_keeps_order_for_struct_like_dicts_when_asked() -> None:
    assert gojson.marshal({"b": 1, "a": 2}, sort_keys=False) == '{"b":1,"a":2}'


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"),
     (-0.0, "-0"), (0.95, "0.95")],
)
def test_floats_use_go_notation(value: float, text: str) -> None:
    assert gojson.marshal(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    # what json.Marshal writes for these float32 values (a []float32's elements): the shortest
    # digits of the float32, not of the float64 it widens to (0.1, not 0.10000000149011612)
    [(0.1, "0.1"), (0.012345679, "0.012345679"), (1.0, "1"), (-0.0, "-0"), (0.0, "0"), (16777217.0, "16777216"),
     (1e20, "100000000000000000000"), (1e21, "1e+21"), (3.4028235e38, "3.4028235e+38"), (1e-7, "1e-7"),
     (-2.5e-10, "-2.5e-10"), (1e-45, "1e-45"), (1e-6, "0.000001"), (9.99999e-7, "9.99999e-7"),
     (1.5e-6, "0.0000015"), (123456.78, "123456.78")],
)
def test_float32_uses_its_own_shortest_digits_in_go_notation(value: float, text: str) -> None:
    assert gojson.format_float(value, 32) == text


def test_float32_threshold_is_compared_as_a_float32() -> None:
    # float32(1e-6) is 9.99999997e-07 as a float64, below 1e-6; Go compares the float32 with
    # float32(1e-6), so it stays in 'f' notation (a float64 of that value goes to 'e')
    just_below = float(np.float32(1e-6))
    assert gojson.format_float(just_below, 32) == "0.000001"
    assert gojson.format_float(just_below) == "9.999999974752427e-7"


def test_nan_and_complex_are_unsupported_with_go_text() -> None:
    with pytest.raises(gojson.UnsupportedValueError, match="^json: unsupported value: NaN$"):
        gojson.marshal(float("nan"))
    with pytest.raises(gojson.UnsupportedValueError, match="^json: unsupported type: complex128$"):
        gojson.marshal(1j)


def test_invalid_utf8_is_written_as_replacement_escape() -> None:
    assert gojson.marshal("a\udc80") == '"a\\ufffd"'


def test_encode_adds_newline_and_returns_bytes() -> None:
    assert gojson.encode({"stop": ["<|im_end|>"]}) == b'{"stop":["\\u003c|im_end|\\u003e"]}\n'


def test_struct_honours_field_order_and_omitempty() -> None:
    s = Struct("T", {"B": "", "A": 1}, json_fields=(("b", "B", OMIT_EMPTY), ("a", "A", 0)))
    assert gojson.marshal(s) == '{"a":1}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "unexpected EOF"),
        ("x", "invalid character 'x' looking for beginning of value"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        ("[1 2]", "invalid character '2' after array element"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("-Infinity", "invalid character 'I' in numeric literal"),
    ],
)
def test_decode_fails_with_go_syntax_error_text(text: str, message: str) -> None:
    with pytest.raises(gojson.DecodeError) as info:
        gojson.decode(text)
    assert str(info.value) == message


def test_decode_ignores_what_follows_the_first_value() -> None:
    assert gojson.decode('{"a":1} trailing') == {"a": 1}


def test_unmarshal_type_error_names_number_for_int_fields() -> None:
    assert gojson.unmarshal_type_error(1.5, "Options.num_ctx", "int") == (
        "json: cannot unmarshal number 1.5 into Go struct field Options.num_ctx of type int")
    assert gojson.unmarshal_type_error("x", "ChatRequest.stream", "bool") == (
        "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool")


def test_decode_replaces_unpaired_surrogate_escapes_like_go() -> None:
    value = gojson.decode('{"k\\ud800": ["\\udc00x", {"pair": "\\ud83d\\ude00", "high": "a\\udbff"}]}')
    assert value == {"k\ufffd": ["\ufffdx", {"pair": "\U0001f600", "high": "a\ufffd"}]}
    assert gojson.decode('"\\ud800"') == "\ufffd"


def test_decode_refuses_nesting_deeper_than_the_decoder_goes() -> None:
    with pytest.raises(gojson.DecodeError, match="^exceeded max depth$"):
        gojson.decode("[" * 100_000)
    nested: list[object] = []
    for _ in range(199):
        nested = [nested]
    assert gojson.decode("[" * 200 + "]" * 200) == nested
