"""The one "run on a thread and poll progress" helper (pyollama.store.progress)."""

from __future__ import annotations

import threading
import time

import pytest

from pyollama.errors import CanceledError
from pyollama.store.progress import run_with_progress


def test_run_with_progress_yields_reports_until_work_returns() -> None:
    done = [0]

    def work(stop: threading.Event) -> None:
        for _ in range(5):
            time.sleep(0.02)
            done[0] += 1

    lines = list(run_with_progress(work, lambda: done[0], 0.005))
    assert lines and lines == sorted(lines) and done[0] == 5


def test_run_with_progress_skips_unchanged_reports_with_changed_key() -> None:
    def work(stop: threading.Event) -> None:
        time.sleep(0.1)

    assert list(run_with_progress(work, lambda: "same", 0.01, changed=lambda line: line)) == ["same"]


def test_run_with_progress_raises_the_work_error_on_the_caller_thread() -> None:
    def work(stop: threading.Event) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(run_with_progress(work, lambda: None, 0.01))


def test_run_with_progress_closed_early_stops_and_waits_for_the_work() -> None:
    finished = threading.Event()

    def work(stop: threading.Event) -> None:
        stop.wait(5)
        finished.set()

    lines = run_with_progress(work, lambda: 1, 0.01)
    next(lines)
    lines.close()
    assert finished.is_set()


def test_run_with_progress_cancel_raises_canceled_after_the_work_stopped() -> None:
    cancel = threading.Event()
    stopped = threading.Event()

    def work(stop: threading.Event) -> None:
        cancel.set()
        stop.wait(5)
        stopped.set()

    with pytest.raises(CanceledError):
        list(run_with_progress(work, lambda: 1, 0.01, cancel=cancel))
    assert stopped.is_set()
