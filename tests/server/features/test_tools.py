"""Tool calls round trip through the official `ollama` client, streaming and not, on SmolLM2
with Ollama's qwen2.5 Go template (pyollama's tool-call grammar) and with Qwen2.5's Jinja
template in the GGUF (llama.cpp's chat code). The conversation shows the model two earlier
calls, which is what a 135M model needs to answer with a call at temperature 0; once it opens
`<tool_call>`, the grammar holds the call to the tools' schemas."""

from __future__ import annotations

from typing import Any

import ollama
import pytest

from tests.server.conftest import LiveServer
from tests.server.features.conftest import WEATHER_TOOL, post

GREEDY = {"temperature": 0, "num_predict": 60, "seed": 1}
SYSTEM = {
    "role": "system",
    "content": "You are a function calling assistant. Answer every question with a tool call.",
}

UNIT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


def _call(city: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": city}}}],
    }


def _conversation(city: str) -> list[dict[str, Any]]:
    return [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris?"},
        _call("Paris"),
        {"role": "user", "content": "Weather in Rome?"},
        _call("Rome"),
        {"role": "user", "content": f"Weather in {city}?"},
    ]


def _calls(response: Any, stream: bool) -> tuple[list[Any], str]:
    chunks = list(response) if stream else [response]
    calls = [call for chunk in chunks for call in chunk.message.tool_calls or []]
    return calls, "".join(chunk.message.content or "" for chunk in chunks)


@pytest.fixture(params=["go-template", "gguf-jinja"])
def tools_model(request: pytest.FixtureRequest) -> str:
    name = "qwen_tools_model" if request.param == "go-template" else "jinja_tools_model"
    return str(request.getfixturevalue(name))


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trips_through_ollama_client(
    client: ollama.Client, tools_model: str, stream: bool
) -> None:
    response = client.chat(
        model=tools_model,
        messages=_conversation("Tokyo"),
        tools=[WEATHER_TOOL],
        options=GREEDY,
        stream=stream,
    )
    calls, content = _calls(response, stream)
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Tokyo"}
    assert content.strip() == ""


def test_tool_result_message_feeds_back_into_prompt(
    client: ollama.Client, features_server: LiveServer, tools_model: str
) -> None:
    first = client.chat(
        model=tools_model, messages=_conversation("Tokyo"), tools=[WEATHER_TOOL], options=GREEDY
    )
    assert first.message.tool_calls
    follow_up = [
        *_conversation("Tokyo"),
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "content": "21 degrees and cloudy", "tool_name": "get_weather"},
    ]
    rendered = post(
        features_server,
        "/api/chat",
        {"model": tools_model, "messages": follow_up, "tools": [WEATHER_TOOL], "_debug_render_only": True},
    )
    prompt = rendered.json()["_debug_info"]["rendered_template"]
    assert "<tool_response>\n21 degrees and cloudy\n</tool_response>" in prompt
    assert '"name": "get_weather", "arguments": {"city":' in prompt  # the call it made is in the history
    answer = client.chat(model=tools_model, messages=follow_up, tools=[WEATHER_TOOL], options=GREEDY)
    assert answer.done and (answer.message.content or answer.message.tool_calls)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_grammar_enforces_parameter_schema(
    client: ollama.Client, tools_model: str, stream: bool
) -> None:
    """The examples show calls without `unit`; the schema requires it, from an enum."""
    response = client.chat(
        model=tools_model, messages=_conversation("Oslo"), tools=[UNIT_TOOL], options=GREEDY, stream=stream
    )
    calls, _ = _calls(response, stream)
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert set(calls[0].function.arguments) == {"city", "unit"}
    assert calls[0].function.arguments["unit"] in ("celsius", "fahrenheit")


def test_tools_on_model_without_tool_support_is_400(features_server: LiveServer) -> None:
    response = post(
        features_server,
        "/api/chat",
        {
            "model": "smollm2:135m",
            "stream": False,
            "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 400
    assert response.json() == {"error": "registry.ollama.ai/library/smollm2:135m does not support tools"}


def test_tool_with_unenforceable_parameter_schema_is_400(
    features_server: LiveServer, qwen_tools_model: str
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "string", "pattern": "^(unclosed$"}},
            },
        },
    }
    response = post(
        features_server,
        "/api/chat",
        {
            "model": qwen_tools_model,
            "stream": False,
            "tools": [tool],
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid tool parameters schema")
