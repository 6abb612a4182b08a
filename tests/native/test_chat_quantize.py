from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyollama.llama import ChatTemplates, Model, quantize


def test_chat_template_renders_messages_with_the_gguf_template(smollm2: Model) -> None:
    params = ChatTemplates(smollm2).apply(json.dumps([{"role": "user", "content": "Hi"}]))
    assert params.prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


# A Hermes/Qwen-style Jinja template with tool support (written for this test).
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools:\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}"
    "\n</tools>\nCall a tool as <tool_call>\n{\"name\": <name>, \"arguments\": <args>}\n</tool_call><|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or message.role == 'system' %}"
    "{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}{{ '<|im_start|>assistant' }}"
    "{%- if message.content %}{{ '\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}{%- set tool_call = tool_call.function %}"
    "{{ '\n<tool_call>\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' }}"
    "{{ tool_call.arguments | tojson }}{{ '}\n</tool_call>' }}{%- endfor %}{{ '<|im_end|>\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{ '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_chat_parse_extracts_tool_calls_with_a_tool_template(smollm2: Model) -> None:
    params = ChatTemplates(smollm2, TOOL_TEMPLATE).apply(
        json.dumps([{"role": "user", "content": "Weather in Paris?"}]), json.dumps(TOOLS)
    )
    assert "get_weather" in params.prompt
    assert params.grammar and params.grammar_lazy
    parsed = params.parse('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert parsed["tool_calls"][0]["name"] == "get_weather"
    assert json.loads(parsed["tool_calls"][0]["arguments"]) == {"city": "Paris"}
    assert parsed["content"] == ""


def test_chat_parse_of_plain_text_has_no_tool_calls(smollm2: Model) -> None:
    params = ChatTemplates(smollm2).apply(json.dumps([{"role": "user", "content": "Hi"}]))
    parsed = params.parse("Hello there")
    assert parsed == {"content": "Hello there", "reasoning_content": "", "tool_calls": []}


def test_invalid_messages_raise_value_error(smollm2: Model) -> None:
    with pytest.raises(ValueError):
        ChatTemplates(smollm2).apply("not json")


def test_quantize_writes_a_loadable_model(smollm2_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "q8.gguf"
    from pyollama import _native

    _native.quantize(str(smollm2_path), str(out), "Q8_0", allow_requantize=True)
    model = Model(out)
    assert model.ftype_name.startswith("Q8_0")
    with pytest.raises(ValueError, match="unsupported quantization type"):
        quantize(smollm2_path, tmp_path / "x.gguf", "Q9_9")
    with pytest.raises(RuntimeError):
        quantize(smollm2_path, tmp_path / "y.gguf", "Q4_K_M")  # already quantized: refused by llama.cpp
