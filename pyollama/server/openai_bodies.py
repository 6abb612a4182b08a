"""Translation between OpenAI's API and Ollama's, as Ollama's `openai` package does it (API.md §17).

Requests go one way: an OpenAI body becomes the `ChatRequest`, `GenerateRequest` or
`EmbedRequest` the Ollama routes run, so everything below (model lookup, templates, batching,
prompt cache, grammars, tool-call parsing) is the same code. Answers go the other way: Ollama's
response objects (the same dicts the NDJSON streams carry) become OpenAI objects and chunks.

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
import random
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.golang.fmt import type_name
from pyollama.server.requests import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    OBJECT_LIST,
    STRING,
    ChatRequest,
    EmbedRequest,
    FieldType,
    GenerateRequest,
    Message,
    decode_struct,
    list_of,
    struct_of,
)

SYSTEM_FINGERPRINT = "fp_ollama"
DONE_FRAME = b"data: [DONE]\n\n"

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}

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
    "tools": OBJECT_LIST,
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


# -- errors -------------------------------------------------------------------------------------


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object: `invalid_request_error` (400), `not_found_error` (404), else `api_error`."""
    return {"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"), "param": None, "code": None}}


def sse_frame(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


def new_id(prefix: str) -> str:
    """Ollama's ids: `chatcmpl-<0..998>`, `cmpl-<0..998>`."""
    return f"{prefix}-{random.randrange(999)}"


# -- chat completions ---------------------------------------------------------------------------


@dataclass
class OpenAIChat:
    chat: ChatRequest
    include_usage: bool = False


def _decode_image_url(url: str) -> bytes:
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
    return _decode_image_url(url)


def _audio_part(part: Mapping[str, Any]) -> bytes:
    audio = part.get("input_audio")
    data = audio.get("data") if isinstance(audio, dict) else None
    if not isinstance(data, str):
        raise BadRequestError("invalid message format")
    return _b64(data, "invalid message format")


def _tool_calls_in(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments as JSON text) -> Ollama's (arguments as an object)."""
    out = []
    for call in calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments", ""))
        except json.JSONDecodeError:
            raise BadRequestError("invalid tool call arguments") from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise BadRequestError("invalid tool call arguments")
        converted: dict[str, Any] = {"function": {"name": function.get("name", ""), "arguments": arguments}}
        if call.get("id"):
            converted = {"id": call["id"], **converted}
        out.append(converted)
    return out


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
                    tool_calls=_tool_calls_in(calls_raw),
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
                last.tool_calls = _tool_calls_in(calls_raw)
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
                    tool_calls=_tool_calls_in(calls_raw),
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


def usage(final: Mapping[str, Any]) -> dict[str, int]:
    prompt, completion = int(final.get("prompt_eval_count", 0)), int(final.get("eval_count", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_calls_out(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama tool calls -> OpenAI's (`type: function`, arguments as JSON text)."""
    out = []
    for i, call in enumerate(calls):
        function = call.get("function", {})
        out.append(
            {
                "id": call.get("id", ""),
                "index": function.get("index", i),
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": json.dumps(function.get("arguments", {}), ensure_ascii=False, separators=(",", ":")),
                },
            }
        )
    return out


def _finish_reason(reason: str, tool_calls: bool) -> str | None:
    if tool_calls and reason in ("stop", ""):
        return "tool_calls"
    return reason or None


def chat_completion(completion_id: str, created: int, final: Mapping[str, Any]) -> dict[str, Any]:
    """A whole chat reply (Ollama's aggregated stream:false answer) as a `chat.completion`."""
    message = final.get("message") or {}
    out_message: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content", "")}
    if message.get("thinking"):
        out_message["reasoning"] = message["thinking"]
    calls = tool_calls_out(message.get("tool_calls") or [])
    if calls:
        out_message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": final.get("model", ""),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": _finish_reason(str(final.get("done_reason", "")), bool(calls)),
            }
        ],
        "usage": usage(final),
    }
    if "_debug_info" in final:
        body["_debug_info"] = final["_debug_info"]
    return body


@dataclass
class ChatChunks:
    """Turns the Ollama chat stream into `chat.completion.chunk`s: content and reasoning deltas
    (the role only on the first), a finish chunk with an empty delta, then the usage chunk
    when `stream_options.include_usage` asked for it."""

    completion_id: str
    created: int
    include_usage: bool
    _first: bool = True
    _tool_call_sent: bool = False
    _model: str = ""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            **extra,
        }

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        if self._first:
            delta = {"role": "assistant", **delta}
            self._first = False
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])

    def event(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._model = str(event.get("model", self._model))
        if event.get("done"):
            reason = _finish_reason(str(event.get("done_reason", "")), self._tool_call_sent) or "stop"
            chunks = [self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])]
            if self.include_usage:
                chunks.append(self._chunk([], usage=usage(event)))
            return chunks
        message = event.get("message") or {}
        content, thinking = message.get("content", ""), message.get("thinking", "")
        calls = tool_calls_out(message.get("tool_calls") or [])
        chunks = []
        if thinking and (content or calls):
            # reasoning first, in a chunk of its own
            chunks.append(self._delta({"content": None, "reasoning": thinking}))
            thinking = ""
        delta: dict[str, Any] = {"content": content}
        if thinking:
            delta["reasoning"] = thinking
        if calls:
            delta["tool_calls"] = calls
            self._tool_call_sent = True
        chunks.append(self._delta(delta))
        return chunks


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


def completion(completion_id: str, created: int, final: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": final.get("model", ""),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"text": final.get("response", ""), "index": 0, "finish_reason": final.get("done_reason") or None}],
        "usage": usage(final),
    }


@dataclass
class CompletionChunks:
    """The Ollama generate stream as `text_completion` chunks: one per Ollama object (the last
    carrying the finish reason); with `include_usage`, zero usage on each and a final chunk
    with no choices and the real usage."""

    completion_id: str
    created: int
    include_usage: bool

    def _chunk(self, model: str, choices: list[dict[str, Any]], usage_: dict[str, int] | None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "choices": choices,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if usage_ is not None:
            chunk["usage"] = usage_
        return chunk

    def event(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        model = str(event.get("model", ""))
        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} if self.include_usage else None
        choice = {"text": event.get("response", ""), "index": 0, "finish_reason": event.get("done_reason") or None}
        chunks = [self._chunk(model, [choice], zero)]
        if event.get("done") and self.include_usage:
            chunks.append(self._chunk(model, [], usage(event)))
        return chunks


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


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_list(model: str, body: Mapping[str, Any], encoding_format: str) -> dict[str, Any]:
    as_base64 = encoding_format.lower() == "base64"
    data = [
        {"object": "embedding", "embedding": _float32_base64(vector) if as_base64 else vector, "index": i}
        for i, vector in enumerate(body.get("embeddings") or [])
    ]
    tokens = int(body.get("prompt_eval_count", 0))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- models ---------------------------------------------------------------------------------------


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


__all__ = [
    "CHAT_COMPLETION_SPEC",
    "COMPLETION_SPEC",
    "DONE_FRAME",
    "EMBEDDING_SPEC",
    "ChatChunks",
    "CompletionChunks",
    "OpenAIChat",
    "OpenAICompletion",
    "OpenAIEmbedding",
    "chat_completion",
    "completion",
    "embedding_list",
    "error_body",
    "model_object",
    "new_id",
    "parse_chat_completion",
    "parse_completion",
    "parse_embedding",
    "sse_frame",
    "tool_calls_out",
    "usage",
]
