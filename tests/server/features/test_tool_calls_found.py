"""Tool calls found where Ollama finds them, and written the way small models write them,
through HTTP with the official `ollama` and `openai` clients, streamed and not.

The model is a scripted tiny Llama (scripted_model.py): the user message ends with a script's
trigger and the reply is exactly that script, streamed piece by piece as written below, through
the real engine, sampler and tool-call grammars. Two models share its weights: one with an Ollama
Go template whose tool calls are `<tool_call>`-tagged (`scripted-go`: pyollama's tool-call
parser reads the reply; its lazy grammar holds calls that open with `<tool_call>` or `{"name"`),
one with a GGUF Jinja template of the same shape (`scripted-jinja`: llama.cpp's chat parser reads
the tagged calls, and JSON calls it leaves in the content are found after it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

from pyollama.templates.prompt import parse_template, template_capabilities, tool_call_tags
from tests.server.conftest import LiveServer
from tests.server.features.conftest import WEATHER_TOOL, create, post, upload
from tests.server.features.scripted_model import script_tokens, trigger, write_scripted_llama_with_template

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time now", "parameters": {"type": "object", "properties": {}}},
}

PARIS = '{"name": "get_weather", "arguments": {"city": "Paris"}}'

# The reply each trigger makes the model write, cut into the tokens it streams as.
SCRIPTS: dict[str, list[str]] = {
    # Go-template model
    "prose_then_call": [
        "Let me check", " the weather", " in Paris.", "\n<tool_call>", '\n{"name": "get_weather", ',
        '"arguments": {"city": "Paris"}}', "\n</tool_call>",
    ],
    "two_calls": [
        "<tool_call>", '\n{"name": "get_weather", "arguments": {"city": "Rome"}}', "\n</tool_call>",
        "\n<tool_call>", '\n{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}', "\n</tool_call>",
    ],
    "fenced_call": ["Here is the call:", "\n```json", '\n{"name": "get_weather", "arguments": {"city": "Lima"}}', "\n```"],
    "call_between_prose": [
        "Calling it now:", ' {"arguments": {"city": "Kyiv"}, ', '"name": "get_weather"}', " and then", " I will report.",
    ],
    "python_dict_arguments": ["Calling:", " { \"name\": \"get_weather\", ", "\"arguments\": {'city': 'Paris'} }"],
    "text_arguments": ['{ "name": "get_weather",', ' "arguments": "city=Paris" }'],
    "spaced_call": ['{ "name": "get_weather", "arguments": {"city": "Paris"} }'],
    "plain_call": [PARIS],
    # Jinja-template model
    "bare_parameters": ["I will look it up.", ' {"name": "get_weather", ', '"parameters": {"city": "Paris"}}'],
    "fenced_with_prose": [
        "Sure.", "\n```json\n", '{"name": "get_weather", "arguments": {"city": "Rome"}}', "\n```", "\nAnything else?",
    ],
    "misfit_arguments": ['{"name": "get_weather", "arguments": {"town": "Paris"}}'],
    "bare_then_tagged": [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}', " ", "<tool_call>\n",
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}', "\n</tool_call>",
    ],
}

# Go template: the tools in a header, then the conversation, ending with the last message's text
# (the trigger); the assistant's calls in history are `<tool_call>`-tagged JSON lines.
GO_TEMPLATE = """{{- if .Tools }}Tools: {{ json .Tools }}
{{ end }}
{{- range .Messages }}
{{- if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- else }}{{ .Content }}{{ end }}
{{- end }}"""

JINJA_TEMPLATE = """{%- if tools %}{{- 'Tools: ' + (tools | tojson) + '\\n' }}{%- endif %}
{%- for message in messages %}
{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}<tool_call>
{"name": "{{ tool_call.function.name }}", "arguments": {{ tool_call.function.arguments | tojson }}}
</tool_call>{%- endfor %}
{%- else %}{{- message.content }}{%- endif %}
{%- endfor %}"""


@pytest.fixture(scope="module")
def scripted_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scripted")
    return write_scripted_llama_with_template(root / "scripted.gguf", SCRIPTS, JINJA_TEMPLATE)


@pytest.fixture(scope="module")
def scripted_go(features_server: LiveServer, scripted_gguf: Path) -> str:
    files = {"scripted.gguf": upload(features_server, scripted_gguf)}
    create(features_server, {"model": "scripted-go", "files": files, "template": GO_TEMPLATE})
    return "scripted-go"


@pytest.fixture(scope="module")
def scripted_jinja(features_server: LiveServer, scripted_gguf: Path) -> str:
    create(features_server, {"model": "scripted-jinja", "files": {"scripted.gguf": upload(features_server, scripted_gguf)}})
    return "scripted-jinja"


@pytest.fixture(scope="module")
def oai(features_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{features_server.url}/v1", api_key="unused", timeout=300)


def _ask(script: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Please answer. {trigger(script)}"}]


def _chat(client: ollama.Client, model: str, script: str, *, stream: bool,
          tools: list[dict[str, Any]] | None = None) -> list[Any]:
    """The reply's chunks (one object when not streamed), checked to be the whole script: the
    tool-call grammars let every token of it through."""
    offered = [WEATHER_TOOL] if tools is None else tools
    response = client.chat(model=model, messages=_ask(script), tools=offered or None, stream=stream,
                           options={"temperature": 0, "num_predict": 200})
    chunks = list(response) if stream else [response]
    assert chunks[-1].done_reason == "stop"
    assert chunks[-1].eval_count == len(script_tokens(SCRIPTS)[script])
    return chunks


def _calls(chunks: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.function.name, dict(c.function.arguments)) for chunk in chunks for c in chunk.message.tool_calls or []]


def _content(chunks: list[Any]) -> str:
    return "".join(chunk.message.content or "" for chunk in chunks)


def _weather(*cities: str) -> list[tuple[str, dict[str, Any]]]:
    return [("get_weather", {"city": city}) for city in cities]


def test_the_template_names_its_tool_call_tag() -> None:
    template = parse_template(GO_TEMPLATE)
    assert tool_call_tags(template) == ("<tool_call>", "</tool_call>")
    assert "tools" in template_capabilities(GO_TEMPLATE)


# -- Go template: the template's own tag, anywhere in the reply ----------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_prose_then_tagged_call(client: ollama.Client, scripted_go: str, stream: bool) -> None:
    chunks = _chat(client, scripted_go, "prose_then_call", stream=stream)
    assert _calls(chunks) == _weather("Paris")
    assert _content(chunks) == "Let me check the weather in Paris."


def test_prose_streams_before_the_call_and_the_call_before_the_end(client: ollama.Client, scripted_go: str) -> None:
    chunks = _chat(client, scripted_go, "prose_then_call", stream=True)
    texts = [chunk.message.content for chunk in chunks]
    with_call = [i for i, chunk in enumerate(chunks) if chunk.message.tool_calls]
    assert with_call and not chunks[with_call[0]].done
    # the prose went out as the model wrote it, not held back until the call or the end
    assert texts[: with_call[0]][:3] == ["Let me check", " the weather", " in Paris."]
    assert chunks[with_call[0]].message.content == ""
    assert chunks[-1].done and chunks[-1].done_reason == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_two_tagged_calls(client: ollama.Client, scripted_go: str, stream: bool) -> None:
    chunks = _chat(client, scripted_go, "two_calls", stream=stream)
    assert _calls(chunks) == _weather("Rome", "Oslo")
    assert _content(chunks) == ""
    if stream:
        # each call went out as soon as its JSON closed, in a chunk of its own
        with_call = [i for i, chunk in enumerate(chunks) if chunk.message.tool_calls]
        assert len(with_call) == 2 and with_call[0] < with_call[1] < len(chunks) - 1


@pytest.mark.parametrize("stream", [False, True])
def test_call_inside_a_code_fence(client: ollama.Client, scripted_go: str, stream: bool) -> None:
    chunks = _chat(client, scripted_go, "fenced_call", stream=stream)
    assert _calls(chunks) == _weather("Lima")
    assert _content(chunks) == "Here is the call:"


@pytest.mark.parametrize("stream", [False, True])
def test_bare_json_call_between_prose(client: ollama.Client, scripted_go: str, stream: bool) -> None:
    chunks = _chat(client, scripted_go, "call_between_prose", stream=stream)
    assert _calls(chunks) == _weather("Kyiv")
    assert _content(chunks) == "Calling it now: and then I will report."


@pytest.mark.parametrize("script", ["python_dict_arguments", "text_arguments"])
@pytest.mark.parametrize("stream", [False, True])
def test_arguments_that_are_not_a_json_object_leave_the_text_as_content(
    client: ollama.Client, scripted_go: str, script: str, stream: bool
) -> None:
    chunks = _chat(client, scripted_go, script, stream=stream)
    assert _calls(chunks) == []
    assert _content(chunks) == "".join(SCRIPTS[script])


@pytest.mark.parametrize("stream", [False, True])
def test_no_call_when_no_tools_are_offered(client: ollama.Client, scripted_go: str, stream: bool) -> None:
    chunks = _chat(client, scripted_go, "plain_call", stream=stream, tools=[])
    assert _calls(chunks) == []
    assert _content(chunks) == PARIS


def test_no_call_to_a_tool_that_was_not_offered(client: ollama.Client, scripted_go: str) -> None:
    chunks = _chat(client, scripted_go, "spaced_call", stream=True, tools=[TIME_TOOL])
    assert _calls(chunks) == []
    assert _content(chunks) == "".join(SCRIPTS["spaced_call"])


def test_streamed_calls_are_indexed_in_reply_order_with_ids(features_server: LiveServer, scripted_go: str) -> None:
    """Raw NDJSON (the `ollama` client drops `index`): one chunk per call, `content: ""`."""
    import requests

    body = {"model": scripted_go, "messages": _ask("two_calls"), "tools": [WEATHER_TOOL], "stream": True}
    with requests.post(f"{features_server.url}/api/chat", json=body, stream=True, timeout=300) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    with_calls = [line["message"] for line in lines if line["message"].get("tool_calls")]
    assert [m["content"] for m in with_calls] == ["", ""]
    calls = [call for m in with_calls for call in m["tool_calls"]]
    assert [call["function"] for call in calls] == [
        {"index": 0, "name": "get_weather", "arguments": {"city": "Rome"}},
        {"index": 1, "name": "get_weather", "arguments": {"city": "Oslo"}},
    ]
    assert all(call["id"].startswith("call_") and len(call["id"]) == 13 for call in calls)


# -- Jinja template: JSON calls llama.cpp's parser leaves in the content -------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_jinja_bare_call_with_parameters_key(client: ollama.Client, scripted_jinja: str, stream: bool) -> None:
    chunks = _chat(client, scripted_jinja, "bare_parameters", stream=stream)
    assert _calls(chunks) == _weather("Paris")
    assert _content(chunks) == "I will look it up."
    if stream:
        with_call = [i for i, chunk in enumerate(chunks) if chunk.message.tool_calls]
        assert with_call == [len(chunks) - 2]  # the call, then the final chunk
        assert chunks[0].message.content == "I will look it up."


@pytest.mark.parametrize("stream", [False, True])
def test_jinja_fenced_call_with_prose_around(client: ollama.Client, scripted_jinja: str, stream: bool) -> None:
    chunks = _chat(client, scripted_jinja, "fenced_with_prose", stream=stream)
    assert _calls(chunks) == _weather("Rome")
    assert _content(chunks) == "Sure.\nAnything else?"


@pytest.mark.parametrize("stream", [False, True])
def test_jinja_json_call_and_tagged_call_are_indexed_in_order(
    client: ollama.Client, scripted_jinja: str, stream: bool
) -> None:
    chunks = _chat(client, scripted_jinja, "bare_then_tagged", stream=stream)
    assert _calls(chunks) == _weather("Paris", "Oslo")
    assert _content(chunks) == ""


@pytest.mark.parametrize(
    ("script", "tools"),
    [("misfit_arguments", [WEATHER_TOOL]), ("bare_parameters", [TIME_TOOL]), ("bare_parameters", [])],
    ids=["arguments-do-not-fit", "tool-not-offered", "no-tools"],
)
def test_jinja_json_that_is_not_a_call_to_an_offered_tool_stays_content(
    client: ollama.Client, scripted_jinja: str, script: str, tools: list[dict[str, Any]]
) -> None:
    chunks = _chat(client, scripted_jinja, script, stream=True, tools=tools)
    assert _calls(chunks) == []
    assert _content(chunks) == "".join(SCRIPTS[script])


# -- the same through the OpenAI layer ------------------------------------------------------------


def _openai_chunks(oai: openai.OpenAI, model: str, script: str) -> Iterator[Any]:
    return iter(oai.chat.completions.create(model=model, messages=_ask(script), tools=[WEATHER_TOOL],  # type: ignore[arg-type]
                                            temperature=0, stream=True))


@pytest.mark.parametrize(("model", "script", "content", "cities"), [
    ("scripted_go", "prose_then_call", "Let me check the weather in Paris.", ["Paris"]),
    ("scripted_go", "two_calls", "", ["Rome", "Oslo"]),
    ("scripted_jinja", "fenced_with_prose", "Sure.\nAnything else?", ["Rome"]),
])
def test_openai_reply_carries_the_calls(
    oai: openai.OpenAI, request: pytest.FixtureRequest, model: str, script: str, content: str, cities: list[str]
) -> None:
    name = request.getfixturevalue(model)
    reply = oai.chat.completions.create(model=name, messages=_ask(script), tools=[WEATHER_TOOL],  # type: ignore[arg-type]
                                        temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert (choice.message.content or "") == content
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", {"city": city}) for city in cities]
    assert all(c.id.startswith("call_") for c in calls)


@pytest.mark.parametrize(("model", "script", "content", "cities"), [
    ("scripted_go", "prose_then_call", "Let me check the weather in Paris.", ["Paris"]),
    ("scripted_go", "two_calls", "", ["Rome", "Oslo"]),
    ("scripted_jinja", "bare_parameters", "I will look it up.", ["Paris"]),
])
def test_openai_stream_carries_each_call_as_it_parses(
    oai: openai.OpenAI, request: pytest.FixtureRequest, model: str, script: str, content: str, cities: list[str]
) -> None:
    chunks = list(_openai_chunks(oai, request.getfixturevalue(model), script))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    calls = [(i, c) for i, d in enumerate(deltas) for c in d.tool_calls or []]
    assert [(c.index, c.function.name, json.loads(c.function.arguments)) for _, c in calls] == [  # type: ignore[union-attr]
        (i, "get_weather", {"city": city}) for i, city in enumerate(cities)]
    assert len({i for i, _ in calls}) == len(cities)  # one chunk per call
    assert "".join(d.content or "" for d in deltas) == content
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_json_that_is_not_a_call_is_content(oai: openai.OpenAI, scripted_jinja: str) -> None:
    reply = oai.chat.completions.create(model=scripted_jinja, messages=_ask("misfit_arguments"),  # type: ignore[arg-type]
                                        tools=[WEATHER_TOOL], temperature=0)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "".join(SCRIPTS["misfit_arguments"])


def test_scripted_model_writes_its_script_without_tools(features_server: LiveServer, scripted_go: str) -> None:
    """The premise of every test here: the reply is the script, token for token."""
    body = {"model": scripted_go, "messages": _ask("fenced_with_prose"), "stream": False}
    reply = post(features_server, "/api/chat", body).json()
    assert reply["message"]["content"] == "".join(SCRIPTS["fenced_with_prose"])
    assert reply["eval_count"] == len(script_tokens(SCRIPTS)["fenced_with_prose"])
