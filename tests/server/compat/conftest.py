"""Fixtures for the newer API surfaces, OpenAI's Responses API (`/v1/responses`) and Anthropic's
Messages API (`/v1/messages`), tested with the official `openai` and `anthropic` clients.

One waitress server per session over a private copy of the smollm2 store, holding SmolLM2 and
`scripted`: a tiny Llama whose reply is exactly a script (scripted_model.py) chosen by the last
token of its prompt. Its Go template writes the tools, then the conversation (tool calls as
`<tool_call>`-tagged JSON, every other message's text), then the system messages last: so a
trigger in a system prompt or in a tool result picks the reply, which proves that it reached the
model.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from pyollama.server import create_app
from tests.server.conftest import LiveServer, serving, smollm2_config
from tests.server.features.conftest import create, upload
from tests.server.features.scripted_model import script_tokens, trigger, write_scripted_llama

CHAT_MODEL = "smollm2:135m"
SCRIPTED = "scripted"

WEATHER_ARGUMENTS = {"city": "Paris"}

# The reply each trigger makes the scripted model write, cut into the tokens it streams as.
SCRIPTS: dict[str, list[str]] = {
    "hello": ["Hello", " from", " the", " script", "."],
    "call": ["<tool_call>", '\n{"name": "get_weather", "arguments": {"city": "Paris"}}', "\n</tool_call>"],
    "prose_then_call": ["Let me", " check", " that.", "\n<tool_call>",
                        '\n{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}', "\n</tool_call>"],
    "two_calls": ["<tool_call>", '\n{"name": "get_weather", "arguments": {"city": "Rome"}}', "\n</tool_call>",
                  "\n<tool_call>", '\n{"name": "get_time", "arguments": {}}', "\n</tool_call>"],
    "after_tool": ["It is", " sunny", " in Paris", " today."],
    "system": ["I follow", " my", " instructions", "!"],
    "long": ["one", " two", " three", " four", " five", " six", " seven", " eight", " nine", " ten"],
}

TEMPLATE = """{{- if .Tools }}Tools: {{ json .Tools }}
{{ end }}
{{- range .Messages }}
{{- if eq .Role "system" }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- else }}{{ .Content }}{{ end }}
{{- end }}
{{- range .Messages }}{{ if eq .Role "system" }} {{ .Content }}{{ end }}{{ end }}"""

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city"}},
    "required": ["city"],
}
TIME_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

__all__ = ["CHAT_MODEL", "SCRIPTED", "SCRIPTS", "TIME_PARAMETERS", "WEATHER_ARGUMENTS", "WEATHER_PARAMETERS",
           "ask", "n_tokens", "script_text"]


def ask(script: str) -> str:
    return f"Please answer. {trigger(script)}"


def script_text(script: str) -> str:
    return "".join(SCRIPTS[script])


def n_tokens(script: str) -> int:
    return len(script_tokens(SCRIPTS)[script])


@pytest.fixture(scope="session")
def compat_server(smollm2_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("compat")
    models = root / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    with serving(create_app(smollm2_config(models, num_parallel=2))) as server:
        gguf = write_scripted_llama(root / "scripted.gguf", SCRIPTS)
        create(server, {"model": SCRIPTED, "files": {"scripted.gguf": upload(server, gguf)}, "template": TEMPLATE})
        yield server


@pytest.fixture(scope="session")
def oai(compat_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{compat_server.url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def claude(compat_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=compat_server.url, api_key="unused", max_retries=0, timeout=300)
