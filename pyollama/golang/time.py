"""Go's time: ParseDuration, and RFC 3339 with nanoseconds (time.RFC3339Nano) both ways."""

from __future__ import annotations

import re
from datetime import datetime

from pyollama.golang.strconv import quote

# time.ParseDuration's units, in seconds.
_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*\.?\d*)([^\d.]*)")


# time.Duration is int64 nanoseconds: the longest one, in seconds (about 292 years).
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


def parse_duration(text: str) -> float:
    """time.ParseDuration, in seconds: "5m", "1h30m", "1.5s", "-1m", "300ms", "0".

    ValueError with Go's own texts (`time: missing unit in duration "3600"`).
    """
    original = text
    quoted = quote(original)
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if text == "":
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        number, unit = match.group(1), match.group(2)
        if unit == "":
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {quote(unit)} in duration {quoted}")
        total += float(number) * _DURATION_UNITS[unit]
        pos = match.end()
    if total > MAX_DURATION_SECONDS:  # Go's int64 nanoseconds overflow
        raise ValueError(f"time: invalid duration {quoted}")
    return sign * total


def format_rfc3339(dt: datetime, nanos: int | None = None) -> str:
    """t.Format(time.RFC3339Nano): fraction with trailing zeros trimmed (none if zero), `Z` for UTC.

    `nanos` replaces the fraction of `dt` (Python keeps only microseconds).
    """
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac_ns = nanos if nanos is not None else dt.microsecond * 1000
    frac = f".{frac_ns:09d}".rstrip("0") if frac_ns else ""
    offset = dt.utcoffset()
    if offset is None or offset.total_seconds() == 0:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return base + frac + zone


def parse_rfc3339(text: str) -> datetime:
    """time.Parse(time.RFC3339Nano, text), fraction cut to microseconds; ValueError if malformed."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text)
