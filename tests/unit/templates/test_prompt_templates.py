"""Ollama's prompt building (pyollama.templates.prompt) on real template shapes.

Expected prompts were derived from Ollama's code path (template/template.go Execute and collate,
server/prompt.go chatPrompt, GenerateHandler in server/routes.go; reference §5), replayed with
Go's own text/template on the same templates and messages. Where a case comes from Ollama's own
tests (template/template_test.go) the test says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyollama.errors import BadRequestError
from pyollama.templates.gotext import Template, TemplateError
from pyollama.templates.prompt import (
    RenderedPrompt,
    Truncation,
    chat_prompt,
    execute,
    generate_prompt,
    parse_template,
    render_chat,
    render_generate,
    template_capabilities,
    template_vars,
    thinking_tags,
    tool_call_tags,
    uses_messages,
    uses_suffix,
    uses_think,
    uses_tools,
)

# shared/reference/ollama_store_registry.md §5.3 `chatml.gotmpl` (exact).
CHATML = '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n'
# shared/reference/ollama_store_registry.md §5.3 `llama3-instruct.gotmpl` (exact).
LLAMA3 = '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n'
# Gemma turn format: a `.Messages` branch with a legacy `.Prompt/.Response` branch under `else`,
# using the `$last := eq (len (slice $.Messages $i)) 1` idiom of reference §5.2.
GEMMA = '{{- if .Messages }}\n{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n{{- if eq .Role "user" }}<start_of_turn>user\n{{- if and $.System (eq $i 1) }}\n{{ $.System }}\n{{- end }}\n{{ .Content }}<end_of_turn>\n{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}\n{{- if and $last (ne .Role "assistant") }}<start_of_turn>model\n{{ end }}\n{{- end }}\n{{- else }}<start_of_turn>user\n{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n{{ .Response }}<end_of_turn>\n{{ end }}'
# Phi-3 turn format as a legacy template: no `.Messages`, so Ollama renders it once per turn.
PHI3 = '{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}<|assistant|>\n{{ .Response }}<|end|>\n'
# A legacy template naming neither `.Messages` nor `.Response`: Ollama appends `{{ .Response }}`.
VICUNA = '{{ .System }} USER: {{ .Prompt }} ASSISTANT:'
# Mistral turn format with tools (`json $.Tools`, `[TOOL_CALLS]`), reference §5.2 idioms.
MISTRAL_TOOLS = '{{- range $index, $_ := .Messages }}\n{{- if eq .Role "user" }}\n{{- if and (le (len (slice $.Messages $index)) 2) $.Tools }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]\n{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}\n\n{{ end }}{{ .Content }}[/INST]\n{{- else if eq .Role "assistant" }}\n{{- if .Content }} {{ .Content }}\n{{- else if .ToolCalls }}[TOOL_CALLS] [\n{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}\n{{- end }}]\n{{- end }}</s>\n{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}}[/TOOL_RESULTS]\n{{- end }}\n{{- end }}'
# ChatML turn format with tools, tool calls and tool responses (Qwen style).
QWEN_TOOLS = '{{- if or .System .Tools }}<|im_start|>system\n{{- if .System }}\n{{ .System }}\n{{- end }}\n{{- if .Tools }}\n\n# Tools\n\n<tools>\n{{- range .Tools }}\n{"type": "function", "function": {{ json .Function }}}\n{{- end }}\n</tools>\n{{- end }}<|im_end|>\n{{ end }}\n{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ if .Content }}{{ .Content }}\n{{- else if .ToolCalls }}<tool_call>\n{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}\n{{ end }}</tool_call>\n{{- end }}{{ if not $last }}<|im_end|>\n{{ end }}\n{{- else if eq .Role "tool" }}<|im_start|>user\n<tool_response>\n{{ .Content }}\n</tool_response><|im_end|>\n{{ end }}\n{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant\n{{ end }}\n{{- end }}'
# Lists tool parameters one by one: PropertyType's String(), toTypeScriptType, Go-printed arguments.
PARAMS = '{{- range .Tools }}{{ .Function.Name }}({{ range $name, $p := .Function.Parameters.Properties }}{{ $name }}: {{ $p.Type }} [{{ toTypeScriptType $p }}]{{ if $p.Enum }} one of {{ $p.Enum }}{{ end }}; {{ end }}) required={{ .Function.Parameters.Required }}\n{{ end }}{{ range .Messages }}{{ .Role }}: {{ .Content }}{{ range .ToolCalls }} -> {{ .Function.Name }}{{ range $k, $v := .Function.Arguments }} {{ $k }}={{ $v }}{{ end }}{{ end }}\n{{ end }}'
# Thinking: tags around `.Thinking` inside `range .Messages`, plus the think values.
THINK = '{{- range $i, $_ := .Messages }}<|{{ .Role }}|>{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n{{ end }}<|assistant|>{{ if and .IsThinkSet (not .Think) }}<think></think>{{ end }}[think={{ .Think }} level={{ .ThinkLevel }} set={{ .IsThinkSet }}]'
# Fill in the middle: Ollama template/template_test.go TestExecuteWithSuffix.
FIM = '{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}'
# Shows image tags and `.Images`.
IMAGES = '{{ range .Messages }}{{ .Role }}:{{ .Content }}{{ if .Images }} ({{ len .Images }} images){{ end }}\n{{ end }}'
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": ["integer", "null"], "description": "Days ahead"},
                },
            },
        },
    },
]

SYS_CONV = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
PREFILL = [
    {"role": "user", "content": "Hello friend!"},
    {"role": "assistant", "content": "Hello human!"},
    {"role": "user", "content": "What is your name?"},
    {"role": "assistant", "content": "My name is Ollama and I"},
]
TOOL_CONV: list[dict[str, Any]] = [
    {"role": "system", "content": "Be concise."},
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 1000000}}},
        {"function": {"index": 1, "name": "get_weather", "arguments": {"unit": "celsius", "city": "<Tokyo>"}}},
    ]},
    {"role": "tool", "content": "18C", "tool_name": "get_weather"},
    {"role": "tool", "content": "22C", "tool_name": "get_weather"},
]


def _chat(template: str, messages: list[dict[str, Any]], **kw: Any) -> str:
    return render_chat(parse_template(template), messages, **kw)


def _generate(template: str, **kw: Any) -> str:
    return render_generate(parse_template(template), **kw)


def test_chatml_renders_single_user_turn_and_opens_assistant() -> None:
    assert _chat(CHATML, [{"role": "user", "content": "Hello, how are you?"}]) == (
        '<|im_start|>user\n'
        'Hello, how are you?<|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_chatml_renders_system_and_history_in_messages_mode() -> None:
    assert _chat(CHATML, SYS_CONV) == (
        '<|im_start|>system\n'
        'You are a helpful assistant.<|im_end|>\n'
        '<|im_start|>user\n'
        'Hello, how are you?<|im_end|>\n'
        '<|im_start|>assistant\n'
        "I'm doing great. How can I help you today?<|im_end|>\n"
        '<|im_start|>user\n'
        "I'd like to show off how chat templating works!<|im_end|>\n"
        '<|im_start|>assistant\n'
    )

def test_chatml_closes_trailing_assistant_turn_in_messages_mode() -> None:
    assert _chat(CHATML, PREFILL) == (
        '<|im_start|>user\n'
        'Hello friend!<|im_end|>\n'
        '<|im_start|>assistant\n'
        'Hello human!<|im_end|>\n'
        '<|im_start|>user\n'
        'What is your name?<|im_end|>\n'
        '<|im_start|>assistant\n'
        'My name is Ollama and I<|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_llama3_renders_system_and_history() -> None:
    assert _chat(LLAMA3, SYS_CONV) == (
        '<|start_header_id|>system<|end_header_id|>\n'
        '\n'
        'You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n'
        '\n'
        'Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
        '\n'
        "I'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        '\n'
        "I'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        '\n'
    )

def test_gemma_style_folds_system_into_first_user_turn() -> None:
    assert _chat(GEMMA, SYS_CONV) == (
        '<start_of_turn>user\n'
        'You are a helpful assistant.\n'
        'Hello, how are you?<end_of_turn>\n'
        '<start_of_turn>model\n'
        "I'm doing great. How can I help you today?<end_of_turn>\n"
        '<start_of_turn>user\n'
        "I'd like to show off how chat templating works!<end_of_turn>\n"
        '<start_of_turn>model\n'
    )

def test_legacy_template_renders_once_per_turn() -> None:
    assert _chat(PHI3, SYS_CONV) == (
        '<|system|>\n'
        'You are a helpful assistant.<|end|>\n'
        '<|user|>\n'
        'Hello, how are you?<|end|>\n'
        '<|assistant|>\n'
        "I'm doing great. How can I help you today?<|end|>\n"
        '<|user|>\n'
        "I'd like to show off how chat templating works!<|end|>\n"
        '<|assistant|>\n'
    )

def test_legacy_template_cuts_last_turn_after_response_for_prefill() -> None:
    assert _chat(PHI3, PREFILL) == (
        '<|user|>\n'
        'Hello friend!<|end|>\n'
        '<|assistant|>\n'
        'Hello human!<|end|>\n'
        '<|user|>\n'
        'What is your name?<|end|>\n'
        '<|assistant|>\n'
        'My name is Ollama and I'
    )

def test_legacy_template_collates_runs_and_flushes_on_system() -> None:
    assert _chat(PHI3, [
        {"role": "system", "content": "S1"}, {"role": "system", "content": "S2"}, {"role": "user", "content": "U1"},
        {"role": "user", "content": "U2"}, {"role": "assistant", "content": "A1"}, {"role": "system", "content": "S3"},
        {"role": "user", "content": "U3"},
    ]) == (
        '<|system|>\n'
        'S1\n'
        '\n'
        'S2<|end|>\n'
        '<|user|>\n'
        'U1\n'
        '\n'
        'U2<|end|>\n'
        '<|assistant|>\n'
        'A1<|end|>\n'
        '<|system|>\n'
        'S3<|end|>\n'
        '<|user|>\n'
        'U3<|end|>\n'
        '<|assistant|>\n'
    )

def test_legacy_template_without_response_gets_response_appended() -> None:
    assert _chat(VICUNA, SYS_CONV) == (
        "You are a helpful assistant. USER: Hello, how are you? ASSISTANT:I'm doing great. How can I help you today? USER: I'd like to show off how chat templating works! ASSISTANT:"
    )

def test_mistral_tools_renders_tool_calls_as_go_json() -> None:
    assert _chat(MISTRAL_TOOLS, TOOL_CONV, tools=TOOLS) == (
        '[INST] Weather in Paris and Tokyo?[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris","days":1000000}}{"name": "get_weather", "arguments": {"city":"\\u003cTokyo\\u003e","unit":"celsius"}}]</s>[TOOL_RESULTS] {"content": 18C}[/TOOL_RESULTS][TOOL_RESULTS] {"content": 22C}[/TOOL_RESULTS]'
    )

def test_qwen_tools_renders_tools_calls_and_results() -> None:
    assert _chat(QWEN_TOOLS, TOOL_CONV, tools=TOOLS) == (
        '<|im_start|>system\n'
        'Be concise.\n'
        '\n'
        '# Tools\n'
        '\n'
        '<tools>\n'
        '{"type": "function", "function": {"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City name"},"days":{"type":["integer","null"],"description":"Days ahead"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}}\n'
        '</tools><|im_end|>\n'
        '<|im_start|>user\n'
        'Weather in Paris and Tokyo?<|im_end|>\n'
        '<|im_start|>assistant\n'
        '<tool_call>\n'
        '{"name": "get_weather", "arguments": {"city":"Paris","days":1000000}}\n'
        '{"name": "get_weather", "arguments": {"city":"\\u003cTokyo\\u003e","unit":"celsius"}}\n'
        '</tool_call><|im_end|>\n'
        '<|im_start|>user\n'
        '<tool_response>\n'
        '18C\n'
        '</tool_response><|im_end|>\n'
        '<|im_start|>user\n'
        '<tool_response>\n'
        '22C\n'
        '</tool_response><|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_qwen_tools_omits_tool_block_without_tools() -> None:
    assert _chat(QWEN_TOOLS, [{"role": "user", "content": "hi"}]) == (
        '<|im_start|>user\n'
        'hi<|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_tool_parameters_print_like_go_values() -> None:
    assert _chat(PARAMS, TOOL_CONV, tools=TOOLS) == (
        'get_weather(city: string [string]; days: [integer null] [number | null]; unit: string [string] one of [celsius fahrenheit]; ) required=[city]\n'
        'system: Be concise.\n'
        'user: Weather in Paris and Tokyo?\n'
        'assistant:  -> get_weather city=Paris days=1e+06 -> get_weather city=<Tokyo> unit=celsius\n'
        'tool: 18C\n'
        'tool: 22C\n'
    )

def test_think_values_unset_and_history_thinking_rendered() -> None:
    assert _chat(THINK, [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "thinking": "hmm"},
        {"role": "user", "content": "q2"},
    ]) == (
        '<|user|>q\n'
        '<|assistant|><think>hmm</think>a\n'
        '<|user|>q2\n'
        '<|assistant|>[think=false level= set=false]'
    )

def test_think_false_sets_is_think_set() -> None:
    assert _chat(THINK, [{"role": "user", "content": "q"}], think=False) == (
        '<|user|>q\n'
        '<|assistant|><think></think>[think=false level= set=true]'
    )

def test_think_true_maps_to_medium_level() -> None:
    assert _chat(THINK, [{"role": "user", "content": "q"}], think=True) == (
        '<|user|>q\n'
        '<|assistant|>[think=true level=medium set=true]'
    )

def test_think_level_string_passes_through() -> None:
    assert _chat(THINK, [{"role": "user", "content": "q"}], think="high") == (
        '<|user|>q\n'
        '<|assistant|>[think=true level=high set=true]'
    )

def test_chat_images_become_numbered_tags() -> None:
    assert _chat(IMAGES, [
        {"role": "user", "content": "compare [img] with", "images": [b"one", b"two"]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and this", "images": [b"three"]},
    ]) == (
        'user:[img-1]compare [img-0] with (2 images)\n'
        'assistant:ok\n'
        'user:[img-2]and this (1 images)\n'
    )

def test_generate_wraps_prompt_as_user_turn() -> None:
    assert _generate(CHATML, prompt="Why is the sky blue?") == (
        '<|im_start|>user\n'
        'Why is the sky blue?<|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_generate_request_system_overrides_model_system() -> None:
    assert _generate(CHATML, prompt="Why?", system="Be brief.", model_system="Model default") == (
        '<|im_start|>system\n'
        'Be brief.<|im_end|>\n'
        '<|im_start|>user\n'
        'Why?<|im_end|>\n'
        '<|im_start|>assistant\n'
    )

def test_generate_uses_model_system_and_message_history() -> None:
    assert _generate(LLAMA3, prompt="And then?", model_system="Model default", history=[
        {"role": "user", "content": "Once upon a time"}, {"role": "assistant", "content": "there was a llama"},
    ]) == (
        '<|start_header_id|>system<|end_header_id|>\n'
        '\n'
        'Model default<|eot_id|><|start_header_id|>user<|end_header_id|>\n'
        '\n'
        'Once upon a time<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
        '\n'
        'there was a llama<|eot_id|><|start_header_id|>user<|end_header_id|>\n'
        '\n'
        'And then?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
        '\n'
    )

def test_generate_legacy_template_renders_system_and_prompt() -> None:
    assert _generate(PHI3, prompt="Why?", system="Be brief.") == (
        '<|system|>\n'
        'Be brief.<|end|>\n'
        '<|user|>\n'
        'Why?<|end|>\n'
        '<|assistant|>\n'
    )

def test_generate_images_become_tags_in_chat_path() -> None:
    assert _generate(IMAGES, prompt="what is in [img]?", images=[b"a", b"b"]) == (
        'user:[img-1]what is in [img-0]? (2 images)\n'
    )

def test_generate_request_template_executes_without_image_tags() -> None:
    assert _generate(IMAGES, prompt="what is in [img]?", images=[b"a"], request_template=True) == (
        'user:what is in [img]? (1 images)\n'
    )

def test_generate_suffix_uses_fill_in_the_middle_values() -> None:
    assert _generate(FIM, prompt="def add(", suffix="return x") == (
        '<PRE> def add( <SUF>return x <MID>'
    )

def test_generate_without_suffix_renders_prompt_branch() -> None:
    assert _generate(FIM, prompt="def add(") == (
        'def add('
    )

def test_generate_passes_think_level() -> None:
    assert _generate(THINK, prompt="q", think="low") == (
        '<|user|>q\n'
        '<|assistant|>[think=true level=low set=true]'
    )


# --------------------------------------------------------------------------------------------------
# Cases from Ollama's own template/template_test.go (TestExecuteWithMessages, TestExecuteWithSuffix,
# TestParse, TestCollate): templates, inputs and expected strings as written there.

MISTRAL_NO_RESPONSE = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] "
MISTRAL_RESPONSE = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}"
MISTRAL_MESSAGES = (
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n"
    '{{- if eq .Role "user" }}{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n'
    "{{- end }}"
)
HELLO = [
    {"role": "user", "content": "Hello friend!"},
    {"role": "assistant", "content": "Hello human!"},
    {"role": "user", "content": "What is your name?"},
]


@pytest.mark.parametrize("template", [MISTRAL_NO_RESPONSE, MISTRAL_RESPONSE, MISTRAL_MESSAGES])
def test_ollama_mistral_case_renders_same_for_legacy_and_messages_templates(template: str) -> None:
    expected = "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "
    assert execute(parse_template(template), messages=HELLO) == expected


@pytest.mark.parametrize("template", [MISTRAL_NO_RESPONSE, MISTRAL_RESPONSE, MISTRAL_MESSAGES])
def test_ollama_mistral_system_case_puts_system_first(template: str) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant!"}, *HELLO]
    expected = "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] "
    assert execute(parse_template(template), messages=messages) == expected


@pytest.mark.parametrize("template", [
    "[INST] {{ .Prompt }}[/INST] ",
    "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
    ('\n{{- range $i, $m := .Messages }}\n{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST] '
     '{{ else if eq .Role "assistant" }}{{ .Content }}{{ end }}\n{{- end }}'),
])
def test_ollama_mistral_assistant_case_continues_last_assistant_message(template: str) -> None:
    messages = [*HELLO, {"role": "assistant", "content": "My name is Ollama and I"}]
    expected = "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I"
    assert execute(parse_template(template), messages=messages) == expected


@pytest.mark.parametrize("template", [
    ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n"
     "{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"),
    ("\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
     "<|im_start|>assistant\n"),
])
def test_ollama_chatml_case_renders_same_for_legacy_and_messages_templates(template: str) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant!"}, *HELLO]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!<|im_end|>\n"
        "<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\nWhat is your name?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert execute(parse_template(template), messages=messages) == expected


def test_ollama_suffix_case_switches_between_messages_and_fill_in_the_middle() -> None:
    t = parse_template(FIM)
    assert execute(t, messages=[{"role": "user", "content": "hello"}]) == "hello"
    assert execute(t, prompt="def add(", suffix="return x") == "<PRE> def add( <SUF>return x <MID>"


@pytest.mark.parametrize(("template", "names"), [
    ("{{ .Prompt }}", {"prompt"}),
    ("{{ .System }} {{ .Prompt }} {{ .Response }}", {"prompt", "response", "system"}),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", {"prompt", "system", "tools"}),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", {"content", "messages", "role"}),
    ('{{ range .Messages }}{{ if eq .Role "tool" }}Tool Result: {{ .ToolName }} {{ .Content }}{{ end }}{{ end }}',
     {"content", "messages", "role", "toolname"}),
])
def test_template_vars_lists_lowercased_identifiers(template: str, names: set[str]) -> None:
    # Ollama's TestParse also lists "response", which its Parse appends when absent; Vars() here is the
    # pre-append set that decides the append and the execution mode.
    assert template_vars(parse_template(template)) == names


def test_collate_merges_consecutive_user_messages() -> None:
    t = parse_template("{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}")
    assert execute(t, messages=[{"role": "user", "content": "Hello"}, {"role": "user", "content": "How are you?"}]) \
        == "[user:Hello\n\nHow are you?]"


def test_collate_keeps_consecutive_tool_messages_apart() -> None:
    t = parse_template("{{ range .Messages }}[{{ .Role }}:{{ .Content }}:{{ .ToolName }}]{{ end }}|{{ .System }}")
    messages = [
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "What's the weather?"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "72F", "tool_name": "get_temperature"},
    ]
    assert execute(t, messages=messages) == (
        "[system:You are helpful:][user:What's the weather?:][tool:sunny:get_weather][tool:72F:get_temperature]"
        "|You are helpful"
    )


def test_system_messages_join_into_system_and_stay_in_messages() -> None:
    t = parse_template("{{ .System }}|{{ range .Messages }}{{ .Role }};{{ end }}")
    messages = [{"role": "system", "content": "A"}, {"role": "user", "content": "u"}, {"role": "system", "content": "B"}]
    assert execute(t, messages=messages) == "A\n\nB|system;user;system;"


def test_roles_are_lowercased_like_api_message_decoding() -> None:
    assert _chat(CHATML, [{"role": "USER", "content": "hi"}]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# --------------------------------------------------------------------------------------------------
# Capabilities and parse checks.


def test_capabilities_follow_template_identifiers() -> None:
    assert uses_tools(parse_template(QWEN_TOOLS)) and not uses_tools(parse_template(CHATML))
    assert uses_suffix(parse_template(FIM)) and not uses_suffix(parse_template(CHATML))
    assert uses_messages(parse_template(CHATML)) and not uses_messages(parse_template(PHI3))
    assert uses_tools(parse_template("{{ if $.Tools }}t{{ end }}{{ .Prompt }}"))


def test_template_vars_ignores_text_outside_actions() -> None:
    assert template_vars(parse_template(
        "use .Tools here {{ .Suffix }}{{ range $m := .Messages }}{{ $m.Role }}{{ end }}")) >= {"suffix", "messages", "role"}
    assert "tools" not in template_vars(parse_template("use .Tools here {{ .Prompt }}"))
    assert template_vars(parse_template('{{ if eq .Role "x.Tools" }}{{ end }}')) == {"role"}


def test_template_capabilities_come_from_the_parsed_template() -> None:
    assert template_capabilities(QWEN_TOOLS) == ("tools",)
    assert template_capabilities(FIM) == ("insert",)
    assert template_capabilities(THINK) == ("thinking",)
    assert template_capabilities(CHATML) == ()
    # `.Thinking` outside a range over `.Messages` renders no tags: not a capability (Ollama's InferTags)
    assert template_capabilities("<think>{{ .Thinking }}</think>{{ range .Messages }}{{ .Content }}{{ end }}") == ()
    assert template_capabilities("{{ .Tools ") == ()


# llama3-groq-tool-use: the tag inside the range, after `if .ToolCalls` (Ollama's tools testdata shape)
GROQ_TOOLS = ('{{ range .Messages }}{{ if .ToolCalls }}{{ range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}"}'
              "</tool_call>{{ end }}{{ end }}{{ end }}")
# llama3.2: calls as bare JSON, Ollama's `{` tag
BARE_TOOLS = ('{{ range .Messages }}{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
              '"parameters": {{ .Function.Arguments }}}{{ end }}{{ end }}{{ end }}')
# no `if .ToolCalls`: the range's own text is read
RANGE_TOOLS = ('{{ range .Messages }}{{ range .ToolCalls }}<function_call>{"name": "{{ .Function.Name }}"}'
               "</function_call>{{ end }}{{ .Content }}{{ end }}")
# an action before any text: findTextNode stops there
ACTION_FIRST = "{{ range .Messages }}{{ if .ToolCalls }}{{ .Content }}<tool_call>{{ end }}{{ end }}"


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        (QWEN_TOOLS, ("<tool_call>", "</tool_call>")),
        (MISTRAL_TOOLS, ("[TOOL_CALLS] [", "]")),
        (GROQ_TOOLS, ("<tool_call>", "</tool_call>")),
        (BARE_TOOLS, ("", "")),
        (RANGE_TOOLS, ("<function_call>", "</function_call>")),
        (ACTION_FIRST, ("", "")),
        (CHATML, ("", "")),
    ],
)
def test_tool_call_tags_are_the_text_before_the_calls(template: str, tags: tuple[str, str]) -> None:
    assert tool_call_tags(parse_template(template)) == tags


def test_thinking_tags_found_around_thinking_inside_messages_range() -> None:
    t = parse_template(THINK)
    assert thinking_tags(t) == ("<think>", "</think>")
    assert uses_think(t)


def test_thinking_outside_messages_range_is_not_a_capability() -> None:
    t = parse_template("<think>{{ .Thinking }}</think>{{ range .Messages }}{{ .Content }}{{ end }}")
    assert thinking_tags(t) == ("", "")
    assert not uses_think(t)


def test_parse_template_rejects_template_call_without_argument_like_ollama() -> None:
    with pytest.raises(TemplateError, match="undefined template specified"):
        parse_template('{{ define "x" }}x{{ end }}{{ template "x" }}{{ .Prompt }}')


def test_parse_template_reports_go_syntax_errors() -> None:
    with pytest.raises(TemplateError) as info:
        parse_template("{{ range .Messages }}{{ .Content }")
    assert str(info.value) == 'template: :1: unexpected "}" in operand'


# --------------------------------------------------------------------------------------------------
# Legacy-mode details of Ollama's Execute.


def test_legacy_last_turn_runs_without_custom_functions_like_ollama() -> None:
    # Ollama renders the last legacy turn from a bare template (AddParseTree): no `json`, default
    # missingkey. `json` after the cut point is removed with the rest; before it, it fails as in Ollama.
    after = parse_template("U:{{ .Prompt }} A:{{ .Response }}{{ json .Prompt }}")
    assert execute(after, messages=HELLO) == 'U:Hello friend! A:Hello human!"Hello friend!"U:What is your name? A:'
    before = parse_template("{{ json .Prompt }} A:{{ .Response }}")
    with pytest.raises(TemplateError, match='"json" is not a defined function'):
        execute(before, messages=HELLO)


def test_legacy_cut_inside_if_drops_else_branch() -> None:
    # Ollama's deleteNode panics here (nil type assertion, a 500); the else-branch is dropped instead.
    t = parse_template("U:{{ .Prompt }}{{ if .Prompt }} A:{{ .Response }}!{{ else }}never{{ end }}|tail")
    assert execute(t, messages=PREFILL) == "U:Hello friend! A:Hello human!!|tailU:What is your name? A:My name is Ollama and I"


def test_messages_mode_with_no_messages_marshals_nil_messages_as_null() -> None:
    t = parse_template("{{ json .Messages }}|{{ json .Tools }}|{{ .Tools }}|{{ .Prompt }}")
    assert execute(t) == "null|null|null|<no value>"
    assert execute(t, tools=[]) == "null|[]|[]|<no value>"


def test_think_max_level_turns_thinking_on() -> None:
    assert _chat(THINK, [{"role": "user", "content": "q"}], think="max").endswith("[think=true level=max set=true]")


# --------------------------------------------------------------------------------------------------
# chatPrompt truncation and images.


def _by_chars(text: str) -> int:
    return len(text)


def test_truncation_keeps_everything_when_prompt_fits() -> None:
    t = parse_template(CHATML)
    out = chat_prompt(t, SYS_CONV, truncation=Truncation(_by_chars, num_ctx=10_000))
    assert out == RenderedPrompt(render_chat(t, SYS_CONV), [], 0)


def test_truncation_drops_oldest_messages_but_keeps_system() -> None:
    t = parse_template(CHATML)
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "long " * 100},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "short?"},
    ]
    out = chat_prompt(t, messages, truncation=Truncation(_by_chars, num_ctx=200))
    assert out.n_dropped == 2
    assert out.prompt == render_chat(t, [messages[0], messages[2], messages[3]])


def test_truncation_always_keeps_last_message_even_if_too_long() -> None:
    t = parse_template(CHATML)
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b" * 500}]
    out = chat_prompt(t, [messages[0], {"role": "assistant", "content": "x"}, messages[1]],
                      truncation=Truncation(_by_chars, num_ctx=10))
    assert out.n_dropped == 2
    assert out.prompt == render_chat(t, [messages[1]])


def test_truncation_never_orphans_tool_results_from_their_call() -> None:
    t = parse_template(QWEN_TOOLS)
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "long " * 100},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "content": "result"},
    ]
    out = chat_prompt(t, messages, tools=TOOLS, truncation=Truncation(_by_chars, num_ctx=10))
    # The last message is a tool result: the cut moves back to the assistant turn that called the tool.
    assert out.n_dropped == 2
    assert out.prompt == render_chat(t, [messages[0], messages[2], messages[3]], tools=TOOLS)


def test_truncation_counts_image_tokens() -> None:
    t = parse_template(IMAGES)
    messages = [
        {"role": "user", "content": "look", "images": [b"img"]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]
    fits_without_images = Truncation(_by_chars, num_ctx=100)
    assert chat_prompt(t, messages, truncation=fits_without_images).n_dropped == 0
    with_projector = Truncation(_by_chars, num_ctx=100, image_tokens=768)
    out = chat_prompt(t, messages, truncation=with_projector)
    assert out.n_dropped == 1
    assert out.images == []


def test_chat_prompt_returns_images_in_tag_order() -> None:
    out = chat_prompt(parse_template(IMAGES), [
        {"role": "user", "content": "a [img] b", "images": [b"first", b"second"]},
        {"role": "user", "content": "c", "images": [b"third"]},
    ])
    assert out.images == [b"first", b"second", b"third"]
    # collate appends the second message's text to the first but keeps only the first one's images.
    assert out.prompt == "user:[img-1]a [img-0] b\n\n[img-2]c (2 images)\n"


def test_generate_prompt_request_template_keeps_all_images_without_tags() -> None:
    out = generate_prompt(parse_template(IMAGES), prompt="p [img]", images=[b"x", b"y"], request_template=True)
    assert out.prompt == "user:p [img] (2 images)\n"
    assert out.images == [b"x", b"y"]


def test_generate_image_count_makes_placeholder_images_for_tags() -> None:
    assert _generate(IMAGES, prompt="see", images=2) == "user:[img-0][img-1]see (2 images)\n"


def test_render_does_not_mutate_caller_messages() -> None:
    messages = [{"role": "USER", "content": "a [img]", "images": [b"x"]}, {"role": "user", "content": "b"}]
    snapshot = [dict(m) for m in messages]
    _chat(IMAGES, messages)
    assert messages == snapshot


def test_template_object_from_gotemplate_works_without_parse_template() -> None:
    assert render_chat(Template.parse(CHATML), [{"role": "user", "content": "x"}]) \
        == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"


def test_malformed_message_or_tool_is_a_bad_request() -> None:
    t = parse_template(QWEN_TOOLS)
    with pytest.raises(BadRequestError, match="invalid message"):
        render_chat(t, ["not an object"])  # type: ignore[list-item]
    with pytest.raises(BadRequestError, match="invalid tool"):
        render_chat(t, [{"role": "user", "content": "x"}], tools=[["bad"]])  # type: ignore[list-item]
    with pytest.raises(BadRequestError, match="invalid tool call"):
        render_chat(t, [{"role": "assistant", "content": "", "tool_calls": ["bad"]}])
