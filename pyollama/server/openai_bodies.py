"""OpenAI request bodies as Ollama's requests, as Ollama's `openai` package decodes them (API.md §17).

An OpenAI body becomes the `ChatRequest`, `GenerateRequest` or `EmbedRequest` the Ollama
routes run, so everything below (model lookup, templates, batching, prompt cache, grammars,
tool-call parsing) is the same code. The answers go back through openai_shapes.py.

Decoding follows Go's `ShouldBindJSON` into Ollama's `openai.*Request` structs, so type errors
read as Go's (`json: cannot unmarshal ... into Go struct field ChatCompletionRequest.model of
type string`). pyollama goes beyond Ollama in two places: `max_completion_tokens` is honoured
(Ollama reads only the deprecated `max_tokens`), and `tool_choice` narrows the tools the model
sees ("none": no tools, a named function: only that one). "auto" and "required" send the tools
as they are: as in Ollama a call is not forced, but once the model starts one the tool-call
grammar holds it to the tools' schemas.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyollama.engine.chat_format import tool_calls_from_openai
from pyollama.errors import BadRequestError
from pyollama.golang.fmt import type_name
from pyollama.server.bodies import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STRING,
    TOOLS,
    ChatRequest,
    EmbedRequest,
    FieldType,
    GenerateRequest,
    Message,
    decode_struct,
    list_of,
    struct_of,
)

# -- request shapes (Ollama's openai.*Request structs) ------------------------------------------

_FUNCTION_CALL_SPEC: dict[str, FieldType] = {"name": STRING, "arguments": STRING}
_TOOL_CALL_SPEC: dict[str, FieldType] = {
    "id": STRING,
    "index": INT,
    "type": STRING,
    "function": struct_of("openai.ToolCallFunction", _FUNCTION_CALL_SPEC),
}
_MESSAGE_SPEC: dict[str, FieldType] = {
    "role": STRING,
    "content": ANY,
    "reasoning": STRING,
    "tool_calls": list_of(struct_of("openai.ToolCall", _TOOL_CALL_SPEC)),
    "name": STRING,
    "tool_call_id": STRING,
}
_STREAM_OPTIONS = struct_of("openai.StreamOptions", {"include_usage": BOOL})

CHAT_COMPLETION_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "messages": list_of(struct_of("openai.Message", _MESSAGE_SPEC)),
    "stream": BOOL,
    "stream_options": _STREAM_OPTIONS,
    "max_tokens": INT,
    "max_completion_tokens": INT,
    "seed": INT,
    "stop": ANY,
    "temperature": FLOAT,
    "frequency_penalty": FLOAT,
    "presence_penalty": FLOAT,
    "top_p": FLOAT,
    "response_format": struct_of(
        "openai.ResponseFormat",
        {"type": STRING, "json_schema": struct_of("openai.JsonSchema", {"schema": ANY})},
    ),
    "tools": TOOLS,
    "tool_choice": ANY,
    "reasoning": struct_of("openai.Reasoning", {"effort": STRING}),
    "reasoning_effort": STRING,
    "logprobs": BOOL,
    "top_logprobs": INT,
    "_debug_render_only": BOOL,
}

COMPLETION_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "prompt": STRING,
    "frequency_penalty": FLOAT,
    "max_tokens": INT,
    "presence_penalty": FLOAT,
    "seed": INT,
    "stop": ANY,
    "stream": BOOL,
    "stream_options": _STREAM_OPTIONS,
    "temperature": FLOAT,
    "top_p": FLOAT,
    "suffix": STRING,
    "logprobs": INT,
    "_debug_render_only": BOOL,
}

EMBEDDING_SPEC: dict[str, FieldType] = {
    "input": ANY,
    "model": STRING,
    "dimensions": INT,
    "encoding_format": STRING,
}

# reasoning effort -> Ollama's think value
_EFFORTS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
_IMAGE_TYPES = ("jpeg", "jpg", "png", "webp")


# -- chat completions ---------------------------------------------------------------------------


@dataclass
class OpenAIChat:
    chat: ChatRequest
    include_usage: bool = False


def decode_image_url(url: str) -> bytes:
    """An image sent as a base64 data URL (chat `image_url` parts, Responses `input_image`)."""
    if url.startswith(("http://", "https://")):
        raise BadRequestError("image URLs are not currently supported, please use base64 encoded data instead")
    if url.startswith("data:;base64,"):
        data = url[len("data:;base64,") :]
    else:
        for kind in _IMAGE_TYPES:
            prefix = f"data:image/{kind};base64,"
            if url.startswith(prefix):
                data = url[len(prefix) :]
                break
        else:
            raise BadRequestError("invalid image input")
    return _b64(data, "invalid image input")


def _b64(data: str, error: str) -> bytes:
    try:
        # Go's StdEncoding: padding required, CR and LF ignored.
        return base64.b64decode(data.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(error) from None


def _image_part(part: Mapping[str, Any]) -> bytes:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise BadRequestError("invalid message format")
    return decode_image_url(url)


def _audio_part(part: Mapping[str, Any]) -> bytes:
    audio = part.get("input_audio")
    data = audio.get("data") if isinstance(audio, dict) else None
    if not isinstance(data, str):
        raise BadRequestError("invalid message format")
    return _b64(data, "invalid message format")


def _tool_name_for(messages: list[dict[str, Any]], call_id: str) -> str:
    """The function name of the latest earlier call with this id (last one wins, as in Ollama)."""
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            if call and call.get("id") == call_id:
                return str((call.get("function") or {}).get("name", ""))
    return ""


def _messages(raw: list[dict[str, Any]]) -> list[Message]:
    messages: list[Message] = []
    for msg in raw:
        role = str(msg.get("role", "")).lower()
        tool_name = ""
        if role == "tool":
            tool_name = msg.get("name", "") or (_tool_name_for(raw, msg["tool_call_id"]) if msg.get("tool_call_id") else "")
        calls_raw = [c for c in msg.get("tool_calls", []) if c is not None]
        content = msg.get("content")
        if isinstance(content, str):
            messages.append(
                Message(
                    role=role,
                    content=content,
                    thinking=msg.get("reasoning", ""),
                    tool_calls=tool_calls_from_openai(calls_raw),
                    tool_name=tool_name,
                    tool_call_id=msg.get("tool_call_id", ""),
                )
            )
        elif isinstance(content, list):
            # Each part becomes a message of its own with the same role (Ollama's FromChatRequest).
            for part in content:
                if not isinstance(part, dict):
                    raise BadRequestError("invalid message format")
                kind = part.get("type")
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise BadRequestError("invalid message format")
                    messages.append(Message(role=role, content=part["text"]))
                elif kind == "image_url":
                    messages.append(Message(role=role, images=[_image_part(part)]))
                elif kind == "input_audio":
                    messages.append(Message(role=role, images=[_audio_part(part)]))
                else:
                    raise BadRequestError("invalid message format")
            if messages and calls_raw:
                last = messages[-1]
                last.tool_calls = tool_calls_from_openai(calls_raw)
                last.tool_name = tool_name
                last.tool_call_id = msg.get("tool_call_id", "")
                last.thinking = msg.get("reasoning", "")
        else:
            # content may be left out only by a message that carries tool calls
            if "tool_calls" not in msg:
                raise BadRequestError(f"invalid message content type: {type_name(content, json_decoded=True)}")
            messages.append(
                Message(
                    role=role,
                    thinking=msg.get("reasoning", ""),
                    tool_calls=tool_calls_from_openai(calls_raw),
                    tool_call_id=msg.get("tool_call_id", ""),
                )
            )
    return messages


def _stops(value: Any, strict: bool) -> list[str] | None:
    """`stop` as a string or a list of strings; `strict` (completions) refuses other elements."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        stops = []
        for item in value:
            if isinstance(item, str):
                stops.append(item)
            elif strict:
                raise BadRequestError(f"invalid type for 'stop' field: {type_name(item, json_decoded=True)}")
        return stops
    return None


def _think(fields: Mapping[str, Any]) -> bool | str | None:
    if "reasoning" in fields:
        effort = fields["reasoning"].get("effort", "")
    else:
        effort = fields.get("reasoning_effort", "")
    if effort == "":
        return None
    if effort not in _EFFORTS:
        raise BadRequestError(
            f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", "high", "xhigh", '
            '"ultra", "max", or "none")'
        )
    return _EFFORTS[effort]


def _format(fields: Mapping[str, Any]) -> Any:
    response_format = fields.get("response_format")
    if response_format is None:
        return None
    kind = str(response_format.get("type", "")).strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def _tools(tools: list[dict[str, Any]], choice: Any) -> list[dict[str, Any]]:
    """The tools to send for OpenAI's `tool_choice`."""
    if choice is None or choice in ("auto", "required"):
        return tools
    if choice == "none":
        return []
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        chosen = [t for t in tools if isinstance(t.get("function"), dict) and t["function"].get("name") == name]
        if not chosen:
            raise BadRequestError(f"tool_choice names {json.dumps(name)}, which is not one of the tools")
        return chosen
    raise BadRequestError('invalid tool_choice: expected "none", "auto", "required" or a function')


def parse_chat_completion(body: Any) -> OpenAIChat:
    fields = decode_struct(body, CHAT_COMPLETION_SPEC, "ChatCompletionRequest")
    raw_messages = [m for m in fields.get("messages", []) if m is not None]
    if not raw_messages:
        raise BadRequestError("[] is too short - 'messages'")
    messages = _messages(raw_messages)
    options: dict[str, Any] = {}
    stops = _stops(fields.get("stop"), strict=False)
    if stops is not None:
        options["stop"] = stops
    max_tokens = fields.get("max_completion_tokens", fields.get("max_tokens"))
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    options["temperature"] = fields.get("temperature", 1.0)
    if "seed" in fields:
        options["seed"] = fields["seed"]
    for key in ("frequency_penalty", "presence_penalty"):
        if key in fields:
            options[key] = fields[key]
    options["top_p"] = fields.get("top_p", 1.0)
    tools = _tools([t for t in fields.get("tools", []) if isinstance(t, dict)], fields.get("tool_choice"))
    chat = ChatRequest(
        model=fields.get("model", ""),
        stream=fields.get("stream", False),
        options=options,
        format=_format(fields),
        think=_think(fields),
        logprobs=fields.get("logprobs", False),
        top_logprobs=fields.get("top_logprobs", 0),
        debug_render_only=fields.get("_debug_render_only", False),
        messages=messages,
        tools=tools,
    )
    include_usage = bool(fields.get("stream_options", {}).get("include_usage", False))
    return OpenAIChat(chat=chat, include_usage=include_usage)


# -- completions ----------------------------------------------------------------------------------


@dataclass
class OpenAICompletion:
    generate: GenerateRequest
    include_usage: bool = False


def parse_completion(body: Any) -> OpenAICompletion:
    fields = decode_struct(body, COMPLETION_SPEC, "CompletionRequest")
    options: dict[str, Any] = {}
    stops = _stops(fields.get("stop"), strict=True)
    if stops is not None:
        options["stop"] = stops
    if "max_tokens" in fields:
        options["num_predict"] = fields["max_tokens"]
    options["temperature"] = fields.get("temperature", 1.0)
    if "seed" in fields:
        options["seed"] = fields["seed"]
    options["frequency_penalty"] = fields.get("frequency_penalty", 0.0)
    options["presence_penalty"] = fields.get("presence_penalty", 0.0)
    options["top_p"] = fields.get("top_p") or 1.0
    logprobs = fields.get("logprobs", 0)
    generate = GenerateRequest(
        model=fields.get("model", ""),
        stream=fields.get("stream", False),
        options=options,
        logprobs=logprobs > 0,
        top_logprobs=max(0, logprobs),
        debug_render_only=fields.get("_debug_render_only", False),
        prompt=fields.get("prompt", ""),
        suffix=fields.get("suffix", ""),
    )
    include_usage = bool(fields.get("stream_options", {}).get("include_usage", False))
    return OpenAICompletion(generate=generate, include_usage=include_usage)


# -- embeddings -----------------------------------------------------------------------------------


@dataclass
class OpenAIEmbedding:
    embed: EmbedRequest
    encoding_format: str = ""


def parse_embedding(body: Any) -> OpenAIEmbedding:
    fields = decode_struct(body, EMBEDDING_SPEC, "EmbedRequest")
    encoding = fields.get("encoding_format", "")
    if encoding and encoding.lower() not in ("float", "base64"):
        raise BadRequestError(f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64'].")
    value = fields.get("input")
    if value == "":
        value = [""]
    if value is None or value == []:
        raise BadRequestError("invalid input")
    embed = EmbedRequest(model=fields.get("model", ""), input=value, dimensions=fields.get("dimensions", 0))
    return OpenAIEmbedding(embed=embed, encoding_format=encoding)


__all__ = [
    "CHAT_COMPLETION_SPEC",
    "COMPLETION_SPEC",
    "EMBEDDING_SPEC",
    "OpenAIChat",
    "OpenAICompletion",
    "OpenAIEmbedding",
    "decode_image_url",
    "parse_chat_completion",
    "parse_completion",
    "parse_embedding",
]
