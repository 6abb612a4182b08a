"""LangChain's `ChatOllama` (over /api/chat) and `ChatOpenAI` (over /v1/chat/completions) each run
a chat and a tool-calling round against the real server. The tool round shows the model two
earlier calls (what a 135M model needs at temperature 0); once it opens a call, the tool-call
grammar holds it to the tool's schema, so the call parses."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from tests.server.conftest import LiveServer
from tests.server.openai.conftest import CHAT_MODEL, TOOLS_MODEL, delta, scrape

ROUTES = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city"""
    return f"sunny in {city}"


def _model(kind: str, server: LiveServer, model: str) -> BaseChatModel:
    if kind == "ollama":
        return ChatOllama(base_url=server.url, model=model, temperature=0, seed=1, num_predict=60)
    return ChatOpenAI(base_url=f"{server.url}/v1", api_key="unused", model=model,  # type: ignore[arg-type]
                      temperature=0, seed=1, max_tokens=60, max_retries=0, timeout=300)


def _primed(city: str) -> list[BaseMessage]:
    def call(n: int, name: str) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": name}, "id": f"call_{n}"}])

    return [
        SystemMessage("You are a function calling assistant. Answer every question with a tool call."),
        HumanMessage("Weather in Paris?"),
        call(1, "Paris"),
        HumanMessage("Weather in Rome?"),
        call(2, "Rome"),
        HumanMessage(f"Weather in {city}?"),
    ]


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_langchain_chat_round(kind: str, openai_server: LiveServer) -> None:
    before = scrape(openai_server)
    reply = _model(kind, openai_server, CHAT_MODEL).invoke([HumanMessage("Name three colors.")])
    after = scrape(openai_server)
    assert delta(before, after, "pyollama_requests_total", endpoint=ROUTES[kind], method="POST", status="200") == 1
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str) and reply.content.strip()
    usage: Any = reply.usage_metadata
    assert usage is not None and usage["output_tokens"] > 0


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_langchain_tool_calling_round(kind: str, openai_server: LiveServer) -> None:
    model = _model(kind, openai_server, TOOLS_MODEL).bind_tools([get_weather])
    reply = model.invoke(_primed("Tokyo"))
    assert isinstance(reply, AIMessage)
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Tokyo"})
    assert call["id"]
    # the round closes: the tool's answer goes back and the model replies
    result = get_weather.invoke(call)
    follow_up = model.invoke([*_primed("Tokyo"), reply, result])
    assert isinstance(follow_up, AIMessage)
    assert follow_up.content or follow_up.tool_calls
