"""Thinking through HTTP with the official `ollama` client, streamed and not: `think` levels
reaching the template, `message.thinking` apart from `message.content`, earlier turns' thinking
dropped from the history, a prompt that ends inside an opened think tag, and `format` held off
while the model thinks.

The model is the scripted tiny Llama (scripted_model.py): the prompt's last token picks the
script the reply is, through the real engine, sampler and grammars. The `opened` script is
picked by `<think>` itself, so a template that ends the prompt with an opened think tag gets it.
Three models share its weights: `thinking-go` (an Ollama Go template with `<think>` around
`.Thinking`; the model opens the tag itself), `thinking-go-open` (the same, ending the prompt
with `<think>` when thinking is on) and `thinking-jinja` (the GGUF's Jinja template, rendered
and parsed by llama.cpp's chat code, which opens `<think>` when thinking is on and writes
`reasoning_effort` when the template is given one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ollama
import pytest

from tests.server.conftest import LiveServer
from tests.server.features.conftest import create, post, upload
from tests.server.features.scripted_model import script_tokens, trigger, write_scripted_llama_with_template

SCRIPTS: dict[str, list[str]] = {
    # picked by a prompt that ends with `<think>`: the reply starts inside the thinking
    # with text like the closing tag in it, which a format grammar held over the thinking would refuse
    "opened": ["Let me see.", " <b>Two</b> and", " </thin", "g> two <", "</think>", "\n\n", "The answer is 4."],
    "thinks": ["<think>", "\n", "I weigh it.", "</think>", "\n", "It is yes."],
    "json_after_thinking": [
        "<think>", "Maybe <b>bold</b>", " or </thin", "g>? Is 1 <", "</think>", '{"answer": "yes"}',
    ],
    "answers_plainly": ["Yes", ", it is", "."],
}
TRIGGERS = {"opened": "<think>"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}

# Go template: a think header, then the conversation, each assistant turn's thinking in tags.
GO_TEMPLATE = """{{- if .IsThinkSet }}Think: {{ .Think }} {{ .ThinkLevel }}
{{ end }}
{{- range .Messages }}
{{- if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}
{{- else }}{{ .Content }}{{ end }}
{{- end }}"""
GO_OPEN_TEMPLATE = GO_TEMPLATE + "{{ if .Think }}<think>{{ end }}"

JINJA_TEMPLATE = """{%- if reasoning_effort is defined %}{{ 'Reasoning: ' + reasoning_effort + '\\n' }}{%- endif %}
{%- for message in messages %}
{%- if message.role == 'assistant' %}
{%- if message.reasoning_content %}{{ '<think>' + message.reasoning_content + '</think>' }}{%- endif %}
{{- message.content }}
{%- else %}{{ message.content }}{%- endif %}
{%- endfor %}
{%- if add_generation_prompt and enable_thinking %}{{ '<think>' }}{%- endif %}"""

OPTIONS = {"temperature": 0, "num_predict": 200}
OPENED_THINKING = "Let me see. <b>Two</b> and </thing> two <"


@pytest.fixture(scope="module")
def thinking_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("thinking")
    return write_scripted_llama_with_template(root / "thinking.gguf", SCRIPTS, JINJA_TEMPLATE, TRIGGERS)


@pytest.fixture(scope="module")
def models(features_server: LiveServer, thinking_gguf: Path) -> dict[str, str]:
    files = {"thinking.gguf": upload(features_server, thinking_gguf)}
    create(features_server, {"model": "thinking-go", "files": files, "template": GO_TEMPLATE})
    create(features_server, {"model": "thinking-go-open", "files": files, "template": GO_OPEN_TEMPLATE})
    create(features_server, {"model": "thinking-jinja", "files": files})
    return {"go": "thinking-go", "go-open": "thinking-go-open", "jinja": "thinking-jinja"}


def _ask(script: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Please answer. {trigger(script)}"}]


def _reply(client: ollama.Client, model: str, script: str, *, stream: bool, **kwargs: Any) -> tuple[str, str, list[Any]]:
    """(thinking, content, chunks) of a chat reply to the message that picks `script`."""
    response = client.chat(model=model, messages=_ask(script), stream=stream, options=OPTIONS, **kwargs)
    chunks = list(response) if stream else [response]
    assert chunks[-1].done and chunks[-1].done_reason == "stop"
    thinking = "".join(chunk.message.thinking or "" for chunk in chunks)
    content = "".join(chunk.message.content or "" for chunk in chunks)
    return thinking, content, chunks


def _rendered(server: LiveServer, model: str, messages: list[dict[str, Any]], **body: Any) -> str:
    response = post(server, "/api/chat", {"model": model, "messages": messages, "_debug_render_only": True, **body})
    assert response.status_code == 200, response.text
    return str(response.json()["_debug_info"]["rendered_template"])


def _n_tokens(script: str) -> int:
    return len(script_tokens(SCRIPTS, TRIGGERS)[script])


# -- levels reach the template ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("think", "header"),
    [("low", "Think: true low"), ("medium", "Think: true medium"), ("high", "Think: true high"),
     ("max", "Think: true max"), (True, "Think: true medium"), (False, "Think: false ")],
)
def test_think_levels_reach_the_go_template(features_server: LiveServer, models: dict[str, str],
                                            think: Any, header: str) -> None:
    prompt = _rendered(features_server, models["go"], _ask("thinks"), think=think)
    assert prompt.splitlines()[0] == header


def test_an_absent_think_is_true_for_a_thinking_model(features_server: LiveServer, models: dict[str, str]) -> None:
    assert _rendered(features_server, models["go"], _ask("thinks")).startswith("Think: true medium\n")


@pytest.mark.parametrize(
    ("think", "effort"),
    [("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "high"), (True, None), (False, None)],
)
def test_think_levels_reach_the_jinja_template_as_reasoning_effort(
    features_server: LiveServer, models: dict[str, str], think: Any, effort: str | None
) -> None:
    prompt = _rendered(features_server, models["jinja"], _ask("thinks"), think=think)
    expected = (f"Reasoning: {effort}\n" if effort else "") + f"Please answer. {trigger('thinks')}"
    # enable_thinking follows `think` too: the template opens the think tag when it is on
    assert prompt == expected + ("<think>" if think is not False else "")


# -- thinking and content apart, streamed and not -----------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_the_model_opens_is_message_thinking(client: ollama.Client, models: dict[str, str], stream: bool) -> None:
    thinking, content, chunks = _reply(client, models["go"], "thinks", stream=stream)
    assert thinking == "I weigh it."
    assert content == "It is yes."
    assert chunks[-1].eval_count == _n_tokens("thinks")
    if stream:
        # the thinking went out before the content, in chunks of its own
        first_content = next(i for i, c in enumerate(chunks) if c.message.content)
        assert all(not c.message.thinking for c in chunks[first_content:])
        assert any(c.message.thinking for c in chunks[:first_content])


@pytest.mark.parametrize("model", ["go-open", "jinja"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_ending_in_an_opened_think_tag_starts_the_reply_in_thinking(
    client: ollama.Client, models: dict[str, str], model: str, stream: bool
) -> None:
    # the user message names another script: the template's `<think>` is the prompt's last token
    thinking, content, chunks = _reply(client, models[model], "answers_plainly", stream=stream)
    assert thinking == OPENED_THINKING
    assert content == "The answer is 4."
    assert chunks[-1].eval_count == _n_tokens("opened")


def test_think_false_leaves_the_reply_as_content(client: ollama.Client, models: dict[str, str]) -> None:
    thinking, content, _ = _reply(client, models["go"], "thinks", stream=False, think=False)
    assert thinking == ""
    assert content == "<think>\nI weigh it.</think>\nIt is yes."


def test_think_false_on_an_opening_template_does_not_open_it(client: ollama.Client, models: dict[str, str]) -> None:
    thinking, content, _ = _reply(client, models["go-open"], "answers_plainly", stream=True, think=False)
    assert (thinking, content) == ("", "Yes, it is.")


def test_generate_splits_thinking_too(client: ollama.Client, models: dict[str, str]) -> None:
    response = client.generate(model=models["go-open"], prompt="Please answer.", options=OPTIONS, think="low")
    assert response.thinking == OPENED_THINKING
    assert response.response == "The answer is 4."


# -- earlier turns' thinking is dropped from the history ----------------------------------------


@pytest.mark.parametrize("model", ["go", "jinja"])
def test_earlier_turns_lose_their_thinking(features_server: LiveServer, models: dict[str, str], model: str) -> None:
    messages = [
        {"role": "user", "content": "First question."},
        {"role": "assistant", "content": "<think>\nold thoughts\n</think>\n\nFirst answer."},
        {"role": "user", "content": "Second question."},
        {"role": "assistant", "content": "<think>a prefill keeps its thoughts</think>Partly"},
    ]
    prompt = _rendered(features_server, models[model], messages, think=False)
    assert "old thoughts" not in prompt
    assert "First question.First answer.Second question." in prompt
    # after the last user message the assistant turn is the reply's start: it is left alone
    assert prompt.endswith("<think>a prefill keeps its thoughts</think>Partly")


def test_the_thinking_field_of_earlier_turns_is_the_templates_to_render(
    features_server: LiveServer, models: dict[str, str]
) -> None:
    messages = [
        {"role": "user", "content": "Q1."},
        {"role": "assistant", "content": "A1.", "thinking": "kept as sent"},
        {"role": "user", "content": "Q2."},
    ]
    assert "Q1.<think>kept as sent</think>A1.Q2." in _rendered(features_server, models["go"], messages, think=False)


# -- format applies to the answer only ----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_format_leaves_the_thinking_free(client: ollama.Client, models: dict[str, str], stream: bool) -> None:
    thinking, content, chunks = _reply(client, models["go"], "json_after_thinking", stream=stream, format=SCHEMA)
    # every token of the script went through: the grammar let the thinking be and took the answer
    assert thinking == "Maybe <b>bold</b> or </thing>? Is 1 <"
    assert content == '{"answer": "yes"}'
    assert chunks[-1].eval_count == _n_tokens("json_after_thinking")


@pytest.mark.parametrize("model", ["go", "go-open", "jinja"])
@pytest.mark.parametrize("stream", [False, True])
def test_format_holds_the_answer_after_thinking(client: ollama.Client, models: dict[str, str], model: str,
                                               stream: bool) -> None:
    # go: the model opens the tag; go-open and jinja: the prompt did, and the `opened` script runs
    script = "thinks" if model == "go" else "answers_plainly"
    thinking, content, _ = _reply(client, models[model], script, stream=stream, format=SCHEMA)
    assert thinking == ("I weigh it." if model == "go" else OPENED_THINKING)
    # without the format these answers are prose (the tests above)
    assert json.loads(content) in ({"answer": "yes"}, {"answer": "no"})


def test_format_without_thinking_holds_the_whole_reply(client: ollama.Client, models: dict[str, str]) -> None:
    thinking, content, _ = _reply(client, models["go"], "answers_plainly", stream=False, think=False, format=SCHEMA)
    assert thinking == ""
    assert json.loads(content) in ({"answer": "yes"}, {"answer": "no"})


def test_a_thinking_model_that_answers_at_once_is_held_to_the_format(client: ollama.Client,
                                                                     models: dict[str, str]) -> None:
    # thinking on, but the reply never opens the tag: the answer is held from its first character
    thinking, content, _ = _reply(client, models["go"], "answers_plainly", stream=False, format=SCHEMA)
    assert thinking == ""
    assert json.loads(content) in ({"answer": "yes"}, {"answer": "no"})
