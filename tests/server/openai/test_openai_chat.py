"""`/v1/chat/completions` and `/v1/completions` through the official `openai` client, on the
real server: the same engine as /api/chat and /api/generate (same text, same token counts at
temperature 0), OpenAI's shapes, SSE framing, usage, tool calls and JSON schema output."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
import requests
from pydantic import BaseModel

from tests.server.conftest import LiveServer
from tests.server.features.media_helpers import IMAGE_TOKENS, png
from tests.server.openai.conftest import CHAT_MODEL, GREEDY, TOOLS_MODEL, WEATHER_TOOL, primed_conversation

HELLO = [{"role": "user", "content": "Name three colors."}]


def _ollama_chat(server: LiveServer, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    body = {"model": CHAT_MODEL, "messages": messages, "stream": False,
            "options": {"temperature": 0, "top_p": 1.0, "seed": 1, **options}}
    response = requests.post(f"{server.url}/api/chat", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _sse_frames(response: requests.Response) -> list[str]:
    """The raw `data:` payloads of an SSE body, checking the framing on the way."""
    text = response.content.decode("utf-8")
    assert text.endswith("\n\n")
    frames = text[:-2].split("\n\n")
    assert all(frame.startswith("data: ") for frame in frames)
    return [frame[len("data: ") :] for frame in frames]


def test_chat_completion_matches_ollama_chat_reply(oai: openai.OpenAI, openai_server: LiveServer) -> None:
    reply = oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=24, **GREEDY)  # type: ignore[arg-type]
    native = _ollama_chat(openai_server, HELLO, num_predict=24)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-") and 0 <= int(reply.id.split("-")[1]) <= 998
    assert reply.system_fingerprint == "fp_ollama"
    assert reply.model == CHAT_MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == native["message"]["content"] != ""
    assert choice.finish_reason == {"stop": "stop", "length": "length"}[native["done_reason"]]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == native["eval_count"]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_completion_stops_at_max_tokens_with_finish_reason_length(oai: openai.OpenAI) -> None:
    for limit in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        reply = oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, **GREEDY, **limit)  # type: ignore[arg-type]
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_chat_completion_honours_stop_strings(oai: openai.OpenAI) -> None:
    full = oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=24, **GREEDY)  # type: ignore[arg-type]
    text = full.choices[0].message.content or ""
    word = text.split()[1]
    for stop in (word, [word, "zzz"]):
        cut = oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=24, stop=stop, **GREEDY)  # type: ignore[arg-type]
        assert cut.choices[0].message.content == text[: text.index(word)]
        assert cut.choices[0].finish_reason == "stop"


def test_streaming_chat_with_usage_matches_the_whole_reply(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model=CHAT_MODEL, messages=HELLO, max_tokens=24, **GREEDY)  # type: ignore[arg-type]
    chunks = list(
        oai.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_tokens=24, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, **GREEDY,
        )
    )
    content_chunks, finish, usage = chunks[:-2], chunks[-2], chunks[-1]
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == whole.choices[0].message.content
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in content_chunks[1:])
    assert all(c.choices[0].finish_reason is None for c in content_chunks)
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason
    assert finish.choices[0].delta.content is None and finish.choices[0].delta.role is None
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.system_fingerprint == "fp_ollama" for c in chunks)


def test_streaming_chat_sse_framing_ends_with_done(openai_server: LiveServer) -> None:
    body = {"model": CHAT_MODEL, "messages": HELLO, "stream": True, "max_tokens": 4, "temperature": 0}
    response = requests.post(f"{openai_server.url}/v1/chat/completions", json=body, timeout=300)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    frames = _sse_frames(response)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert "usage" not in chunks[-1]  # no usage chunk unless stream_options asks for it
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_completion_matches_ollama_generate(oai: openai.OpenAI, openai_server: LiveServer) -> None:
    reply = oai.completions.create(model=CHAT_MODEL, prompt="The capital of France is", max_tokens=6, **GREEDY)
    body = {"model": CHAT_MODEL, "prompt": "The capital of France is", "stream": False,
            "options": {"temperature": 0, "top_p": 1.0, "seed": 1, "num_predict": 6,
                        "frequency_penalty": 0, "presence_penalty": 0}}
    native = requests.post(f"{openai_server.url}/api/generate", json=body, timeout=300).json()
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == native["response"]
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_streaming_completion_with_usage_carries_zero_usage_then_the_real_one(oai: openai.OpenAI) -> None:
    whole = oai.completions.create(model=CHAT_MODEL, prompt="One, two,", max_tokens=5, **GREEDY)
    chunks = list(oai.completions.create(model=CHAT_MODEL, prompt="One, two,", max_tokens=5, stream=True,
                                         stream_options={"include_usage": True}, **GREEDY))
    *text_chunks, usage = chunks
    assert "".join(c.choices[0].text for c in text_chunks) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in text_chunks][-1] == "length"
    assert all(c.choices[0].finish_reason is None for c in text_chunks[:-1])
    assert all(c.usage is not None and c.usage.total_tokens == 0 for c in text_chunks)
    assert usage.choices == [] and usage.usage is not None and usage.usage.completion_tokens == 5


# -- tools ----------------------------------------------------------------------------------------


def _weather_call(message: Any) -> dict[str, Any]:
    assert message.tool_calls and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_")
    return dict(json.loads(call.function.arguments))


def test_tool_call_comes_back_in_openai_shape(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=TOOLS_MODEL, messages=primed_conversation("Tokyo"),  # type: ignore[arg-type]
                                        tools=[WEATHER_TOOL], max_tokens=60, **GREEDY)
    assert _weather_call(reply.choices[0].message) == {"city": "Tokyo"}
    assert reply.choices[0].finish_reason == "tool_calls"
    assert not (reply.choices[0].message.content or "").strip()


def test_streamed_tool_call_comes_back_in_openai_shape(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model=TOOLS_MODEL, messages=primed_conversation("Tokyo"),  # type: ignore[arg-type]
                                              tools=[WEATHER_TOOL], max_tokens=60, stream=True, **GREEDY))
    calls = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == {"city": "Tokyo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_result_message_is_rendered_with_its_tool_name(openai_server: LiveServer) -> None:
    messages = [*primed_conversation("Tokyo"),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_x", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}}]},
                {"role": "tool", "tool_call_id": "call_x", "content": "21 degrees and cloudy"}]
    body = {"model": TOOLS_MODEL, "messages": messages, "tools": [WEATHER_TOOL], "_debug_render_only": True}
    response = requests.post(f"{openai_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    prompt = response.json()["_debug_info"]["rendered_template"]
    assert "<tool_response>\n21 degrees and cloudy\n</tool_response>" in prompt
    assert '{"name": "get_weather", "arguments": {"city":"Tokyo"}}' in prompt


def test_tool_choice_naming_a_function_sends_only_that_tool(openai_server: LiveServer) -> None:
    time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    body = {"model": TOOLS_MODEL, "messages": HELLO, "tools": [time_tool, WEATHER_TOOL], "_debug_render_only": True,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    prompt = requests.post(f"{openai_server.url}/v1/chat/completions", json=body, timeout=60).json()
    rendered = prompt["_debug_info"]["rendered_template"]
    assert "get_weather" in rendered and "get_time" not in rendered


def test_tool_choice_none_sends_no_tools(openai_server: LiveServer) -> None:
    body = {"model": TOOLS_MODEL, "messages": HELLO, "tools": [WEATHER_TOOL], "tool_choice": "none",
            "_debug_render_only": True}
    prompt = requests.post(f"{openai_server.url}/v1/chat/completions", json=body, timeout=60).json()
    assert "get_weather" not in prompt["_debug_info"]["rendered_template"]


# -- structured output ------------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int
    is_capital: bool


def test_json_schema_response_format_reply_parses_and_validates(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Describe Paris as JSON."}]
    reply = oai.chat.completions.parse(model=CHAT_MODEL, messages=messages, response_format=City,  # type: ignore[arg-type]
                                       max_tokens=80, **GREEDY)
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert City.model_validate_json(reply.choices[0].message.content or "") == parsed


def test_json_object_response_format_replies_with_a_json_object(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Reply with a JSON object with keys name and age for Alice, 30."}]
    reply = oai.chat.completions.create(model=CHAT_MODEL, messages=messages, max_tokens=60,  # type: ignore[arg-type]
                                        response_format={"type": "json_object"}, **GREEDY)
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("stream", [False, True])
def test_image_parts_reach_a_vision_model(oai: openai.OpenAI, vision_model: str, stream: bool) -> None:
    question = {"type": "text", "text": "What colour is it?"}
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png(32, 32)).decode()}}
    options: dict[str, Any] = {"max_tokens": 3, "temperature": 0, "stream": stream}
    if stream:
        options["stream_options"] = {"include_usage": True}

    def prompt_tokens(content: list[dict[str, Any]]) -> int:
        reply = oai.chat.completions.create(model=vision_model, messages=[{"role": "user", "content": content}],  # type: ignore[arg-type]
                                            **options)
        usage = list(reply)[-1].usage if stream else reply.usage  # type: ignore[union-attr,arg-type]
        assert usage is not None and usage.completion_tokens >= 1
        return int(usage.prompt_tokens)

    assert prompt_tokens([question, image]) - prompt_tokens([question]) >= IMAGE_TOKENS


@pytest.mark.parametrize("stream", [False, True])
def test_image_part_for_a_text_model_gets_the_engines_refusal(oai: openai.OpenAI, stream: bool) -> None:
    """SmolLM2 has no projector, so the engine's own refusal proves the image got through."""
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": content}],  # type: ignore[arg-type]
                                    stream=stream)
    assert caught.value.body == {
        "message": "Multimodal data provided, but model does not support multimodal requests.",
        "type": "invalid_request_error", "param": None, "code": None,
    }
