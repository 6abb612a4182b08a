"""One event stream, written as NDJSON (Ollama) or Server-Sent Events (OpenAI).

Streams are primed: the first event is produced before the response starts,
so an error raised before any output (a model that cannot load, a prompt too
long, a schema without a grammar) still gets its HTTP status, as in Ollama.
A later error becomes a last in-band error frame (`{"error": ...}`, or for SSE
`data: {"error": {...}}` with no `[DONE]` after it). When the client goes away
the WSGI server closes the body, which closes the event generator (cancelling
the completion and freeing its sequence), then releases the runner.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response

from pyollama.errors import PyollamaError
from pyollama.server.responses import error_response, openai_error_body

log = logging.getLogger("pyollama.server")

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"
DONE_FRAME = b"data: [DONE]\n\n"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_line(obj: Any) -> bytes:
    return _dumps(obj) + b"\n"


def sse_frame(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def sse_event(name: str, obj: Any) -> bytes:
    """A named SSE event (`event: <name>` then its data): the Responses and Anthropic streams."""
    return b"event: " + name.encode("utf-8") + b"\ndata: " + _dumps(obj) + b"\n\n"


@dataclass(frozen=True)
class Wire:
    """How events are written: the frames of one event, the in-band error frame, the last frame."""

    content_type: str
    frames: Callable[[Any], Iterable[bytes]]
    error: Callable[[int, str], bytes]
    end: bytes = b""


NDJSON_WIRE = Wire(NDJSON, lambda event: (json_line(event),), lambda _status, message: json_line({"error": message}))


def sse_wire(translate: Callable[[Mapping[str, Any]], list[Any]]) -> Wire:
    """SSE frames of the OpenAI chunks that `translate` makes of each Ollama event."""
    return Wire(
        EVENT_STREAM,
        lambda event: [sse_frame(chunk) for chunk in translate(event)],
        lambda status, message: sse_frame(openai_error_body(status, message)),
        DONE_FRAME,
    )


class EventStream:
    """A WSGI body: the frames of each event, handed to the server one event at a time.

    `close()` (called by the WSGI server when the response ends or the client
    disconnects) closes the event generator, whose cleanup cancels unfinished
    work, then runs the `on_close` callbacks (releasing the runner).
    """

    def __init__(self, first: Any, events: Iterator[Any], on_close: Iterable[Callable[[], None]], wire: Wire) -> None:
        self._first = first
        self._events = events
        self._on_close = list(on_close)
        self._wire = wire
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        wire = self._wire
        try:
            yield from wire.frames(self._first)
            for event in self._events:
                yield from wire.frames(event)
            if wire.end:
                yield wire.end
        except PyollamaError as exc:
            yield wire.error(exc.status, exc.message)
        except Exception as exc:  # a crash mid-stream still ends the stream with an error frame
            log.exception("stream failed")
            yield wire.error(500, str(exc) or type(exc).__name__)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            run_callbacks(self._on_close)


def run_callbacks(callbacks: Iterable[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # cleanup must run to the end; a failing step is logged, not raised
            log.exception("cleanup failed")


def prime(events: Iterator[Any], on_close: Iterable[Callable[[], None]] = ()) -> tuple[Any, bool]:
    """(first event, True) or (None, False) if there is none; runs `on_close` if it raises."""
    try:
        return next(events), True
    except StopIteration:
        return None, False
    except BaseException:
        close = getattr(events, "close", None)
        if close is not None:
            close()
        run_callbacks(on_close)
        raise


def stream_response(
    events: Iterator[Any], wire: Wire, on_close: Iterable[Callable[[], None]] = (), empty: Any = None
) -> Response:
    """Stream `events`; errors before the first event keep their HTTP status. With no event at
    all the body is `empty`'s frames if given, else just the wire's last frame."""
    callbacks = list(on_close)
    first, ok = prime(events, callbacks)
    if not ok:
        run_callbacks(callbacks)
        if empty is None:
            return Response(wire.end, status=200, content_type=wire.content_type)
        first = empty
    body = EventStream(first, events, callbacks, wire)
    return Response(body, status=200, content_type=wire.content_type, direct_passthrough=True)


def ndjson_response(
    events: Iterator[Any], on_close: Iterable[Callable[[], None]] = (), empty: Any = None
) -> Response:
    """Stream `events` as NDJSON (Ollama's streams)."""
    return stream_response(events, NDJSON_WIRE, on_close, empty)


def progress_response(events: Iterator[dict[str, Any]], stream: bool) -> Response:
    """Pull/push/create progress: streamed, or only the last object (`application/json`)."""
    if stream:
        return ndjson_response(events)
    last: dict[str, Any] | None = None
    try:
        for event in events:
            last = event
    except PyollamaError as exc:
        return error_response(exc.message, exc.status)
    data = json.dumps(last or {"status": "success"}, ensure_ascii=False, separators=(",", ":"))
    return Response(data, status=200, content_type="application/json")


__all__ = [
    "DONE_FRAME",
    "EVENT_STREAM",
    "NDJSON",
    "NDJSON_WIRE",
    "EventStream",
    "Wire",
    "json_line",
    "ndjson_response",
    "prime",
    "progress_response",
    "sse_event",
    "sse_frame",
    "sse_wire",
    "stream_response",
]
