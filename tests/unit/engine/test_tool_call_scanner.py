"""ToolCallScanner on strings: where calls are found, what stays content, and what streams when."""

from __future__ import annotations

from typing import Any

import pytest

from pyollama.engine.chat_format import ToolCallScanner

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME: dict[str, Any] = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
TAGS = {"opening": "<tool_call>", "closing": "</tool_call>"}
PARIS = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def _scan(pieces: list[str], tools: list[dict[str, Any]] | None = None, **syntax: Any) -> list[tuple[str, list[Any]]]:
    """What each piece releases (content, [(index, name, arguments)]), the finish last."""
    scanner = ToolCallScanner([WEATHER, TIME] if tools is None else tools, **syntax)
    steps = [scanner.feed(piece) for piece in pieces] + [scanner.finish()]
    return [(content, [(c["function"]["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls])
            for content, calls in steps]


def _whole(pieces: list[str], tools: list[dict[str, Any]] | None = None, **syntax: Any) -> tuple[str, list[Any]]:
    steps = _scan(pieces, tools, **syntax)
    return "".join(c for c, _ in steps), [call for _, calls in steps for call in calls]


def test_prose_streams_at_once_and_the_call_when_its_json_closes() -> None:
    steps = _scan(["Let me check.", "\n<tool_", "call>\n", '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}',
                   "\n</tool_call>"], **TAGS)
    assert steps == [("Let me check.", []), ("", []), ("", []), ("", []),
                     ("", [(0, "get_weather", {"city": "Paris"})]), ("", []), ("", [])]


def test_calls_after_one_tag_and_after_several_are_indexed_in_order() -> None:
    one_tag = _whole([f"<tool_call>\n{PARIS}\n" + PARIS.replace("Paris", "Rome") + "\n</tool_call>"], **TAGS)
    two_tags = _whole([f"<tool_call>{PARIS}</tool_call>\n<tool_call>{PARIS.replace('Paris', 'Rome')}</tool_call>"],
                      **TAGS)
    expected = ("", [(0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Rome"})])
    assert one_tag == two_tags == expected


def test_mistral_style_tag_with_an_array_of_calls() -> None:
    text = f'[TOOL_CALLS] [{PARIS}, {{"name": "get_time", "arguments": {{}}}}]'
    assert _whole([text], opening="[TOOL_CALLS] [", closing="]</s>") == (
        "", [(0, "get_weather", {"city": "Paris"}), (1, "get_time", {})])


@pytest.mark.parametrize("fence", ["```json\n", "```\n", "```JSON \n"])
def test_call_in_a_code_fence_drops_the_fence(fence: str) -> None:
    assert _whole(["Here:\n", fence, PARIS, "\n```", "\nDone."], **TAGS) == (
        "Here:\nDone.", [(0, "get_weather", {"city": "Paris"})])


def test_fence_of_another_language_is_content() -> None:
    text = f"```python\nx = {PARIS}\n```"
    content, calls = _whole([text], **TAGS)
    assert content.startswith("```python\nx =") and content.endswith("```")
    assert calls == [(0, "get_weather", {"city": "Paris"})]  # the JSON itself is still a call


def test_bare_call_in_prose_with_parameters_key_or_function_wrapper() -> None:
    wrapped = '{"type": "function", "function": {"name": "get_weather", "parameters": {"city": "Oslo"}}}'
    assert _whole([f"Sure {wrapped} then"]) == ("Sure then", [(0, "get_weather", {"city": "Oslo"})])


def test_tag_accepts_any_arguments_object_bare_json_must_fit() -> None:
    loose = '{"name": "get_weather", "arguments": {"town": "Paris"}}'
    assert _whole([f"<tool_call>{loose}</tool_call>"], **TAGS) == ("", [(0, "get_weather", {"town": "Paris"})])
    assert _whole([loose], **TAGS) == (loose, [])
    missing = '{"name": "get_weather", "arguments": {}}'
    assert _whole([missing], **TAGS) == (missing, [])
    # a template that writes calls as bare JSON takes them as its own syntax (Ollama's `{` tag)
    assert _whole([loose], json_is_native=True) == ("", [(0, "get_weather", {"town": "Paris"})])


def test_tag_form_keyed_by_tool_name() -> None:
    assert _whole(['<tool_call>{"get_weather": {"city": "Rome"}}</tool_call>'], **TAGS) == (
        "", [(0, "get_weather", {"city": "Rome"})])


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": Paris}}\n</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": "}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": [1, 2]}</tool_call>',
        "{ \"name\": \"get_weather\", \"arguments\": {'city': 'Paris'} }",
        '```json\n{"name": "get_weather", "arguments": "city=Paris"}\n```',
    ],
)
def test_arguments_that_are_not_a_json_object_are_no_call_and_the_text_stays(text: str) -> None:
    assert _whole([text], **TAGS) == (text, [])
    assert _whole(list(text), **TAGS) == (text, [])  # the same, a character at a time


def test_names_not_offered_and_no_tools_are_never_calls() -> None:
    assert _whole([PARIS], tools=[TIME]) == (PARIS, [])
    assert _whole([f"<tool_call>{PARIS}</tool_call>"], tools=[], **TAGS) == (f"<tool_call>{PARIS}</tool_call>", [])


@pytest.mark.parametrize(
    "text",
    ["<b>bold</b> [1] {x} `code` ``` and [link](u)", "{} [] {\"a\": 1} [{\"b\": 2}]", "emoji 😀 { \n", "``", "<tool"],
)
def test_text_that_only_looks_like_a_call_is_content_unchanged(text: str) -> None:
    assert _whole([text], **TAGS) == (text, [])
    assert _whole(list(text), **TAGS) == (text, [])


def test_only_what_may_open_a_call_is_held_back() -> None:
    steps = _scan(["Hello ", "world {", '"a"', ": 1} and <", "b>"], **TAGS)
    assert [c for c, _ in steps] == ["Hello", " world", "", ' {"a": 1} and', " <b>", ""]


def test_partial_closing_tag_cut_by_the_end_of_the_reply_is_dropped() -> None:
    assert _whole([f"<tool_call>{PARIS}</tool_"], **TAGS) == ("", [(0, "get_weather", {"city": "Paris"})])


def test_number_continues_the_index_for_calls_found_elsewhere() -> None:
    scanner = ToolCallScanner([WEATHER])
    _, calls = scanner.feed(PARIS)
    (other,) = scanner.number([{"id": "call_x", "function": {"index": 0, "name": "get_weather", "arguments": {}}}])
    assert [calls[0]["function"]["index"], other["function"]["index"]] == [0, 1]
    assert other["id"] == "call_x"
