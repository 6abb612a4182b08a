"""pyollama.golang.fmt type names and pyollama.golang.time against Go's outputs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pyollama.golang.fmt import sprint, sprintf, type_name
from pyollama.golang.time import format_rfc3339, parse_duration, parse_rfc3339


@pytest.mark.parametrize(
    ("value", "plain", "decoded"),
    [(None, "<nil>", "<nil>"), (True, "bool", "bool"), (3, "int", "float64"), (2.5, "float64", "float64"),
     ("s", "string", "string"), ([1], "[]interface {}", "[]interface {}"),
     ({"a": 1}, "map[string]interface {}", "map[string]interface {}")],
)
def test_type_name_numbers_are_float64_when_json_decoded(value: object, plain: str, decoded: str) -> None:
    assert type_name(value) == plain
    assert type_name(value, json_decoded=True) == decoded


def test_sprint_and_sprintf_print_like_go() -> None:
    assert sprint([1, "a", [2, 3], {"k": 1e6}]) == "1a[2 3] map[k:1e+06]"
    assert sprintf("%5.2f|%-4d|%q|%x", [3.14159, 7, "é\n", 255]) == " 3.14|7   |\"é\\n\"|ff"


def test_parse_duration_fails_with_go_text() -> None:
    assert parse_duration("1h30m") == 5400.0
    with pytest.raises(ValueError, match='^time: missing unit in duration "3600"$'):
        parse_duration("3600")


def test_rfc3339_round_trips_with_nanoseconds_and_zones() -> None:
    utc = datetime(2024, 7, 22, 20, 47, 51, 147560, tzinfo=timezone.utc)
    assert format_rfc3339(utc, nanos=147560123) == "2024-07-22T20:47:51.147560123Z"
    assert parse_rfc3339("2024-07-22T20:47:51.147560123Z") == utc
    local = datetime(2025, 5, 10, 8, 6, 48, tzinfo=timezone(timedelta(hours=-7)))
    assert format_rfc3339(local) == "2025-05-10T08:06:48-07:00"
    assert parse_rfc3339("2025-05-10T08:06:48-07:00") == local
