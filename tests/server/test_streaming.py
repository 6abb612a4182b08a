"""Stream framing: NDJSON bodies, priming, error lines, closing (the parts that need no model)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask

from pyollama.errors import BadRequestError, ServerBusyError
from pyollama.server.streaming import NDJSON_WIRE, EventStream, ndjson_response, progress_response


def _events(fail_at: int | None = None, log: list[str] | None = None) -> Iterator[dict]:
    try:
        for i in range(3):
            if i == fail_at:
                raise BadRequestError("the input length exceeds the context length")
            yield {"i": i}
    finally:
        if log is not None:
            log.append("closed")


def test_ndjson_stream_writes_one_object_per_line() -> None:
    app = Flask("t")
    with app.test_request_context():
        response = ndjson_response(_events())
        body = b"".join(response.response)
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert [json.loads(line) for line in body.splitlines()] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert body.endswith(b"\n")


def test_ndjson_error_before_first_object_raises_for_http_status() -> None:
    released: list[str] = []
    with pytest.raises(BadRequestError):
        ndjson_response(_events(fail_at=0), on_close=[lambda: released.append("released")])
    assert released == ["released"]


def test_ndjson_error_mid_stream_becomes_error_line() -> None:
    stream = EventStream({"i": -1}, _events(fail_at=1), [], NDJSON_WIRE)
    lines = [json.loads(line) for line in b"".join(stream).splitlines()]
    assert lines == [{"i": -1}, {"i": 0}, {"error": "the input length exceeds the context length"}]


def test_ndjson_close_closes_events_and_runs_callbacks_once() -> None:
    log: list[str] = []
    events = _events(log=log)
    first = next(events)
    stream = EventStream(first, events, [lambda: log.append("released")], NDJSON_WIRE)
    iterator = iter(stream)
    next(iterator)  # client read one line, then went away
    stream.close()
    stream.close()
    assert log == ["closed", "released"]


def test_progress_response_without_stream_returns_last_object_or_error_status() -> None:
    app = Flask("t")
    with app.test_request_context():
        ok = progress_response(iter([{"status": "pulling manifest"}, {"status": "success"}]), stream=False)
        assert (ok.status_code, ok.get_json()) == (200, {"status": "success"})
        assert ok.headers["Content-Type"] == "application/json"

        def failing() -> Iterator[dict]:
            yield {"status": "pulling manifest"}
            raise ServerBusyError()

        bad = progress_response(failing(), stream=False)
        assert bad.status_code == 503
        assert bad.get_json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
