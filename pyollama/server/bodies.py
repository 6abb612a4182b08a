"""Request bodies decoded the way Ollama's Go handlers decode them.

Ollama binds bodies with `json.NewDecoder(body).Decode(&req)`: no
Content-Type requirement, unknown keys ignored, keys matched
case-insensitively, only the first JSON value read, `null` meaning "absent",
and errors worded by Go's encoding/json. Clients (and tests written against
Ollama) see those texts, so they are reproduced here. Custom fields
(`keep_alive`, `think`, `format`, images) keep Ollama's own messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Request

from pyollama.config import parse_duration
from pyollama.errors import BadRequestError
from pyollama.golang import json as gojson
from pyollama.golang.fmt import type_name
from pyollama.golang.strconv import quote
from pyollama.golang.time import MAX_DURATION_SECONDS
from pyollama.templates.values import THINK_LEVELS

# A field type: a Go type name for error texts plus a checker. Nested structs are dicts of fields.
Spec = Mapping[str, "FieldType"]

_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/=]")


def decode_json(data: bytes) -> Any:
    """The first JSON value of `data` (trailing bytes ignored, as Go's Decoder does)."""
    text = data.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if text == "":
        raise BadRequestError("missing request body")
    try:
        return gojson.decode(text)
    except gojson.DecodeError as exc:
        raise BadRequestError(str(exc)) from None


def read_json(request: Request) -> Any:
    """Decode the request body; an empty body is Ollama's `missing request body`."""
    return decode_json(request.get_data(cache=False))


# -- typed fields ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldType:
    """How one JSON field is checked: `check(value, path)` returns the decoded value."""

    go_type: str
    check: Callable[[Any, str, str], Any]


def _type_error(value: Any, path: str, go_type: str) -> BadRequestError:
    return BadRequestError(gojson.unmarshal_type_error(value, path, go_type))


def _scalar(go_type: str, accept: Callable[[Any], bool]) -> FieldType:
    def check(value: Any, path: str, _: str) -> Any:
        if not accept(value):
            raise _type_error(value, path, go_type)
        return value

    return FieldType(go_type, check)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STRING = _scalar("string", lambda v: isinstance(v, str))
BOOL = _scalar("bool", lambda v: isinstance(v, bool))
INT = _scalar("int", _is_int)
FLOAT = _scalar("float64", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
ANY = FieldType("interface {}", lambda v, p, s: v)
MAP = _scalar("map[string]interface {}", lambda v: isinstance(v, dict))
OBJECT_LIST = _scalar("[]interface {}", lambda v: isinstance(v, list))


def list_of(item: FieldType) -> FieldType:
    def check(value: Any, path: str, struct: str) -> Any:
        if not isinstance(value, list):
            raise _type_error(value, path, "[]" + item.go_type)
        return [None if v is None else item.check(v, path, struct) for v in value]

    return FieldType("[]" + item.go_type, check)


def struct_of(go_type: str, spec: Spec) -> FieldType:
    def check(value: Any, path: str, _: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(value, path, go_type)
        return decode_struct(value, spec, path)

    return FieldType(go_type, check)


def checked(field_type: FieldType) -> FieldType:
    """`field_type`'s check, keeping the value as sent: tool schemas go to templates whole,
    keys the Go struct would drop included."""

    def check(value: Any, path: str, struct: str) -> Any:
        field_type.check(value, path, struct)
        return value

    return FieldType(field_type.go_type, check)


def _image(value: Any, path: str, _: str) -> bytes:
    """Go's []byte JSON decoding: standard base64 with padding (CR/LF ignored)."""
    if not isinstance(value, str):
        raise _type_error(value, path, "api.ImageData")
    text = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    for i, ch in enumerate(text):
        if not _BASE64_ALPHABET.fullmatch(ch) or (ch == "=" and i < len(text) - 2):
            raise BadRequestError(f"illegal base64 data at input byte {i}")
    raise BadRequestError(f"illegal base64 data at input byte {len(text) - len(text) % 4}")


IMAGES = list_of(FieldType("api.ImageData", _image))


def decode_struct(body: Any, spec: Spec, struct: str) -> dict[str, Any]:
    """Check `body` against `spec` like Go unmarshalling into a struct named `struct`.

    Keys match exactly, else case-insensitively; unknown keys are dropped;
    `null` leaves a field absent; the first wrongly typed field (in document
    order) is the error.
    """
    if body is None:
        return {}
    if not isinstance(body, dict):
        kind = gojson.kind(body)
        raise BadRequestError(f"json: cannot unmarshal {kind} into Go value of type {struct_type(struct)}")
    folded = {name.casefold(): name for name in spec}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in spec else folded.get(key.casefold())
        if name is None or value is None:
            continue
        field_type = spec[name]
        out[name] = field_type.check(value, f"{struct}.{name}", struct)
    return out


def struct_type(struct: str) -> str:
    root = struct.split(".", 1)[0]
    return f"api.{root}"


# -- Ollama's custom-unmarshalled fields ----------------------------------------------------------

def parse_keep_alive(value: Any) -> float | None:
    """api.Duration: seconds; None when absent; -1.0 for "forever": any negative value, and a
    number of seconds past the longest Go duration (Ollama's conversion would wrap it; no timer
    or date can hold it). A string past it is Go's `time: invalid duration`."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return -1.0 if value < 0 or value >= MAX_DURATION_SECONDS else float(value)
    if isinstance(value, str):
        seconds = parse_duration(value)
        return -1.0 if seconds < 0 else seconds
    raise BadRequestError(f"Unsupported type: '{type_name(value, json_decoded=True)}'")


def parse_think(value: Any) -> bool | str | None:
    """api.ThinkValue: true, false or a level string; None when absent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in THINK_LEVELS:
            return value
        raise BadRequestError(
            f'invalid think value: {quote(value)} (must be "high", "medium", "low", "max", true, or false)'
        )
    raise BadRequestError('think must be a boolean or string ("high", "medium", "low", "max", true, or false)')


@dataclass(frozen=True)
class Format:
    """The `format` field: `json` mode, a JSON schema, or neither."""

    json_mode: bool = False
    schema: dict[str, Any] | None = None


def parse_format(value: Any) -> Format:
    """`"json"` -> JSON mode, an object -> schema, `null`/`""` -> none; else Ollama's error (as a 400)."""
    if value is None or value == "":
        return Format()
    if value == "json":
        return Format(json_mode=True)
    if isinstance(value, dict):
        return Format(schema=value)
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    raise BadRequestError(f'invalid format: {quote(raw)}; expected "json" or a valid JSON Schema object')


def check_top_logprobs(value: int) -> None:
    if not 0 <= value <= 20:
        raise BadRequestError("top_logprobs must be between 0 and 20")


# -- request types --------------------------------------------------------------------------------

# api.ToolCallFunction: its `arguments` are an object (api.ToolCallFunctionArguments).
TOOL_CALL_FUNCTION = struct_of(
    "api.ToolCallFunction",
    {"index": INT, "name": STRING, "arguments": _scalar("api.ToolCallFunctionArguments", lambda v: isinstance(v, dict))},
)
TOOL_CALL_SPEC: dict[str, FieldType] = {"id": STRING, "function": checked(TOOL_CALL_FUNCTION)}

# api.Tool: what its fields must be for a template to render it; checked, passed on as sent.
TOOL = checked(
    struct_of(
        "api.Tool",
        {
            "type": STRING,
            "items": ANY,
            "function": struct_of(
                "api.ToolFunction",
                {
                    "name": STRING,
                    "description": STRING,
                    "parameters": struct_of(
                        "api.ToolFunctionParameters",
                        {"type": STRING, "$defs": ANY, "items": ANY, "required": list_of(STRING), "properties": MAP},
                    ),
                },
            ),
        },
    )
)
TOOLS = list_of(TOOL)

MESSAGE_SPEC: dict[str, FieldType] = {
    "role": STRING,
    "content": STRING,
    "thinking": STRING,
    "images": IMAGES,
    "tool_calls": list_of(struct_of("api.ToolCall", TOOL_CALL_SPEC)),
    "tool_name": STRING,
    "tool_call_id": STRING,
}


@dataclass
class Message:
    role: str
    content: str = ""
    thinking: str = ""
    images: list[bytes] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_name: str = ""
    tool_call_id: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Message:
        return cls(
            # Ollama lower-cases roles when decoding (`"USER"` -> `"user"`).
            role=str(fields.get("role", "")).lower(),
            content=fields.get("content", ""),
            thinking=fields.get("thinking", ""),
            images=[img for img in fields.get("images", []) if img is not None],
            tool_calls=[tc for tc in fields.get("tool_calls", []) if tc is not None],
            tool_name=fields.get("tool_name", ""),
            tool_call_id=fields.get("tool_call_id", ""),
        )

    def to_template(self) -> dict[str, Any]:
        """The message as templates and llama.cpp's chat code take it (omitempty fields left out)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            out["thinking"] = self.thinking
        if self.images:
            out["images"] = self.images
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.tool_name:
            out["tool_name"] = self.tool_name
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


MESSAGES = list_of(struct_of("api.Message", MESSAGE_SPEC))

_COMMON_INFERENCE: dict[str, FieldType] = {
    "model": STRING,
    "stream": BOOL,
    "keep_alive": ANY,
    "options": MAP,
    "format": ANY,
    "think": ANY,
    "truncate": BOOL,
    "shift": BOOL,
    "logprobs": BOOL,
    "top_logprobs": INT,
    "_debug_render_only": BOOL,
}

GENERATE_SPEC: dict[str, FieldType] = {
    **_COMMON_INFERENCE,
    "prompt": STRING,
    "suffix": STRING,
    "system": STRING,
    "template": STRING,
    "context": list_of(INT),
    "raw": BOOL,
    "images": IMAGES,
}

CHAT_SPEC: dict[str, FieldType] = {
    **_COMMON_INFERENCE,
    "messages": MESSAGES,
    "tools": TOOLS,
}


@dataclass
class InferenceRequest:
    """Fields shared by /api/generate and /api/chat."""

    model: str = ""
    stream: bool = True
    keep_alive: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    format: Any = None
    think: bool | str | None = None
    truncate: bool = True
    shift: bool = True
    logprobs: bool = False
    top_logprobs: int = 0
    debug_render_only: bool = False

    @staticmethod
    def common(fields: Mapping[str, Any]) -> dict[str, Any]:
        # keep_alive and think are parsed here, at decode time, as Ollama's UnmarshalJSON does.
        return {
            "model": fields.get("model", ""),
            "stream": fields.get("stream", True),
            "keep_alive": parse_keep_alive(fields.get("keep_alive")),
            "options": fields.get("options", {}),
            "format": fields.get("format"),
            "think": parse_think(fields.get("think")),
            "truncate": fields.get("truncate", True),
            "shift": fields.get("shift", True),
            "logprobs": fields.get("logprobs", False),
            "top_logprobs": fields.get("top_logprobs", 0),
            "debug_render_only": fields.get("_debug_render_only", False),
        }


@dataclass
class GenerateRequest(InferenceRequest):
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str = ""
    context: list[int] | None = None
    raw: bool = False
    images: list[bytes] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: Any) -> GenerateRequest:
        fields = decode_struct(body, GENERATE_SPEC, "GenerateRequest")
        return cls(
            **cls.common(fields),
            prompt=fields.get("prompt", ""),
            suffix=fields.get("suffix", ""),
            # An empty system string keeps the model's SYSTEM (Ollama checks `req.System != ""`).
            system=fields.get("system") or None,
            template=fields.get("template", ""),
            context=[c for c in fields["context"] if c is not None] if "context" in fields else None,
            raw=fields.get("raw", False),
            images=[img for img in fields.get("images", []) if img is not None],
        )


@dataclass
class ChatRequest(InferenceRequest):
    messages: list[Message] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: Any) -> ChatRequest:
        fields = decode_struct(body, CHAT_SPEC, "ChatRequest")
        return cls(
            **cls.common(fields),
            messages=[Message.from_fields(m) for m in fields.get("messages", []) if m is not None],
            tools=[t for t in fields.get("tools", []) if isinstance(t, dict)],
        )


EMBED_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "input": ANY,
    "truncate": BOOL,
    "dimensions": INT,
    "keep_alive": ANY,
    "options": MAP,
}


@dataclass
class EmbedRequest:
    model: str = ""
    input: Any = None
    truncate: bool = True
    dimensions: int = 0
    keep_alive: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any) -> EmbedRequest:
        fields = decode_struct(body, EMBED_SPEC, "EmbedRequest")
        return cls(
            model=fields.get("model", ""),
            input=fields.get("input"),
            truncate=fields.get("truncate", True),
            dimensions=fields.get("dimensions", 0),
            keep_alive=parse_keep_alive(fields.get("keep_alive")),
            options=fields.get("options", {}),
        )

    def inputs(self) -> list[str]:
        """The inputs as a list: `""`/null/`[]` -> none; else Ollama's `invalid input type`."""
        if self.input is None:
            return []
        if isinstance(self.input, str):
            return [self.input] if self.input else []
        if isinstance(self.input, list) and all(isinstance(item, str) for item in self.input):
            return list(self.input)
        raise BadRequestError("invalid input type")


EMBEDDINGS_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "prompt": STRING,
    "keep_alive": ANY,
    "options": MAP,
}


@dataclass
class EmbeddingsRequest:
    model: str = ""
    prompt: str = ""
    keep_alive: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any) -> EmbeddingsRequest:
        fields = decode_struct(body, EMBEDDINGS_SPEC, "EmbeddingRequest")
        return cls(
            model=fields.get("model", ""),
            prompt=fields.get("prompt", ""),
            keep_alive=parse_keep_alive(fields.get("keep_alive")),
            options=fields.get("options", {}),
        )


def model_field(fields: Mapping[str, Any]) -> str:
    """`model`, falling back to the deprecated alias `name` (show, delete, pull, push)."""
    return fields.get("model") or fields.get("name") or ""


SHOW_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "name": STRING,
    "system": STRING,
    "template": STRING,
    "verbose": BOOL,
    "options": MAP,
}

NAME_SPEC: dict[str, FieldType] = {"model": STRING, "name": STRING}

COPY_SPEC: dict[str, FieldType] = {"source": STRING, "destination": STRING}

TRANSFER_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "name": STRING,
    "insecure": BOOL,
    "stream": BOOL,
    "username": STRING,
    "password": STRING,
}
