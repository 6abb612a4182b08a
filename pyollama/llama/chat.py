"""The GGUF's own Jinja chat template, through llama.cpp's common chat code.

`ChatTemplates(model).apply(messages_json, tools_json, ...)` renders a prompt and
returns `ChatParams` (prompt, grammar for tool calls, triggers, stops) whose
`parse(text)` extracts content, reasoning and tool calls from a reply.
"""

from __future__ import annotations

import jinja2
import jinja2.sandbox

from pyollama import _native

ChatParams = _native.ChatParams

# Inputs llama.cpp's template probing renders with: plain chat, tools, tool calls and results.
_PROBES: tuple[dict[str, object], ...] = (
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
    {
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}, "id": "c1"}]},
            {"role": "tool", "content": "r", "name": "f", "tool_call_id": "c1"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                    "parameters": {"type": "object", "properties": {}}}}],
    },
)


def check_template_terminates(template: str) -> None:
    """Refuse a Jinja template that recurses without end.

    llama.cpp's Jinja runtime has no recursion limit: such a template overflows the C stack
    and kills the process. Python's jinja2 stops at the interpreter's recursion limit, so
    rendering the probes with it first turns that crash into a ValueError. Other errors are
    left for llama.cpp's own parser to report (its dialect differs in details).
    """
    env = jinja2.sandbox.ImmutableSandboxedEnvironment()
    env.globals.update(raise_exception=lambda *_: "", strftime_now=lambda *_: "")
    try:
        compiled = env.from_string(template)
    except Exception:  # noqa: BLE001 - llama.cpp's parser reports syntax errors in its own dialect
        return
    for probe in _PROBES:
        try:
            compiled.render(add_generation_prompt=True, bos_token="", eos_token="", **probe)
        except RecursionError:
            raise ValueError("invalid chat template: it recurses without end") from None
        except Exception:  # noqa: BLE001, S112 - only recursion matters here
            continue


class ChatTemplates(_native.ChatTemplates):
    """The model's chat template (or an override), checked before llama.cpp renders it."""

    def __init__(self, model: _native.Model, override_template: str = "") -> None:
        source = override_template or model.chat_template() or ""
        if source:
            check_template_terminates(source)
        super().__init__(model, override_template)
