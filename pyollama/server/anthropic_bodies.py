"""Anthropic Messages API request bodies (`POST /v1/messages`) as Ollama chat requests, following
Ollama's `anthropic.FromMessagesRequest` and `AnthropicMessagesMiddleware`.

The mapping: `system` (a string, or text blocks joined) is a system message first; each message's
content is a string or a list of blocks: `text` blocks are joined into the message's content,
`image` blocks (base64 sources) are its images, `tool_use` blocks its tool calls (`id` kept),
`thinking` its thinking, and `tool_result` blocks become tool messages (`tool_call_id` from
`tool_use_id`; in a user message they come before its text, as Ollama orders them).
`max_tokens` (required, positive) is `num_predict`; `temperature`, `top_p`, `top_k` are passed
when given; `stop_sequences` is `stop`. `thinking: {"type": "enabled"}` asks for thinking,
`"disabled"` turns it off, else `output_config.effort` is the level; a model that cannot think
ignores it (Ollama's `relax_thinking`). Tools (`{"name", "description", "input_schema"}`) become
Ollama's function tools.

Beyond Ollama: `tool_choice` narrows the tools (`none`: none, `tool`: the named one; `auto` and
`any` send them all, a call is not forced); Anthropic's server tools that run elsewhere
(`web_search_*`, which Ollama sends to ollama.com) and content blocks it cannot use (documents,
unknown types) are refused with a 400 rather than dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.golang import json as gojson
from pyollama.golang.strconv import quote
from pyollama.server.bodies import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STRING,
    ChatRequest,
    FieldType,
    Message,
    decode_struct,
    list_of,
    struct_of,
)

MESSAGES_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "max_tokens": INT,
    "messages": list_of(struct_of("anthropic.MessageParam", {"role": STRING, "content": ANY})),
    "system": ANY,
    "stream": BOOL,
    "temperature": FLOAT,
    "top_p": FLOAT,
    "top_k": INT,
    "stop_sequences": list_of(STRING),
    "tools": list_of(
        struct_of("anthropic.Tool", {"type": STRING, "name": STRING, "description": STRING, "input_schema": ANY})
    ),
    "tool_choice": struct_of("anthropic.ToolChoice", {"type": STRING, "name": STRING,
                                                      "disable_parallel_tool_use": BOOL}),
    "thinking": struct_of("anthropic.ThinkingConfig", {"type": STRING, "budget_tokens": INT}),
    "metadata": struct_of("anthropic.Metadata", {"user_id": STRING}),
    "output_config": struct_of("anthropic.OutputConfig", {"effort": STRING}),
}

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "max", "xhigh": "high"}
# Blocks that carry nothing a local model can use, dropped as Ollama drops them.
_IGNORED_BLOCKS = ("redacted_thinking",)


@dataclass
class MessagesCall:
    """A decoded /v1/messages request: the chat request to run, and Ollama's estimate of its
    input tokens (reported in `message_start`, before the prompt has been counted)."""

    chat: ChatRequest
    estimated_input_tokens: int = 0


# -- content blocks -------------------------------------------------------------------------------


def _image(source: Any, error: str = "invalid image source") -> bytes:
    if not isinstance(source, dict):
        raise BadRequestError(error)
    if source.get("type") != "base64":
        raise BadRequestError(f"invalid image source type: {source.get('type', '')}. Only base64 images are supported.")
    data = source.get("data", "")
    try:
        return base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"invalid base64 image data: {exc}") from None


def _tool_result_content(content: Any) -> tuple[str, list[bytes]]:
    """A `tool_result`'s content: a string, or text and image blocks."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    text: list[str] = []
    images: list[bytes] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif block.get("type") == "image":
            images.append(_image(block.get("source"), "invalid tool_result image source"))
    return "".join(text), images


def _blocks(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise BadRequestError(f"json: cannot unmarshal {gojson.kind(content)} into Go struct field {path} of type "
                              "[]anthropic.ContentBlock")
    for block in content:
        if not isinstance(block, dict):
            raise BadRequestError(f"json: cannot unmarshal {gojson.kind(block)} into Go struct field {path} of type "
                                  "anthropic.ContentBlock")
    return content


def _string(block: Mapping[str, Any], key: str) -> str:
    value = block.get(key, "")
    if not isinstance(value, str):
        raise BadRequestError(f"json: cannot unmarshal {gojson.kind(value)} into Go struct field ContentBlock.{key} "
                              "of type string")
    return value


def _tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    if not _string(block, "id"):
        raise BadRequestError("tool_use block missing required 'id' field")
    if not _string(block, "name"):
        raise BadRequestError("tool_use block missing required 'name' field")
    arguments = block.get("input") or {}
    if not isinstance(arguments, dict):
        raise BadRequestError(f"json: cannot unmarshal {gojson.kind(arguments)} into Go struct field "
                              "ContentBlock.input of type api.ToolCallFunctionArguments")
    return {"id": block["id"], "function": {"name": block["name"], "arguments": arguments}}


def _message(raw: Mapping[str, Any], call_names: dict[str, str]) -> list[Message]:
    """One Anthropic message as Ollama's messages (Ollama's convertMessage)."""
    role = str(raw.get("role", "")).lower()
    text: list[str] = []
    images: list[bytes] = []
    calls: list[dict[str, Any]] = []
    thinking = ""
    results: list[Message] = []
    for block in _blocks(raw.get("content"), "MessageParam.content"):
        kind = block.get("type")
        if kind == "text":
            text.append(_string(block, "text"))
        elif kind == "image":
            images.append(_image(block.get("source")))
        elif kind == "tool_use":
            call = _tool_call(block)
            call_names[call["id"]] = call["function"]["name"]
            calls.append(call)
        elif kind == "tool_result":
            tool_use_id = _string(block, "tool_use_id")
            content, result_images = _tool_result_content(block.get("content"))
            results.append(Message(role="tool", content=content, images=result_images, tool_call_id=tool_use_id,
                                   tool_name=call_names.get(tool_use_id, "")))
        elif kind == "thinking":
            thinking = _string(block, "thinking")
        elif kind in _IGNORED_BLOCKS:
            continue
        else:
            raise BadRequestError(f"content block type {quote(str(kind))} is not supported")
    out = results if role == "user" else []
    if text or images or calls or thinking:
        out.append(Message(role=role, content="".join(text), images=images, tool_calls=calls, thinking=thinking))
    if role != "user":
        out += results
    return out


def _system(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(b["text"] for b in value
                       if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
    return ""


# -- tools, thinking ------------------------------------------------------------------------------


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    name, kind = tool.get("name", ""), tool.get("type", "")
    if kind.startswith("web_search"):
        raise BadRequestError(f"tool type {quote(kind)} is not supported: pyollama runs no server tools")
    schema = tool.get("input_schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequestError(f"invalid input_schema for tool {quote(name)}: json: cannot unmarshal "
                              f"{gojson.kind(schema)} into Go value of type api.ToolFunctionParameters")
    function: dict[str, Any] = {"name": name}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = schema if schema is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _chosen_tools(tools: list[dict[str, Any]], choice: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    kind = (choice or {}).get("type", "auto")
    if kind in ("auto", "any", ""):
        return tools
    if kind == "none":
        return []
    if kind == "tool":
        name = (choice or {}).get("name", "")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise BadRequestError(f"tool_choice names {quote(name)}, which is not one of the tools")
        return chosen
    raise BadRequestError(f'invalid tool_choice type {quote(kind)}: expected "auto", "any", "tool" or "none"')


def _think(fields: Mapping[str, Any]) -> bool | str | None:
    kind = (fields.get("thinking") or {}).get("type")
    if kind == "enabled":
        return True
    if kind == "disabled":
        return False
    effort = str((fields.get("output_config") or {}).get("effort", "")).strip().lower()
    return _EFFORTS.get(effort)


def estimate_tokens(fields: Mapping[str, Any]) -> int:
    """Ollama's estimate (a quarter of the characters of the system prompt, roles, texts,
    thinking, tool uses and results, and tools), at least 1 when there is anything."""
    total = len(_system(fields.get("system")))
    for message in fields.get("messages", []):
        if not message:
            continue
        total += len(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
            continue
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            for key in ("text", "thinking"):
                if isinstance(block.get(key), str):
                    total += len(block[key])
            if block.get("type") in ("tool_use", "tool_result"):
                total += len(json.dumps(block, separators=(",", ":")))
    for tool in fields.get("tools", []):
        if tool:
            schema = tool.get("input_schema")
            total += len(tool.get("name", "")) + len(tool.get("description", ""))
            total += len(json.dumps(schema, separators=(",", ":"))) if schema is not None else 0
    tokens = total // 4
    return max(tokens, 1) if fields.get("messages") or fields.get("system") is not None else tokens


# -- the request ------------------------------------------------------------------------------------


def parse_messages(body: Any) -> MessagesCall:
    fields = decode_struct(body, MESSAGES_SPEC, "MessagesRequest")
    if not fields.get("model"):
        raise BadRequestError("model is required")
    if fields.get("max_tokens", 0) <= 0:
        raise BadRequestError("max_tokens is required and must be positive")
    raw_messages = [m for m in fields.get("messages", []) if m is not None]
    if not raw_messages:
        raise BadRequestError("messages is required")
    messages: list[Message] = []
    system = _system(fields.get("system"))
    if system:
        messages.append(Message(role="system", content=system))
    call_names: dict[str, str] = {}
    for raw in raw_messages:
        messages += _message(raw, call_names)

    options: dict[str, Any] = {"num_predict": fields["max_tokens"]}
    for key in ("temperature", "top_p", "top_k"):
        if key in fields:
            options[key] = fields[key]
    stops = [s for s in fields.get("stop_sequences", []) if s is not None]
    if stops:
        options["stop"] = stops
    tools = _chosen_tools([_tool(t) for t in fields.get("tools", []) if t is not None], fields.get("tool_choice"))
    chat = ChatRequest(
        model=fields["model"],
        stream=fields.get("stream", False),
        options=options,
        think=_think(fields),
        messages=messages,
        tools=tools,
    )
    return MessagesCall(chat=chat, estimated_input_tokens=estimate_tokens(fields))


__all__ = ["MESSAGES_SPEC", "MessagesCall", "estimate_tokens", "parse_messages"]
