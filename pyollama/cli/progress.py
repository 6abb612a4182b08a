"""The progress printer for pull, push, create and blob uploads (a terminal and a log alike)."""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from pyollama.cli.format import human_bytes, human_eta


@dataclass
class _LayerProgress:
    """One layer's byte counts over time, for its rate (over the last `RATE_WINDOW` seconds)."""

    started: float
    start_bytes: int
    samples: deque[tuple[float, int]]
    printed_at: float | None = None  # non-tty: when its last line was printed
    done: bool = False


class ProgressPrinter:
    """Per-layer progress lines for pull, push and uploads: percent, bar, bytes, rate, time left.

    On a terminal the current layer's line is rewritten in place. Elsewhere (a pipe, a log)
    a layer gets a line when it starts, one every `log_interval` seconds while it runs (so a
    long download shows its rate and time left in the log too), and one when it completes,
    with its average rate and duration. `clock` is for tests.
    """

    RATE_WINDOW = 10.0  # seconds of samples the rate is computed over
    MIN_ELAPSED = 0.2  # no rate before this much time: it would be noise

    def __init__(self, out: IO[str] | None = None, *, log_interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.log_interval = log_interval
        self.clock = clock
        self._current: str | None = None
        self._layers: dict[str, _LayerProgress] = {}

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 20)).columns

    def _end_line(self) -> None:
        if self._current is not None and self.tty:
            self.out.write("\n")
        self._current = None

    def status(self, text: str) -> None:
        self._end_line()
        self.out.write(text + "\n")
        self.out.flush()

    def _track(self, key: str, completed: int, now: float) -> _LayerProgress:
        state = self._layers.get(key)
        if state is None:
            state = self._layers[key] = _LayerProgress(now, completed, deque())
        state.samples.append((now, completed))
        while len(state.samples) > 2 and now - state.samples[1][0] >= self.RATE_WINDOW:
            state.samples.popleft()
        return state

    def _rate(self, state: _LayerProgress) -> float:
        (t0, b0), (t1, b1) = state.samples[0], state.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= self.MIN_ELAPSED else 0.0

    def _line(self, label: str, completed: int, total: int, state: _LayerProgress, now: float) -> str:
        pct = min(100, int(100 * completed / total)) if total else 100
        bar_width = 20
        filled = bar_width * pct // 100
        bar = "█" * filled + " " * (bar_width - filled)
        parts = [f"{label} {pct:3d}% ▕{bar}▏ {human_bytes(completed)}/{human_bytes(total)}"]
        if completed >= total:
            # Finished: the average over the whole layer, and how long it took.
            elapsed = now - state.started
            if elapsed >= self.MIN_ELAPSED and completed > state.start_bytes:
                parts.append(f"{human_bytes(int((completed - state.start_bytes) / elapsed))}/s")
                parts.append(f"in {human_eta(elapsed)}")
            return " ".join(parts)
        rate = self._rate(state)
        if rate > 0:
            parts.append(f"{human_bytes(int(rate))}/s")
            parts.append(human_eta((total - completed) / rate))
        return " ".join(parts)

    def layer(self, key: str, label: str, completed: int, total: int) -> None:
        now = self.clock()
        state = self._track(key, completed, now)
        if state.done:
            return
        finished = completed >= total
        line = self._line(label, completed, total, state, now)
        if self.tty:
            if self._current != key:
                self._end_line()
            width = self._width() - 1
            # Padded to the width: the previous, longer line must not show through.
            self.out.write("\r" + line[:width].ljust(width))
            self._current = key
        elif (self._current != key or finished or state.printed_at is None
              or now - state.printed_at >= self.log_interval):
            self.out.write(line + "\n")
            self._current = key
            state.printed_at = now
        state.done = finished
        self.out.flush()

    def event(self, event: dict[str, Any]) -> None:
        digest = event.get("digest")
        if digest and event.get("total"):
            self.layer(digest, event.get("status", ""), int(event.get("completed", 0)), int(event["total"]))
        else:
            self.status(str(event.get("status", "")))

    def finish(self) -> None:
        self._end_line()
        self.out.flush()
