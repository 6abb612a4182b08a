"""Reply assembly: thinking tags and JSON tool calls (the parts that need no model)."""

from __future__ import annotations

from typing import Any

import pytest

from pyollama.engine.chat_format import ToolCallScanner
from pyollama.server.replies import Delta, ThinkTagReply, ToolCallReply


def _feed(parser: ThinkTagReply | ToolCallReply, pieces: list[str]) -> Delta:
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


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>", "\n", "plan", "</think>", "\n\n", "answer"],  # whitespace in pieces of its own
        ["<think>\nplan</think>", " ", "\n", "answer"],
    ],
)
def test_think_tags_drop_whitespace_after_either_tag(pieces: list[str]) -> None:
    total = _feed(ThinkTagReply(), pieces)
    assert (total.thinking, total.content) == ("plan", "answer")


@pytest.mark.parametrize("pieces", [["plan</think>answer"], ["\n", "pl", "an</th", "ink>", "\nanswer"]])
def test_a_reply_to_an_opened_tag_starts_in_thinking(pieces: list[str]) -> None:
    total = _feed(ThinkTagReply(opened=True), pieces)
    assert (total.thinking, total.content) == ("plan", "answer")


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def _tool_reply(**syntax: Any) -> ToolCallReply:
    return ToolCallReply(ToolCallScanner([WEATHER], **syntax))


def test_tool_call_reply_parses_a_call_split_across_pieces() -> None:
    pieces = ['{"name": "get_weather", ', '"arguments": {"city": "Tokyo"}}']
    total = _feed(_tool_reply(json_is_native=True), pieces)
    assert total.content == ""
    assert len(total.tool_calls) == 1
    call = total.tool_calls[0]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}
    assert call["id"].startswith("call_") and len(call["id"]) == 13


def test_tool_call_reply_streams_ordinary_text_at_once() -> None:
    parser = _tool_reply(opening="<tool_call>")
    assert parser.feed("Hello").content == "Hello"
    assert parser.feed(" there <b>").content == " there <b>"
    assert parser.finish().tool_calls == []


def test_tool_call_reply_returns_json_that_is_not_a_call_as_content() -> None:
    total = _feed(_tool_reply(json_is_native=True), ['{"answer": 42}'])
    assert (total.content, total.tool_calls) == ('{"answer": 42}', [])


def test_think_tags_then_tool_calls_after_the_thinking() -> None:
    parser = ThinkTagReply(_tool_reply(opening="<tool_call>", closing="</tool_call>"))
    pieces = ["<think>", "weather?", "</think>", "Checking.", "<tool_call>", '{"name": "get_weather", "arguments": {}}',
              "</tool_call>"]
    total = _feed(parser, pieces)
    assert (total.thinking, total.content) == ("weather?", "Checking.")
    assert [c["function"]["name"] for c in total.tool_calls] == ["get_weather"]


def test_think_tags_use_the_template_tags() -> None:
    parser = ThinkTagReply(opening="<|begin_thought|>", closing="<|end_thought|>")
    total = _feed(parser, ["<|begin_", "thought|>hmm<|end_thou", "ght|>ok"])
    assert (total.thinking, total.content) == ("hmm", "ok")
