"""Go templates of the shapes Ollama's library uses, rendered through the real server
(`_debug_render_only`), byte for byte.

Every expected string below was worked out by hand from Go's text/template and fmt rules, not
taken from pyollama's renderer:
- `{{-`/`-}}` trim all adjacent whitespace, newlines included; text outside actions is kept;
- a struct without a String method prints as fmt's `%v`: `{field field ...}`, nil interfaces as
  `<nil>`, slices as `[a b]`, while a nested field whose type has a String method (Ollama's
  `templateProperties`, `templateArgs`, `templateTools`) prints through it;
- those String methods use encoding/json: struct fields in declaration order, `omitempty` fields
  dropped, map keys sorted, and `<`, `>`, `&` escaped as `\\u003c`, `\\u003e`, `\\u0026`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import LiveServer
from tests.server.features.conftest import BASE, QWEN_TOOLS_TEMPLATE, create, post

LLAMA3_TOOLS_TEMPLATE = """{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You are a helpful assistant with tool calling capabilities. When you receive a tool call response, use the output to format an answer to the original user question.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{{ range $.Tools }}
{{- . }}
{{ end }}
{{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""

MISTRAL_TEMPLATE = """{{- if .Messages }}
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}
{{- else }}[INST] {{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}[/INST]
{{- end }} {{ .Response }}
{{- if .Response }}</s>
{{- end }}"""

GEMMA_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather & forecast",
        "parameters": {
            "type": "object",
            "properties": {
                "days": {"type": "integer", "description": "Days"},
                "city": {"type": "string", "description": "City <name>"},
            },
            "required": ["city"],
        },
    },
}

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    },
    {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    {"role": "user", "content": "And Rome?"},
]

# templateProperties.String(): keys sorted, "<" and ">" escaped by encoding/json
PROPERTIES_JSON = (
    '{"city":{"type":"string","description":"City \\u003cname\\u003e"},'
    '"days":{"type":"integer","description":"Days"}}'
)
# fmt %v of templateToolFunction{Name, Description, Parameters{Type, Defs, Items, Required, Properties}}
FUNCTION_V = "{get_weather Weather & forecast {object <nil> <nil> [city] " + PROPERTIES_JSON + "}}"
# fmt %v of templateTool{Type, Items, Function}
TOOL_V = "{function <nil> " + FUNCTION_V + "}"
# templateTools.String(): json.Marshal of []templateTool (omitempty items/$defs dropped)
TOOLS_JSON = (
    '[{"type":"function","function":{"name":"get_weather","description":"Weather \\u0026 forecast",'
    '"parameters":{"type":"object","required":["city"],"properties":' + PROPERTIES_JSON + "}}}]"
)

QWEN_EXPECTED = (
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query."
    "\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": ' + FUNCTION_V + "}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call>"
    ' XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>'
    "<|im_end|>\n"
    "<|im_start|>user\n<tool_response>\n18C\n</tool_response><|im_end|>\n"
    "<|im_start|>user\nAnd Rome?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

LLAMA3_EXPECTED = (
    "<|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\nYou are a helpful assistant with tool calling "
    "capabilities. When you receive a tool call response, use the output to format an answer to the original user "
    "question.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
    '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city":"Paris"}}'
    "<|eot_id|>"
    "<|start_header_id|>ipython<|end_header_id|>\n\n18C<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a "
    "function call with its proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. '
    "Do not use variables.\n\n" + TOOL_V + "\n\nAnd Rome?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)

MISTRAL_EXPECTED = (
    "[INST] Weather in Paris?[/INST]"
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}]</s>'
    '[TOOL_RESULTS] {"content": 18C} [/TOOL_RESULTS]'
    "[AVAILABLE_TOOLS] " + TOOLS_JSON + "[/AVAILABLE_TOOLS]"
    "[INST] Be brief.\n\nAnd Rome?[/INST] "
)

GEMMA_EXPECTED = (
    "<start_of_turn>user\nBe brief.<end_of_turn>\n"
    "<start_of_turn>user\nHi<end_of_turn>\n"
    "<start_of_turn>model\nHello!<end_of_turn>\n"
    "<start_of_turn>user\nBye<end_of_turn>\n"
    "<start_of_turn>model\n"
)

TEMPLATES = {
    "chatml-tools": QWEN_TOOLS_TEMPLATE,
    "llama3-tools": LLAMA3_TOOLS_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
    "gemma": GEMMA_TEMPLATE,
}


@pytest.fixture(scope="module")
def template_models(features_server: LiveServer) -> dict[str, str]:
    names = {}
    for shape, template in TEMPLATES.items():
        names[shape] = f"smollm2-{shape}"
        create(features_server, {"model": names[shape], "from": BASE, "template": template})
    return names


def _render_chat(server: LiveServer, model: str, messages: list[dict[str, Any]], **extra: Any) -> str:
    body = {"model": model, "messages": messages, "_debug_render_only": True, **extra}
    response = post(server, "/api/chat", body)
    assert response.status_code == 200, response.text
    return str(response.json()["_debug_info"]["rendered_template"])


@pytest.mark.parametrize(
    ("shape", "expected"),
    [("chatml-tools", QWEN_EXPECTED), ("llama3-tools", LLAMA3_EXPECTED), ("mistral", MISTRAL_EXPECTED)],
)
def test_tool_template_renders_conversation_like_go(
    features_server: LiveServer, template_models: dict[str, str], shape: str, expected: str
) -> None:
    assert _render_chat(features_server, template_models[shape], CONVERSATION, tools=[TOOL]) == expected


def test_gemma_turns_render_like_go(features_server: LiveServer, template_models: dict[str, str]) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    assert _render_chat(features_server, template_models["gemma"], messages) == GEMMA_EXPECTED


def test_chatml_tools_template_without_tools_or_system_renders_plain_turns(
    features_server: LiveServer, template_models: dict[str, str]
) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    expected = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert _render_chat(features_server, template_models["chatml-tools"], messages) == expected


def test_mistral_generate_uses_messages_branch_with_system(
    features_server: LiveServer, template_models: dict[str, str]
) -> None:
    """/api/generate renders the system and prompt as messages (Ollama's GenerateHandler)."""
    response = post(
        features_server,
        "/api/generate",
        {
            "model": template_models["mistral"],
            "prompt": "Hi",
            "system": "Be brief.",
            "_debug_render_only": True,
        },
    )
    assert response.json()["_debug_info"]["rendered_template"] == "[INST] Be brief.\n\nHi[/INST] "


def test_generate_request_template_field_renders_like_go(features_server: LiveServer) -> None:
    """A request `template` naming neither .Messages nor .Response gets `{{ .Response }}` appended
    (empty here), and `{{-` trims the newline before it."""
    template = "{{ if .System }}<<SYS>>{{ .System }}<</SYS>>\n{{- end }}[Q] {{ .Prompt }} [A]"
    response = post(
        features_server,
        "/api/generate",
        {
            "model": BASE,
            "prompt": "2+2?",
            "system": "Math.",
            "template": template,
            "_debug_render_only": True,
        },
    )
    assert response.json()["_debug_info"]["rendered_template"] == "<<SYS>>Math.<</SYS>>[Q] 2+2? [A]"
