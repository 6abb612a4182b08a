"""Thinking around the prompt (server/thinking.py): earlier turns' thinking dropped from the
history as Ollama's filterThinkTags does, and the level a Jinja template gets."""

from __future__ import annotations

from typing import Any

import pytest

from pyollama.server.thinking import DEFAULT_TAGS, drop_earlier_thinking
from pyollama.templates.values import think_level


def _contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages]


def test_assistant_turns_before_the_last_user_message_lose_their_thinking() -> None:
    messages = [
        {"role": "system", "content": "<think>a system message is left alone</think>S"},
        {"role": "user", "content": "<think>so is a user message</think>U1"},
        {"role": "assistant", "content": "  <think>\nold\n</think>\n\nA1", "thinking": "field kept"},
        {"role": "assistant", "content": "<think>never closed"},
        {"role": "assistant", "content": "an answer that mentions <think> later"},
        {"role": "user", "content": "U2"},
        {"role": "assistant", "content": "<think>prefill</think>P"},
    ]
    out = drop_earlier_thinking(messages, DEFAULT_TAGS)
    assert _contents(out) == [
        "<think>a system message is left alone</think>S",
        "<think>so is a user message</think>U1",
        "A1",
        "",
        "an answer that mentions <think> later",
        "U2",
        "<think>prefill</think>P",
    ]
    assert out[2]["thinking"] == "field kept"
    assert messages[2]["content"].endswith("A1") and messages[2]["content"] != "A1"  # the request is not changed


def test_the_models_own_tags_are_used() -> None:
    messages = [
        {"role": "assistant", "content": "<|begin_thought|>x<|end_thought|>A"},
        {"role": "user", "content": "U"},
    ]
    assert _contents(drop_earlier_thinking(messages, ("<|begin_thought|>", "<|end_thought|>"))) == ["A", "U"]
    assert _contents(drop_earlier_thinking(messages, DEFAULT_TAGS))[0].startswith("<|begin_thought|>")


def test_without_a_user_message_nothing_is_dropped() -> None:
    messages = [{"role": "assistant", "content": "<think>x</think>A"}]
    assert drop_earlier_thinking(messages, DEFAULT_TAGS) == messages


@pytest.mark.parametrize(
    ("think", "level"),
    [("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "high"), (True, None), (False, None),
     (None, None)],
)
def test_the_level_a_jinja_template_gets(think: bool | str | None, level: str | None) -> None:
    assert think_level(think) == level
