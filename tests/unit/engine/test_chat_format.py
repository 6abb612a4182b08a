from __future__ import annotations

import pytest

from pyollama.engine.chat_format import (
    arguments_from_model,
    arguments_from_text,
    arguments_to_text,
    to_openai_messages,
    tool_call_to_openai,
    tool_calls_from_model,
    tool_calls_from_openai,
)
from pyollama.errors import BadRequestError


@pytest.mark.parametrize("text", ["{oops", "", "[1]", "3"])
def test_arguments_from_text_refuses_what_is_not_an_object(text: str) -> None:
    with pytest.raises(BadRequestError, match="invalid tool call arguments"):
        arguments_from_text(text)


def test_arguments_from_text_reads_objects_and_null() -> None:
    assert arguments_from_text('{"a": 1}') == {"a": 1}
    assert arguments_from_text("null") == {}


@pytest.mark.parametrize(("value", "arguments"), [
    ({"a": 1}, {"a": 1}), (None, {}), ("  ", {}), ('{"a": 1}', {"a": 1}),
    ("{oops", None), ("[1]", None), ([1, 2], None), (3, None),
])
def test_arguments_from_model_refuses_what_is_not_an_object(value: object, arguments: dict[str, object] | None) -> None:
    assert arguments_from_model(value) == arguments


def test_arguments_to_text_is_compact_and_unescaped() -> None:
    assert arguments_to_text({"city": "Zürich", "n": 1}) == '{"city":"Zürich","n":1}'
    assert arguments_to_text(None) == "{}"


def test_tool_calls_round_trip_between_ollama_and_openai() -> None:
    ollama = tool_calls_from_openai([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}])
    assert ollama == [{"id": "c1", "function": {"name": "f", "arguments": {"x": 1}}}]
    assert tool_call_to_openai(ollama[0], 0) == {
        "id": "c1", "index": 0, "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}


def test_tool_calls_from_model_index_and_generate_ids() -> None:
    calls = tool_calls_from_model([{"name": "a", "parameters": {"x": 1}}, {"nope": 1}, {"function": {"name": "b"}},
                                   {"name": "c", "arguments": "{oops"}])
    assert [(c["function"]["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "a", {"x": 1}), (1, "b", {})]
    assert all(c["id"].startswith("call_") and len(c["id"]) == 13 for c in calls)


def test_to_openai_messages_gives_calls_ids_and_text_arguments() -> None:
    (message,) = to_openai_messages([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}])
    assert message["tool_calls"][0]["id"] == "call_0"
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
