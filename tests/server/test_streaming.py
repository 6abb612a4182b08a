"""Stream framing, timestamps and reply assembly (the parts that need no model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask

from pyollama.errors import BadRequestError, ServerBusyError
from pyollama.server.streaming import (
    Delta,
    JsonToolReply,
    NDJSONStream,
    ThinkTagReply,
    ndjson_response,
    now_utc,
    parse_json_tool_calls,
    progress_response,
    rfc3339,
)


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


def _feed(parser: ThinkTagReply | JsonToolReply, pieces: list[str]) -> Delta:
    total = Delta()
    for piece in [*pieces, None]:
        delta = parser.finish() if piece is None else parser.feed(piece)
        total.content += delta.content
        total.thinking += delta.thinking
        total.tool_calls += delta.tool_calls
    return total


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>plan</think>answer"],
        ["<th", "ink>pl", "an</thi", "nk>ans", "wer"],
        ["  <think>", "plan", "</think>\n\n", "answer"],
    ],
)
def test_think_tags_split_thinking_from_content_across_pieces(pieces: list[str]) -> None:
    total = _feed(ThinkTagReply(), pieces)
    assert (total.thinking, total.content) == ("plan", "answer")


def test_think_tags_leave_plain_reply_as_content() -> None:
    total = _feed(ThinkTagReply(), ["<", "b>bold</b> text"])
    assert (total.thinking, total.content) == ("", "<b>bold</b> text")


def test_think_tags_keep_unclosed_thinking() -> None:
    total = _feed(ThinkTagReply(), ["<think>still going</th"])
    assert (total.thinking, total.content) == ("still going</th", "")


def test_json_tool_reply_parses_held_back_call() -> None:
    pieces = ['{"name": "get_weather", ', '"arguments": {"city": "Tokyo"}}']
    total = _feed(JsonToolReply({"get_weather"}), pieces)
    assert total.content == ""
    assert len(total.tool_calls) == 1
    call = total.tool_calls[0]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}
    assert call["id"].startswith("call_") and len(call["id"]) == 13


def test_json_tool_reply_streams_ordinary_text_at_once() -> None:
    parser = JsonToolReply({"f"})
    assert parser.feed("Hello").content == "Hello"
    assert parser.feed(" there").content == " there"
    assert parser.finish().tool_calls == []


def test_json_tool_reply_returns_json_that_is_not_a_call_as_content() -> None:
    total = _feed(JsonToolReply({"f"}), ['{"answer": 42}'])
    assert (total.content, total.tool_calls) == ('{"answer": 42}', [])


def test_parse_json_tool_calls_handles_lists_wrappers_and_unknown_names() -> None:
    text = '<tool_call>[{"function": {"name": "a", "arguments": "{\\"x\\": 1}"}}, {"name": "zzz", "arguments": {}}]'
    calls, rest = parse_json_tool_calls(text + "</tool_call>", {"a"})
    assert [c["function"]["name"] for c in calls] == ["a"]
    assert calls[0]["function"]["arguments"] == {"x": 1}
    assert rest == ""


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
    stream = NDJSONStream({"i": -1}, _events(fail_at=1), [])
    lines = [json.loads(line) for line in b"".join(stream).splitlines()]
    assert lines == [{"i": -1}, {"i": 0}, {"error": "the input length exceeds the context length"}]


def test_ndjson_close_closes_events_and_runs_callbacks_once() -> None:
    log: list[str] = []
    events = _events(log=log)
    first = next(events)
    stream = NDJSONStream(first, events, [lambda: log.append("released")])
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


def test_think_tags_use_the_template_tags() -> None:
    parser = ThinkTagReply(opening="<|begin_thought|>", closing="<|end_thought|>")
    total = _feed(parser, ["<|begin_", "thought|>hmm<|end_thou", "ght|>ok"])
    assert (total.thinking, total.content) == ("hmm", "ok")
