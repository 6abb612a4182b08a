"""Grammar-constrained tool calls for models whose prompt comes from an Ollama Go template.

llama.cpp's chat code builds tool-call grammars for GGUF (Jinja) templates; a Go template has
none, so a model could write a malformed call that no parser reads. When a chat request has
`tools`, sampling is free until the model starts a call — `<tool_call>` (the ChatML / Hermes
shape Ollama's library templates use) or a bare `{"name"` — and from there the grammar holds it
to a JSON call `{"name": <one of the tools>, "arguments": <that tool's parameters>}`, closed by
`</tool_call>` when it opened with `<tool_call>`, or by the closing code fence when a bare call
sits in one (```` ```json ```` is free text before the trigger).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyollama.engine.schema_grammar import SchemaError, rename_root, schema_grammar
from pyollama.errors import BadRequestError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
BARE_CALL_START = '{"name"'

_CALL_RULE = "pyollama-tool-call"


@dataclass(frozen=True)
class ToolCallGrammar:
    grammar: str
    triggers: list[dict[str, Any]] = field(default_factory=list)


def _call_schema(tool: Any) -> dict[str, Any] | None:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
        return None
    parameters = function.get("parameters")
    arguments = dict(parameters) if isinstance(parameters, Mapping) and parameters else {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_call_grammar(tools: Sequence[Any]) -> ToolCallGrammar | None:
    """A lazy grammar for calls to `tools` (None when no tool has a usable name).

    BadRequestError when a tool's parameters are a JSON schema llama.cpp cannot turn into a
    grammar: unconstrained calls would be worse than a clear answer.
    """
    schemas = [s for s in (_call_schema(t) for t in tools) if s is not None]
    if not schemas:
        return None
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    try:
        call = schema_grammar(schema, strict=False)
    except SchemaError as e:
        raise BadRequestError(f"invalid tool parameters schema: {e.reason}") from e
    ws = '( "\\n" | " " )?'
    grammar = (
        f'root ::= "{TOOL_CALL_OPEN}" {ws} {_CALL_RULE} {ws} "{TOOL_CALL_CLOSE}"'
        f' ( {ws} "{TOOL_CALL_OPEN}" {ws} {_CALL_RULE} {ws} "{TOOL_CALL_CLOSE}" )* | {_CALL_RULE} ( {ws} "```" )?\n'
        + rename_root(call, _CALL_RULE)
    )
    triggers = [{"type": "word", "value": TOOL_CALL_OPEN}, {"type": "word", "value": BARE_CALL_START}]
    return ToolCallGrammar(grammar=grammar, triggers=triggers)


__all__ = ["ToolCallGrammar", "tool_call_grammar"]
