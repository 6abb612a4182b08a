"""OpenAI Responses API request bodies (`POST /v1/responses`) as Ollama chat requests, following
Ollama's `openai.FromResponsesRequest` (openai/responses.go).

The mapping: `instructions` is a system message first; `input` is a string (one user message) or
a list of items: messages (`{"role", "content"}`, `type` optional; content a string or
`input_text` / `output_text` / `input_image` parts), `function_call` items (the assistant's
earlier calls; consecutive calls join one assistant message), `function_call_output` items (tool
messages, linked by `call_id`) and `reasoning` items (their text, `encrypted_content` as Ollama
writes it, becomes the next assistant message's thinking). `max_output_tokens` is `num_predict`,
`temperature` defaults to 1, `top_p` is passed when given, `reasoning.effort` is `think`
(`none` is false), `text.format` of type `json_schema` is the format. Tools are flat
(`{"type": "function", "name", "description", "parameters"}`) and become Ollama's nested ones.

Beyond Ollama (each a 400 where Ollama would silently do something else, or a field it drops):
`tool_choice` narrows the tools as on /v1/chat/completions; `text.format` `json_object` is JSON
mode; tools of another type than `function` are refused; `background`, `conversation` and
`previous_response_id` are refused (nothing is stored: every request carries its conversation);
input files are refused as Ollama does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyollama.errors import BadRequestError, NotFoundError
from pyollama.golang import json as gojson
from pyollama.golang.strconv import quote
from pyollama.server.bodies import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    MAP,
    STRING,
    ChatRequest,
    FieldType,
    Message,
    decode_struct,
    list_of,
    struct_of,
)
from pyollama.server.openai_bodies import decode_image_url

_TOOL_SPEC: dict[str, FieldType] = {
    "type": STRING,
    "name": STRING,
    "description": STRING,
    "strict": BOOL,
    "parameters": MAP,
}

RESPONSES_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "background": BOOL,
    "conversation": ANY,
    "include": ANY,
    "input": ANY,
    "instructions": STRING,
    "max_output_tokens": INT,
    "reasoning": struct_of(
        "openai.ResponsesReasoning", {"effort": STRING, "generate_summary": STRING, "summary": STRING}
    ),
    "temperature": FLOAT,
    "text": struct_of(
        "openai.ResponsesText",
        {"format": struct_of("openai.ResponsesTextFormat", {"type": STRING, "name": STRING, "schema": ANY,
                                                            "strict": BOOL})},
    ),
    "top_p": FLOAT,
    "truncation": STRING,
    "tools": list_of(struct_of("openai.ResponsesTool", _TOOL_SPEC)),
    "tool_choice": ANY,
    "stream": BOOL,
    "previous_response_id": STRING,
    "metadata": ANY,
}

# reasoning.effort -> Ollama's think value (Ollama's responses.go accepts exactly these)
_EFFORTS: dict[str, bool | str] = {"none": False, "low": "low", "medium": "medium", "high": "high", "max": "max"}


@dataclass
class ResponsesCall:
    """A decoded /v1/responses request: the chat request to run, and the request's own fields
    that the response object echoes back."""

    chat: ChatRequest
    instructions: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    truncation: str = "disabled"
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    temperature: float = 1.0
    top_p: float = 1.0
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# -- input items ----------------------------------------------------------------------------------


def _content(value: Any, where: str) -> tuple[str, list[bytes]]:
    """A message's (or a function output's) content: its text joined, and its images."""
    if isinstance(value, str):
        return value, []
    if value is None:
        return "", []
    if not isinstance(value, list):
        raise BadRequestError(f"{where} must be a string or array: json: cannot unmarshal {gojson.kind(value)} "
                              "into Go value of type []json.RawMessage")
    text: list[str] = []
    images: list[bytes] = []
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or not isinstance(kind, str):
            raise BadRequestError(f"{where}[{i}]: content part must be an object with a string type")
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text", ""), str):
                raise BadRequestError(f"{where}[{i}]: text must be a string")
            text.append(part.get("text", ""))
        elif kind == "input_image":
            url = part.get("image_url")
            if isinstance(url, str) and url:
                images.append(decode_image_url(url))
            elif part.get("file_id"):
                raise BadRequestError("image file_id inputs are not supported, please use base64 encoded data instead")
        elif kind == "input_file":
            raise BadRequestError("file inputs are not currently supported")
        else:
            raise BadRequestError(f"{where}[{i}]: unknown content type: {kind}")
    return "".join(text), images


def _arguments(text: Any) -> dict[str, Any]:
    if text in (None, ""):
        return {}
    if not isinstance(text, str):
        raise BadRequestError("failed to parse function call arguments: arguments must be a string")
    try:
        value = gojson.decode(text)
    except gojson.DecodeError as exc:
        raise BadRequestError(f"failed to parse function call arguments: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequestError(
            f"failed to parse function call arguments: json: cannot unmarshal {gojson.kind(value)} into Go value "
            "of type api.ToolCallFunctionArguments"
        )
    return value


def _reasoning_text(item: Mapping[str, Any]) -> str:
    """The thinking a `reasoning` item carries back: `encrypted_content` (where Ollama and pyollama
    write the thinking as plain text), else its summary texts."""
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted:
        return encrypted
    summary = item.get("summary")
    parts = [s.get("text", "") for s in summary if isinstance(s, dict)] if isinstance(summary, list) else []
    return "".join(p for p in parts if isinstance(p, str))


def _input_messages(items: list[Any]) -> list[Message]:
    messages: list[Message] = []
    call_names: dict[str, str] = {}
    thinking = ""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequestError(f"input[{i}]: input item must be an object")
        kind = item.get("type") or ("message" if item.get("role") else "")
        if kind == "reasoning":
            thinking = _reasoning_text(item)
        elif kind == "message":
            text, images = _content(item.get("content"), f"input[{i}]: content")
            message = Message(role=str(item.get("role", "")).lower(), content=text, images=images)
            if message.role == "assistant" and thinking:
                message.thinking, thinking = thinking, ""
            messages.append(message)
        elif kind == "function_call":
            name, call_id = item.get("name", ""), item.get("call_id", "")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise BadRequestError(f"input[{i}]: function_call name and call_id must be strings")
            call: dict[str, Any] = {"function": {"name": name, "arguments": _arguments(item.get("arguments"))}}
            if call_id:
                call = {"id": call_id, **call}
                call_names[call_id] = name
            if messages and messages[-1].role == "assistant":
                messages[-1].tool_calls.append(call)
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
            if thinking:
                messages[-1].thinking, thinking = thinking, ""
        elif kind == "function_call_output":
            call_id = item.get("call_id", "")
            text, images = _content(item.get("output"), f"input[{i}]: output")
            call_id = call_id if isinstance(call_id, str) else ""
            messages.append(Message(role="tool", content=text, images=images, tool_call_id=call_id,
                                    tool_name=call_names.get(call_id, "")))
        elif kind == "":
            raise BadRequestError(f"input[{i}]: input item missing required 'type' field")
        else:
            raise BadRequestError(f"input[{i}]: unknown input item type: {quote(str(kind))}")
    if thinking:
        messages.append(Message(role="assistant", thinking=thinking))
    return messages


# -- tools, format, think ---------------------------------------------------------------------


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A flat Responses tool as Ollama's `{"type": "function", "function": {...}}`."""
    kind = tool.get("type", "")
    if kind != "function":
        raise BadRequestError(f"tool type {quote(str(kind))} is not supported; only function tools are")
    function: dict[str, Any] = {"name": tool.get("name", "")}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _chosen_tools(tools: list[dict[str, Any]], choice: Any) -> list[dict[str, Any]]:
    """The tools the model sees for `tool_choice`: "none" none, a named function only that one,
    "auto"/"required" all (a call is not forced, as on /v1/chat/completions)."""
    if choice is None or choice in ("auto", "required"):
        return tools
    if choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        chosen = [t for t in tools if t["function"]["name"] == choice["name"]]
        if not chosen:
            raise BadRequestError(f"tool_choice names {quote(choice['name'])}, which is not one of the tools")
        return chosen
    raise BadRequestError('invalid tool_choice: expected "none", "auto", "required" or a function')


def _format(text: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """(Ollama's format, the `text.format` echoed back)."""
    spec = (text or {}).get("format")
    if spec is None:
        return None, {"type": "text"}
    kind = spec.get("type", "")
    echoed = {key: spec[key] for key in ("type", "name", "schema", "strict") if key in spec}
    if kind == "json_schema":
        return spec.get("schema"), echoed
    if kind == "json_object":
        return "json", echoed
    if kind in ("text", ""):
        return None, echoed
    raise BadRequestError(f"invalid text format type {quote(str(kind))}: expected text, json_schema or json_object")


def _think(reasoning: Mapping[str, Any]) -> bool | str | None:
    effort = reasoning.get("effort", "")
    if effort == "":
        return None
    if effort not in _EFFORTS:
        raise BadRequestError(
            f'invalid reasoning value: {quote(effort)} (must be "high", "medium", "low", "max", or "none")'
        )
    return _EFFORTS[effort]


# -- the request --------------------------------------------------------------------------------------


def parse_responses(body: Any) -> ResponsesCall:
    fields = decode_struct(body, RESPONSES_SPEC, "ResponsesRequest")
    conversation = fields.get("conversation")
    if fields.get("background") or conversation not in (None, ""):
        raise BadRequestError("background and conversation are not supported; send the whole conversation in input")
    if fields.get("previous_response_id"):
        # Ollama's answer for an id it does not hold; pyollama stores no responses at all.
        raise NotFoundError("previous_response_id was not found or has expired; resend the full conversation")
    messages: list[Message] = []
    instructions = fields.get("instructions", "")
    if instructions:
        messages.append(Message(role="system", content=instructions))
    value = fields.get("input")
    if isinstance(value, str):
        if value:
            messages.append(Message(role="user", content=value))
    elif isinstance(value, list):
        messages += _input_messages(value)
    elif value is not None:
        raise BadRequestError(f"input must be a string or array: json: cannot unmarshal {gojson.kind(value)} "
                              "into Go value of type []json.RawMessage")

    options: dict[str, Any] = {"temperature": fields.get("temperature", 1.0)}
    if "top_p" in fields:
        options["top_p"] = fields["top_p"]
    if "max_output_tokens" in fields:
        options["num_predict"] = fields["max_output_tokens"]
    sent_tools = [t for t in fields.get("tools", []) if t is not None]
    tools = _chosen_tools([_tool(t) for t in sent_tools], fields.get("tool_choice"))
    fmt, text_format = _format(fields.get("text"))
    reasoning = fields.get("reasoning", {})
    chat = ChatRequest(
        model=fields.get("model", ""),
        stream=fields.get("stream", False),
        options=options,
        format=fmt,
        think=_think(reasoning),
        messages=messages,
        tools=tools,
    )
    echoed_reasoning = None
    if reasoning.get("effort") or reasoning.get("summary"):
        echoed_reasoning = {"effort": reasoning.get("effort") or None, "summary": reasoning.get("summary") or None}
    metadata = fields.get("metadata")
    return ResponsesCall(
        chat=chat,
        instructions=instructions,
        tools=[{"type": t.get("type", ""), "name": t.get("name", ""), "description": t.get("description"),
                "strict": t.get("strict"), "parameters": t.get("parameters")} for t in sent_tools],
        tool_choice=fields.get("tool_choice", "auto"),
        truncation=fields.get("truncation", "disabled"),
        text_format=text_format,
        temperature=fields.get("temperature", 1.0),
        top_p=fields.get("top_p", 1.0),
        reasoning=echoed_reasoning,
        max_output_tokens=fields.get("max_output_tokens"),
        metadata=metadata if isinstance(metadata, dict) else {},
    )


__all__ = ["RESPONSES_SPEC", "ResponsesCall", "parse_responses"]
