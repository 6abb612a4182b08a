"""Run work on a thread and stream its progress: the one helper pull, push and create share.

The work gets a `stop` event; the generator polls `report()` every `interval`
and yields what it returns. Whatever ends the generator (the work finished or
failed, the consumer stopped iterating because its client went away, a set
`cancel`), the thread is stopped and waited for, so no thread outlives the
generator holding files open. The work's exception is raised on the
generator's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from pyollama.errors import CanceledError

T = TypeVar("T")


def run_with_progress(
    work: Callable[[threading.Event], None],
    report: Callable[[], T | None],
    interval: float,
    *,
    cancel: threading.Event | None = None,
    canceled: Callable[[], BaseException] = lambda: CanceledError("request canceled"),
    changed: Callable[[T], object] | None = None,
    thread_name: str = "pyollama-work",
) -> Iterator[T]:
    """Run `work(stop)` on a thread and yield `report()` every `interval` until the work is done
    (see `follow`). The caller yields the final line itself, once the work has returned."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        try:
            yield from follow(pool.submit(work, stop), stop, report, interval,
                              cancel=cancel, canceled=canceled, changed=changed)
        finally:
            # Leaving the pool waits for the thread: work that cannot be interrupted is waited out.
            stop.set()


def follow(
    future: Future[None],
    stop: threading.Event,
    report: Callable[[], T | None],
    interval: float,
    *,
    cancel: threading.Event | None = None,
    canceled: Callable[[], BaseException] = lambda: CanceledError("request canceled"),
    changed: Callable[[T], object] | None = None,
) -> Iterator[T]:
    """Yield `report()` every `interval` until `future` (work running with `stop`) is done, then
    raise its exception if it failed. A None report is skipped; with `changed`, so is a report
    whose `changed(report)` equals the last one yielded. A set `cancel` stops the work, waits
    for it and raises `canceled()`."""
    last: object = None
    while True:
        if wait([future], timeout=interval)[0]:
            future.result()
            return
        current = report()
        if current is not None:
            key = changed(current) if changed is not None else None
            if changed is None or key != last:
                last = key
                yield current
        if cancel is not None and cancel.is_set():
            stop.set()
            wait([future])
            raise canceled()
