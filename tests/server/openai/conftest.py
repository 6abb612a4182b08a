"""Fixtures for the OpenAI layer, metrics, API keys and request-log tests.

One waitress server per session on a loopback port, over a private store holding SmolLM2 (from
the session's smollm2 import, hard-linked), `all-minilm` (converted from its package) and
`smollm2-tools`: SmolLM2's weights with Ollama's qwen2.5 tools template, created through
/api/create as a user would. Tests that count things get a fresh server of their own over the
same store (its own scheduler, registry and prompt cache).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.store.bundled import BUNDLED_MODELS, import_bundled_models
from pyollama.store.store import Store
from tests.server.conftest import LiveServer, start_server, stop_server
from tests.server.features.conftest import QWEN_TOOLS_TEMPLATE, WEATHER_TOOL, create, upload
from tests.server.features.media_helpers import write_gemma3_projector, write_tiny_llama

CHAT_MODEL = "smollm2:135m"
TOOLS_MODEL = "smollm2-tools"
EMBED_MODEL = "all-minilm"
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 1}

__all__ = ["CHAT_MODEL", "EMBED_MODEL", "GREEDY", "TOOLS_MODEL", "WEATHER_TOOL", "delta", "primed_conversation",
           "scrape", "value"]


def primed_conversation(city: str) -> list[dict[str, Any]]:
    """Two earlier weather questions answered with calls, then the real one: what a 135M model
    needs to answer with a call at temperature 0 (OpenAI message shape)."""

    def call(n: int, name: str) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_{n}", "type": "function",
                 "function": {"name": "get_weather", "arguments": f'{{"city": "{name}"}}'}}
            ],
        }

    return [
        {"role": "system", "content": "You are a function calling assistant. Answer every question with a tool call."},
        {"role": "user", "content": "Weather in Paris?"},
        call(1, "Paris"),
        {"role": "user", "content": "Weather in Rome?"},
        call(2, "Rome"),
        {"role": "user", "content": f"Weather in {city}?"},
    ]


def server_config(models: Path, **changes: Any) -> Config:
    base = replace(
        Config.from_env({"HOME": str(models.parent)}),
        models=models,
        num_parallel=2,
        context_length=2048,
        num_threads=2,
    )
    return replace(base, **changes)


@pytest.fixture(scope="session")
def openai_models(smollm2_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("openai") / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    minilm = tuple(m for m in BUNDLED_MODELS if m.name == EMBED_MODEL)
    assert import_bundled_models(Store(models), minilm) == ["all-minilm:latest"]
    return models


def _create_tools_model(server: LiveServer) -> None:
    body = {
        "model": TOOLS_MODEL,
        "from": CHAT_MODEL,
        "template": QWEN_TOOLS_TEMPLATE,
        "parameters": {"stop": ["<|im_end|>", "<|im_start|>"]},
        "stream": False,
    }
    response = requests.post(f"{server.url}/api/create", json=body, timeout=120)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def openai_server(openai_models: Path) -> Iterator[LiveServer]:
    app = create_app(server_config(openai_models))
    server, running = start_server(app)
    try:
        _create_tools_model(server)
        yield server
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()


@pytest.fixture(scope="session")
def vision_model(openai_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama with a tiny gemma3 projector (the features tests' vision model)."""
    root = tmp_path_factory.mktemp("vision")
    files = {"tiny.gguf": upload(openai_server, write_tiny_llama(root / "tiny.gguf")),
             "mmproj.gguf": upload(openai_server, write_gemma3_projector(root / "mmproj.gguf"))}
    create(openai_server, {"model": "tiny-vision", "files": files})
    return "tiny-vision"


@pytest.fixture(scope="session")
def oai(openai_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{openai_server.url}/v1", api_key="unused", max_retries=0, timeout=300)


LiveFactory = Callable[..., LiveServer]

# -- scraping /metrics ------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer) -> Samples:
    """Every sample of the server's /metrics, parsed by prometheus_client's own parser."""
    response = requests.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def make_server(openai_server: LiveServer, openai_models: Path) -> Iterator[LiveFactory]:
    """Fresh servers over the shared store (created after the tools model exists), each with
    `Config` changes of the test's choosing; all stopped at the end of the test."""
    started: list[tuple[Any, Any]] = []

    def make(**changes: Any) -> LiveServer:
        app = create_app(server_config(openai_models, **changes))
        server, running = start_server(app)
        started.append((app, running))
        return server

    try:
        yield make
    finally:
        for app, running in started:
            stop_server(running)
            app.extensions["pyollama"].close()
