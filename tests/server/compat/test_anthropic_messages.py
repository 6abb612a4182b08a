"""`POST /v1/messages` (Anthropic's Messages API) with the official `anthropic` client:
`messages.create` and `messages.stream`, text, system prompts, tool use and tool results in both
directions, usage, stop reasons, thinking relaxed for models that cannot think, images, and errors
in Anthropic's shape. The scripted model (conftest.py) makes the replies exact."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
import requests

from pyollama.server.anthropic_shapes import MessageEvents
from tests.server.compat.conftest import (
    CHAT_MODEL,
    SCRIPTED,
    TIME_PARAMETERS,
    WEATHER_PARAMETERS,
    ask,
    n_tokens,
    script_text,
)
from tests.server.conftest import LiveServer
from tests.server.features.scripted_model import trigger

TOOLS: list[dict[str, Any]] = [
    {"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER_PARAMETERS},
    {"name": "get_time", "description": "The time now", "input_schema": TIME_PARAMETERS},
]


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _create(claude: anthropic.Anthropic, stream: bool, **request: Any) -> Any:
    """The whole message: from messages.create, or accumulated by messages.stream."""
    request = {"model": SCRIPTED, "max_tokens": 200, **request}
    if not stream:
        return claude.messages.create(**request)
    with claude.messages.stream(**request) as events:
        return events.get_final_message()


def _blocks(message: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            out.append(("text", block.text))
        elif block.type == "tool_use":
            assert block.id.startswith("call_")
            out.append(("tool_use", (block.name, block.input)))
        else:
            out.append((block.type, None))
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_text_reply_is_a_message_with_usage(claude: anthropic.Anthropic, stream: bool) -> None:
    message = _create(claude, stream, messages=_user(ask("hello")))
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert message.model == SCRIPTED
    assert _blocks(message) == [("text", script_text("hello"))]
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.output_tokens == n_tokens("hello")
    assert message.usage.input_tokens > 0


def test_stream_is_the_event_sequence_the_sdk_expects(claude: anthropic.Anthropic) -> None:
    events = list(claude.messages.create(model=SCRIPTED, max_tokens=200, messages=_user(ask("hello")),  # type: ignore[arg-type]
                                         stream=True))
    types = [e.type for e in events]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert types == ["message_start", "content_block_start", *["content_block_delta"] * len(deltas),
                     "content_block_stop", "message_delta", "message_stop"]
    assert "".join(deltas) == script_text("hello")
    assert len(deltas) == n_tokens("hello")
    start = events[0].message
    assert start.content == [] and start.stop_reason is None and start.usage.output_tokens == 0
    assert start.usage.input_tokens > 0  # Ollama's estimate; the real count comes in message_delta
    assert events[1].content_block.type == "text" and events[1].content_block.text == ""
    assert {e.index for e in events if hasattr(e, "index")} == {0}
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == n_tokens("hello")


def test_text_stream_helper_yields_the_text(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=SCRIPTED, max_tokens=200, messages=_user(ask("hello"))) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == script_text("hello")  # type: ignore[union-attr]


@pytest.mark.parametrize("system", [trigger("system"), [{"type": "text", "text": trigger("system")}]])
@pytest.mark.parametrize("stream", [False, True])
def test_the_system_prompt_reaches_the_model(claude: anthropic.Anthropic, stream: bool, system: Any) -> None:
    message = _create(claude, stream, system=system, messages=_user("Hi."))
    assert _blocks(message) == [("text", script_text("system"))]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_is_a_tool_use_block(claude: anthropic.Anthropic, stream: bool) -> None:
    message = _create(claude, stream, messages=_user(ask("call")), tools=TOOLS)
    assert _blocks(message) == [("tool_use", ("get_weather", {"city": "Paris"}))]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("stream", [False, True])
def test_text_then_calls_are_blocks_in_order(claude: anthropic.Anthropic, stream: bool) -> None:
    message = _create(claude, stream, messages=_user(ask("prose_then_call")), tools=TOOLS)
    assert _blocks(message) == [("text", "Let me check that."), ("tool_use", ("get_weather", {"city": "Oslo"}))]
    two = _create(claude, stream, messages=_user(ask("two_calls")), tools=TOOLS)
    assert _blocks(two) == [("tool_use", ("get_weather", {"city": "Rome"})), ("tool_use", ("get_time", {}))]
    assert two.stop_reason == "tool_use"


def test_a_streamed_tool_use_sends_its_input_as_json_deltas(claude: anthropic.Anthropic) -> None:
    events = list(claude.messages.create(model=SCRIPTED, max_tokens=200, messages=_user(ask("two_calls")),  # type: ignore[arg-type]
                                         tools=TOOLS, stream=True))  # type: ignore[arg-type]
    starts = [(e.index, e.content_block.name, e.content_block.input) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "get_weather", {}), (1, "get_time", {})]
    partial = [(e.index, e.delta.partial_json) for e in events if e.type == "content_block_delta"]
    assert partial == [(0, '{"city":"Rome"}'), (1, "{}")]
    assert [e.index for e in events if e.type == "content_block_stop"] == [0, 1]


@pytest.mark.parametrize("content", [trigger("after_tool"), [{"type": "text", "text": trigger("after_tool")}]])
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_result_reaches_the_model(claude: anthropic.Anthropic, stream: bool, content: Any) -> None:
    """The conversation goes on from the assistant's tool use and the client's result: the result
    is what the model reads last, so its trigger picks the reply."""
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": content}]},
    ]
    message = _create(claude, stream, messages=messages, tools=TOOLS)
    assert _blocks(message) == [("text", script_text("after_tool"))]
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_cut_by_max_tokens_stops_with_max_tokens(claude: anthropic.Anthropic, stream: bool) -> None:
    message = _create(claude, stream, messages=_user(ask("long")), max_tokens=3)
    assert _blocks(message) == [("text", "one two three")]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


def test_thinking_is_relaxed_for_a_model_that_cannot_think(claude: anthropic.Anthropic,
                                                          compat_server: LiveServer) -> None:
    """Claude clients ask for thinking; /v1/messages ignores it for a model without the
    capability (Ollama's relax_thinking), where /api/chat refuses it."""
    message = _create(claude, False, messages=_user(ask("hello")), thinking={"type": "enabled", "budget_tokens": 1024})
    assert _blocks(message) == [("text", script_text("hello"))]
    refused = requests.post(f"{compat_server.url}/api/chat", timeout=60, json={
        "model": SCRIPTED, "messages": _user(ask("hello")), "think": True, "stream": False})
    assert refused.status_code == 400
    assert refused.json() == {"error": f'"{SCRIPTED}" does not support thinking'}


@pytest.mark.parametrize("stream", [False, True])
def test_an_image_for_a_text_model_gets_the_engines_refusal(claude: anthropic.Anthropic, stream: bool) -> None:
    """SmolLM2 has no projector, so the engine's own refusal proves the image got through."""
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
               {"type": "text", "text": "What is this?"}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        _create(claude, stream, model=CHAT_MODEL, messages=[{"role": "user", "content": content}])
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error",
                             "message": "Multimodal data provided, but model does not support multimodal requests."}
    assert body["request_id"].startswith("req_")


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_model_is_a_404_in_anthropics_shape(claude: anthropic.Anthropic, stream: bool) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        _create(claude, stream, model="no-such-model", messages=_user("Hi"))
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"] == {"type": "not_found_error", "message": "model 'no-such-model' not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "", "max_tokens": 10, "messages": _user("Hi")}, "model is required"),
        ({"model": SCRIPTED, "max_tokens": 0, "messages": _user("Hi")}, "max_tokens is required and must be positive"),
        ({"model": SCRIPTED, "max_tokens": 10, "messages": []}, "messages is required"),
        ({"model": SCRIPTED, "max_tokens": "10", "messages": _user("Hi")},
         "json: cannot unmarshal string into Go struct field MessagesRequest.max_tokens of type int"),
        ({"model": SCRIPTED, "max_tokens": 10, "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "name": "get_weather", "input": {}}]}]},
         "tool_use block missing required 'id' field"),
        ({"model": SCRIPTED, "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]},
         "invalid image source type: url. Only base64 images are supported."),
        ({"model": SCRIPTED, "max_tokens": 10, "messages": _user("Hi"),
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
         'tool type "web_search_20250305" is not supported: pyollama runs no server tools'),
        ({"model": SCRIPTED, "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "data": "x"}}]}]},
         'content block type "document" is not supported'),
    ],
)
def test_bad_requests_answer_in_anthropics_error_shape(compat_server: LiveServer, body: dict[str, Any],
                                                       message: str) -> None:
    response = requests.post(f"{compat_server.url}/v1/messages", json=body, timeout=60)
    assert response.status_code == 400
    answer = response.json()
    assert answer["type"] == "error"
    assert answer["error"] == {"type": "invalid_request_error", "message": message}


def test_a_client_error_raises_the_sdks_bad_request_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=SCRIPTED, max_tokens=0, messages=_user("Hi"))  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert "max_tokens is required and must be positive" in str(caught.value)


def test_an_api_key_in_x_api_key_is_accepted(smollm2_models: Any) -> None:
    """With API keys configured, Anthropic's clients authenticate with `x-api-key`; a wrong key
    is refused in Anthropic's shape."""
    from dataclasses import replace

    from pyollama.server import create_app
    from tests.server.conftest import serving, smollm2_config

    config = replace(smollm2_config(smollm2_models), api_keys=("s3cret",))
    with serving(create_app(config)) as server:
        good = anthropic.Anthropic(base_url=server.url, api_key="s3cret", max_retries=0, timeout=60)
        with pytest.raises(anthropic.NotFoundError):  # past the key check: the model is looked up
            good.messages.create(model="no-such-model", max_tokens=5, messages=_user("Hi"))  # type: ignore[arg-type]
        bad = anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0, timeout=60)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            bad.messages.create(model="no-such-model", max_tokens=5, messages=_user("Hi"))  # type: ignore[arg-type]
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"] == {"type": "authentication_error", "message": "unauthorized"}


def test_an_error_after_the_stream_started_is_an_error_event() -> None:
    """A failure mid-stream (the HTTP status is already 200) ends the stream with Anthropic's
    `error` event, which the SDK raises."""
    events = MessageEvents("msg_1", SCRIPTED, 3)
    wire = events.wire()
    started = b"".join(wire.frames({"model": SCRIPTED, "message": {"role": "assistant", "content": "Hi"},
                                    "done": False}))
    assert started.startswith(b"event: message_start\ndata: ")
    assert wire.error(500, "the runner died") == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"the runner died"}}\n\n')
    assert wire.error(503, "busy").startswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"')
