"""Reply assembly: thinking tags and JSON tool calls (the parts that need no model)."""

from __future__ import annotations

import pytest

from pyollama.server.replies import Delta, JsonToolReply, ThinkTagReply, parse_json_tool_calls


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


def test_think_tags_use_the_template_tags() -> None:
    parser = ThinkTagReply(opening="<|begin_thought|>", closing="<|end_thought|>")
    total = _feed(parser, ["<|begin_", "thought|>hmm<|end_thou", "ght|>ok"])
    assert (total.thinking, total.content) == ("hmm", "ok")
