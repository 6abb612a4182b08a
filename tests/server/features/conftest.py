"""Fixtures for the request-feature proofs: one waitress server over a private copy of the
smollm2 store (so models created here never show up in other tests), models created through
`/api/create` the way a user would, and the official `ollama` client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import ollama
import pytest
import requests

from pyollama.server import create_app
from tests.server.conftest import LiveServer, serving, smollm2_config
from tests.server.features.media_helpers import write_fim_llama, write_gemma3_projector, write_tiny_llama

BASE = "smollm2:135m"

# Ollama's library qwen2.5 template: ChatML, tools in the system turn, calls in <tool_call> tags.
QWEN_TOOLS_TEMPLATE = """{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="session")
def features_server(smollm2_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("features") / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    with serving(create_app(smollm2_config(models, num_parallel=4, max_loaded_models=2))) as server:
        yield server


@pytest.fixture(scope="session")
def client(features_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=features_server.url, timeout=300)


def post(server: LiveServer, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=300)


def upload(server: LiveServer, path: Path) -> str:
    """POST /api/blobs/<digest>: the file as a blob, as `ollama create` uploads it."""
    import hashlib

    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    response = requests.post(f"{server.url}/api/blobs/{digest}", data=path.read_bytes(), timeout=60)
    assert response.status_code in (200, 201), response.text
    return digest


def create(server: LiveServer, body: dict[str, Any]) -> None:
    response = post(server, "/api/create", {**body, "stream": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


@pytest.fixture(scope="session")
def qwen_tools_model(features_server: LiveServer) -> str:
    """SmolLM2's weights with Ollama's qwen2.5 tools template (the Go-template tools path)."""
    create(
        features_server,
        {
            "model": "smollm2-qwen-tools",
            "from": BASE,
            "template": QWEN_TOOLS_TEMPLATE,
            "parameters": {"stop": ["<|im_end|>", "<|im_start|>"]},
        },
    )
    return "smollm2-qwen-tools"


# Qwen2.5's Hugging Face chat template (Jinja), for the GGUF-template tools path.
QWEN_TOOLS_JINJA = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


def _smollm2_with_jinja(store_root: Path, dst: Path, template: str) -> Path:
    """SmolLM2's GGUF with another Jinja chat template (metadata rewritten, tensors copied)."""
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    from pyollama.store.names import ModelName
    from pyollama.store.store import Store

    src = Store(store_root).load_record(ModelName.parse(BASE)).model_path
    assert src is not None
    reader = gguf.GGUFReader(str(src), "r")
    writer = gguf.GGUFWriter(str(dst), arch=str(reader.fields["general.architecture"].contents()))
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    copy_with_new_metadata(reader, writer, new, [])
    return dst


@pytest.fixture(scope="session")
def jinja_tools_model(features_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SmolLM2 whose own GGUF chat template is Qwen2.5's (the llama.cpp chat-code tools path)."""
    root = tmp_path_factory.mktemp("jinja")
    path = _smollm2_with_jinja(
        features_server.app.extensions["pyollama"].store.root, root / "m.gguf", QWEN_TOOLS_JINJA
    )
    create(
        features_server,
        {
            "model": "smollm2-jinja-tools",
            "files": {"m.gguf": upload(features_server, path)},
            "parameters": {"stop": ["<|im_end|>", "<|im_start|>"]},
        },
    )
    return "smollm2-jinja-tools"


@pytest.fixture(scope="session")
def vision_model(features_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny random Llama with a tiny gemma3 projector, created from files through /api/create."""
    root = tmp_path_factory.mktemp("vision")
    model = write_tiny_llama(root / "tiny.gguf")
    projector = write_gemma3_projector(root / "mmproj.gguf")
    files = {"tiny.gguf": upload(features_server, model), "mmproj.gguf": upload(features_server, projector)}
    create(features_server, {"model": "tiny-vision", "files": files})
    return "tiny-vision"


@pytest.fixture(scope="session")
def fim_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fim_llama(tmp_path_factory.mktemp("fim") / "fim.gguf")


@pytest.fixture(scope="session")
def fim_model(features_server: LiveServer, fim_gguf: Path) -> str:
    """A tiny random Llama whose vocabulary and metadata name fill-in-the-middle tokens."""
    create(features_server, {"model": "tiny-fim", "files": {"fim.gguf": upload(features_server, fim_gguf)}})
    return "tiny-fim"
