"""`POST /v1/responses` (OpenAI's Responses API) with the official `openai` client, streamed and
not: text, instructions, function tools and their results in both directions, usage, the cut-off
reply, images, and errors in OpenAI's shape. The scripted model (conftest.py) makes the replies
exact; SmolLM2 shows the request runs as the same chat through /api/chat."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
import requests

from pyollama.server.openai_responses_bodies import parse_responses
from pyollama.server.openai_responses_shapes import ResponsesEvents
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
    {"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": WEATHER_PARAMETERS},
    {"type": "function", "name": "get_time", "description": "The time now", "parameters": TIME_PARAMETERS},
]


def _events(oai: openai.OpenAI, **request: Any) -> list[Any]:
    events = list(oai.responses.create(stream=True, **request))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


def _types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_text_reply_not_streamed_is_a_completed_response(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model=SCRIPTED, input=ask("hello"))
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == SCRIPTED
    assert response.output_text == script_text("hello")
    assert [item.type for item in response.output] == ["message"]
    message = response.output[0]
    assert message.role == "assistant" and message.status == "completed"  # type: ignore[union-attr]
    assert response.usage is not None
    assert response.usage.output_tokens == n_tokens("hello")
    assert response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_text_reply_streamed_is_the_event_sequence_the_sdk_expects(oai: openai.OpenAI) -> None:
    events = _events(oai, model=SCRIPTED, input=ask("hello"))
    types = _types(events)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert types == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    assert "".join(deltas) == script_text("hello")
    assert len(deltas) == n_tokens("hello")
    assert events[0].response.status == "in_progress"
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == script_text("hello")
    assert completed.usage.output_tokens == n_tokens("hello")
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {completed.output[0].id}


def test_stream_helper_accumulates_the_final_response(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=SCRIPTED, input=ask("hello")) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == script_text("hello")


@pytest.mark.parametrize("stream", [False, True])
def test_instructions_are_the_system_prompt(oai: openai.OpenAI, stream: bool) -> None:
    request = {"model": SCRIPTED, "instructions": trigger("system"), "input": "Hi."}
    if stream:
        response = _events(oai, **request)[-1].response
    else:
        response = oai.responses.create(**request)
    assert response.output_text == script_text("system")
    assert response.instructions == trigger("system")


def _calls(response: Any) -> list[tuple[str, dict[str, Any]]]:
    calls = [item for item in response.output if item.type == "function_call"]
    for call in calls:
        assert call.call_id.startswith("call_") and call.status == "completed"
    return [(call.name, json.loads(call.arguments)) for call in calls]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_is_a_function_call_item(oai: openai.OpenAI, stream: bool) -> None:
    request = {"model": SCRIPTED, "input": ask("call"), "tools": TOOLS}
    response = _events(oai, **request)[-1].response if stream else oai.responses.create(**request)
    assert [item.type for item in response.output] == ["function_call"]
    assert _calls(response) == [("get_weather", {"city": "Paris"})]
    assert response.usage.output_tokens == n_tokens("call")


def test_a_streamed_tool_call_has_its_argument_events(oai: openai.OpenAI) -> None:
    events = _events(oai, model=SCRIPTED, input=ask("two_calls"), tools=TOOLS)
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [(item.type, item.name, item.status, item.arguments) for item in added] == [
        ("function_call", "get_weather", "in_progress", ""), ("function_call", "get_time", "in_progress", "")]
    done = {e.item_id: e.arguments for e in events if e.type == "response.function_call_arguments.done"}
    deltas = {e.item_id: e.delta for e in events if e.type == "response.function_call_arguments.delta"}
    assert {json.dumps(json.loads(v)) for v in done.values()} == {'{"city": "Rome"}', "{}"}
    assert all(deltas[item_id] == done[item_id] for item_id in deltas)
    assert [e.output_index for e in events if e.type == "response.output_item.done"] == [0, 1]
    assert _calls(events[-1].response) == [("get_weather", {"city": "Rome"}), ("get_time", {})]


@pytest.mark.parametrize("stream", [False, True])
def test_text_before_a_call_is_a_message_item_then_the_call(oai: openai.OpenAI, stream: bool) -> None:
    request = {"model": SCRIPTED, "input": ask("prose_then_call"), "tools": TOOLS}
    response = _events(oai, **request)[-1].response if stream else oai.responses.create(**request)
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "Let me check that."
    assert _calls(response) == [("get_weather", {"city": "Oslo"})]


def test_stream_helper_returns_the_function_call(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=SCRIPTED, input=ask("prose_then_call"), tools=TOOLS) as stream:  # type: ignore[arg-type]
        final = stream.get_final_response()
    assert final.output_text == "Let me check that."
    assert _calls(final) == [("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize("output", [trigger("after_tool"), [{"type": "input_text", "text": trigger("after_tool")}]])
@pytest.mark.parametrize("stream", [False, True])
def test_function_call_output_reaches_the_model(oai: openai.OpenAI, stream: bool, output: Any) -> None:
    """The conversation goes on from the client's function call and its output: the output is
    what the model reads last, so its trigger picks the reply."""
    conversation = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_abc", "output": output},
    ]
    request = {"model": SCRIPTED, "input": conversation, "tools": TOOLS}
    response = _events(oai, **request)[-1].response if stream else oai.responses.create(**request)
    assert response.output_text == script_text("after_tool")


def test_a_reply_cut_by_max_output_tokens_is_incomplete(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model=SCRIPTED, input=ask("long"), max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two three"
    assert response.usage is not None and response.usage.output_tokens == 3
    assert response.max_output_tokens == 3

    events = _events(oai, model=SCRIPTED, input=ask("long"), max_output_tokens=3)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output_text == "one two three"


def test_the_same_request_runs_as_the_same_chat(oai: openai.OpenAI, compat_server: LiveServer) -> None:
    """SmolLM2 at temperature 0: /v1/responses replies with /api/chat's reply to the same
    conversation, and renders the same prompt: the chat that follows finds all of it but the last
    token in the prompt cache."""
    response = oai.responses.create(model=CHAT_MODEL, instructions="You are a helpful assistant.",
                                    input="Name one colour of the rainbow.", temperature=0, max_output_tokens=24)
    chat = requests.post(f"{compat_server.url}/api/chat", timeout=300, json={
        "model": CHAT_MODEL, "stream": False, "options": {"temperature": 0, "num_predict": 24},
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Name one colour of the rainbow."}],
    }).json()
    assert response.output_text == chat["message"]["content"] != ""
    assert response.usage is not None
    assert response.usage.input_tokens > 10
    assert chat["prompt_eval_count"] == 1
    assert response.usage.output_tokens == chat["eval_count"]


@pytest.mark.parametrize("stream", [False, True])
def test_an_image_for_a_text_model_gets_the_engines_refusal(oai: openai.OpenAI, stream: bool) -> None:
    """SmolLM2 has no projector, so the engine's own refusal proves the image got through."""
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [{"type": "input_text", "text": "What is this?"},
               {"type": "input_image", "detail": "auto", "image_url": f"data:image/png;base64,{png}"}]
    assert base64.b64decode(png)
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=CHAT_MODEL, input=[{"role": "user", "content": content}], stream=stream)  # type: ignore[misc]
    assert caught.value.body == {
        "message": "Multimodal data provided, but model does not support multimodal requests.",
        "type": "invalid_request_error", "param": None, "code": None,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_model_is_a_404_in_openais_shape(oai: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.responses.create(model="no-such-model", input="Hi", stream=stream)
    assert caught.value.body == {"message": "model 'no-such-model' not found", "type": "not_found_error",
                                 "param": None, "code": None}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"input": 3}, 400,
         "input must be a string or array: json: cannot unmarshal number into Go value of type []json.RawMessage"),
        ({"input": [{"content": "no role or type"}]}, 400, "input[0]: input item missing required 'type' field"),
        ({"input": [{"type": "computer_call"}]}, 400, 'input[0]: unknown input item type: "computer_call"'),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400,
         "file inputs are not currently supported"),
        ({"input": "Hi", "reasoning": {"effort": "huge"}}, 400,
         'invalid reasoning value: "huge" (must be "high", "medium", "low", "max", or "none")'),
        ({"input": "Hi", "tools": [{"type": "web_search"}]}, 400,
         'tool type "web_search" is not supported; only function tools are'),
        ({"input": "Hi", "max_output_tokens": "3"}, 400,
         "json: cannot unmarshal string into Go struct field ResponsesRequest.max_output_tokens of type int"),
        ({"input": "Hi", "previous_response_id": "resp_1"}, 404,
         "previous_response_id was not found or has expired; resend the full conversation"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]}, 400,
         "failed to parse function call arguments: invalid character 'o' looking for beginning of object key string"),
    ],
)
def test_bad_requests_answer_in_openais_error_shape(compat_server: LiveServer, body: dict[str, Any], status: int,
                                                     message: str) -> None:
    response = requests.post(f"{compat_server.url}/v1/responses", json={"model": SCRIPTED, **body}, timeout=60)
    assert response.status_code == status
    assert response.json()["error"]["message"] == message
    assert response.json()["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_an_error_after_the_stream_started_is_an_error_event() -> None:
    """A failure mid-stream (the HTTP status is already 200) ends the stream with the Responses
    API's `error` event, numbered after the events before it."""
    call = parse_responses({"model": SCRIPTED, "input": "Hi", "stream": True})
    wire = ResponsesEvents(call, "resp_1", 0).wire()
    started = b"".join(wire.frames({"model": SCRIPTED, "message": {"role": "assistant", "content": "Hi"},
                                    "done": False}))
    assert started.count(b"event: ") == 5  # created, in_progress, item added, part added, one delta
    assert wire.error(500, "the runner died") == (
        b'event: error\ndata: {"type":"error","code":"api_error","message":"the runner died","param":null,'
        b'"sequence_number":5}\n\n')
