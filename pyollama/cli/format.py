"""How the `pyollama` commands write sizes, times and tables, the way Ollama's CLI does."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from pyollama.golang.time import parse_rfc3339


def human_bytes(n: int) -> str:
    """Ollama's format.HumanBytes (decimal units): 91 MB, 1.3 GB, 512 B."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, scale in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                        ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= scale:
            count = int(seconds // scale)
            if count == 1:
                return f"About a{'n' if unit == 'hour' else ''} {unit}"
            return f"{count} {unit}s"
    return "Less than a second"


def human_time(when: str, now: datetime | None = None) -> str:
    """`2 days ago`, `4 minutes from now`, `Forever` (for infinite keep-alive)."""
    try:
        moment = parse_rfc3339(when)
    except ValueError:
        return when
    now = now or datetime.now(timezone.utc)
    delta = (moment - now).total_seconds()
    if delta > 100 * 365 * 86400:
        return "Forever"
    text = human_duration(delta)
    return f"{text} from now" if delta > 0 else f"{text} ago"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "    ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def human_ns(ns: int) -> str:
    seconds = ns / 1e9
    if seconds >= 1:
        return f"{seconds:.6g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6g}ms"
    return f"{seconds * 1e6:.6g}µs"


def human_eta(seconds: float) -> str:
    """Time left as Ollama's progress bar shows it: `42s`, `3m05s`, `1h02m`."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
