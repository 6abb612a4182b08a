"""Reply objects and their timestamps (the parts that need no model)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyollama.golang.time import format_rfc3339 as rfc3339
from pyollama.server.shapes import now_utc


def test_rfc3339_trims_fraction_zeros_like_go() -> None:
    utc = datetime(2024, 7, 22, 20, 47, 51, 147560, tzinfo=timezone.utc)
    assert rfc3339(utc) == "2024-07-22T20:47:51.14756Z"
    assert rfc3339(utc.replace(microsecond=0)) == "2024-07-22T20:47:51Z"
    local = datetime(2025, 5, 10, 8, 6, 48, 639712, tzinfo=timezone(timedelta(hours=-7)))
    assert rfc3339(local) == "2025-05-10T08:06:48.639712-07:00"
    assert rfc3339(utc, nanos=123456789) == "2024-07-22T20:47:51.123456789Z"


def test_now_utc_is_utc_with_nanoseconds() -> None:
    stamp = now_utc()
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp[:26] + "+00:00").year >= 2024
