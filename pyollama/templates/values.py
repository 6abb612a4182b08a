"""Template data: Ollama's template structs as Go values.

What a Go template sees of a request: `*template.templateMessage`, `template.templateTools`,
`api.ToolProperty`, ... built to print and marshal to JSON exactly as Ollama's Go structs do
(pyollama.golang.values). JSON numbers are float64 in Go, so tool-call arguments and schema
numbers become Python floats here. Used by templates/prompt.py, which renders the prompt.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.golang import json as gojson
from pyollama.golang.values import OMIT_EMPTY, OMIT_NEVER, OMIT_NIL, NilPointer, Struct, Typed

ThinkValue = bool | str | None

# ThinkValue.Bool(): these levels turn thinking on.
THINK_LEVELS = ("high", "medium", "low", "max")



def go_number(v: Any) -> Any:
    """A JSON value as Go decodes it into `any`: numbers are float64, maps and slices recurse."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): go_number(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [go_number(x) for x in v]
    return v


def json_or_empty_object(value: Mapping[str, Any] | None) -> Callable[[], str]:
    """String() of Ollama's templateArgs / templateProperties: JSON, and `{}` for a nil map."""
    def string() -> str:
        return "{}" if value is None else gojson.marshal(value)
    return string


def json_of(value: Any, *, sort_keys: bool = True) -> Callable[[], str]:
    def marshal() -> str:
        return gojson.marshal(value, sort_keys=sort_keys)
    return marshal


def nil_slice(type_name: str) -> Typed:
    return Typed(type_name, [], nil=True)


def image_bytes(image: Any) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, str):
        try:
            return base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            return image.encode("utf-8", "surrogateescape")
    return bytes(image)


def tool_call_value(tc: Mapping[str, Any]) -> Struct:
    tc = mapping(tc, "tool call")
    fn = mapping(tc.get("function"), "tool call function")
    raw_args = fn.get("arguments")
    args = go_number(raw_args) if isinstance(raw_args, Mapping) else None
    arguments = Typed("template.templateArgs", args if args is not None else {},
                      string=json_or_empty_object(args), nil=args is None)
    index = fn.get("index") or 0
    function = Struct(
        "template.templateToolCallFunction",
        {"Index": int(index) if isinstance(index, (int, float)) else 0, "Name": str(fn.get("name") or ""),
         "Arguments": arguments},
        json_fields=(("Index", "Index", OMIT_NEVER), ("Name", "Name", OMIT_NEVER), ("Arguments", "Arguments", OMIT_NEVER)),
    )
    return Struct("template.templateToolCall", {"ID": str(tc.get("id") or ""), "Function": function},
                  json_fields=(("ID", "ID", OMIT_NEVER), ("Function", "Function", OMIT_NEVER)))


_MESSAGE_JSON = tuple((k, k, OMIT_NEVER) for k in
                      ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID"))


def message_value(m: Mapping[str, Any]) -> Struct:
    images = m.get("images") or []
    tool_calls = m.get("tool_calls") or []
    return Struct(
        "*template.templateMessage",
        {
            "Role": m.get("role", ""),
            "Content": m.get("content", ""),
            "Thinking": m.get("thinking") or "",
            "Images": [image_bytes(i) for i in images] if images else nil_slice("[]api.ImageData"),
            "ToolCalls": ([tool_call_value(tc) for tc in tool_calls] if tool_calls
                          else nil_slice("[]template.templateToolCall")),
            "ToolName": m.get("tool_name") or "",
            "ToolCallID": m.get("tool_call_id") or "",
        },
        json_fields=_MESSAGE_JSON,
        pointer=True,
    )


def property_type(t: Any) -> Typed:
    types = [t] if isinstance(t, str) else [str(x) for x in t] if isinstance(t, (list, tuple)) else []

    def string() -> str:
        if not types:
            return ""
        return types[0] if len(types) == 1 else "[" + " ".join(types) + "]"

    def marshal() -> str:
        return gojson.quote(types[0]) if len(types) == 1 else gojson.marshal(types if types else None)

    return Typed("api.PropertyType", types, string=string, marshal=marshal, nil=not types)


_PROPERTY_JSON = (("anyOf", "AnyOf", OMIT_EMPTY), ("type", "Type", OMIT_EMPTY), ("items", "Items", OMIT_NIL),
                  ("description", "Description", OMIT_EMPTY), ("enum", "Enum", OMIT_EMPTY),
                  ("properties", "Properties", OMIT_NIL))


def tool_property(p: Any) -> Struct:
    """api.ToolProperty from its JSON schema form."""
    p = p if isinstance(p, Mapping) else {}
    nested = p.get("properties")
    properties: Any = NilPointer("*api.ToolPropertiesMap")
    if isinstance(nested, Mapping):
        ordered = {str(k): tool_property(v) for k, v in nested.items()}
        # ToolPropertiesMap keeps insertion order when marshalled.
        properties = Typed("*api.ToolPropertiesMap", ordered, marshal=json_of(ordered, sort_keys=False))
    any_of = p.get("anyOf")
    enum = p.get("enum")
    return Struct(
        "api.ToolProperty",
        {
            "AnyOf": [tool_property(x) for x in any_of] if isinstance(any_of, (list, tuple)) else [],
            "Type": property_type(p.get("type")),
            "Items": go_number(p.get("items")),
            "Description": str(p.get("description") or ""),
            "Enum": go_number(list(enum)) if isinstance(enum, (list, tuple)) else [],
            "Properties": properties,
        },
        json_fields=_PROPERTY_JSON,
    )


def tools_value(tools: Sequence[Mapping[str, Any]] | None) -> Typed:
    """template.templateTools: prints as its JSON (String()), ranges over templateTool structs."""
    if tools is None:
        return Typed("template.templateTools", [], string=lambda: "null", nil=True)
    values = []
    for tool in tools:
        tool = mapping(tool, "tool")
        fn = mapping(tool.get("function"), "tool function")
        params = mapping(fn.get("parameters"), "tool parameters")
        props = params.get("properties")
        prop_map = ({str(k): tool_property(v) for k, v in props.items()}
                    if isinstance(props, Mapping) else None)
        properties = Typed("template.templateProperties", prop_map if prop_map is not None else {},
                           string=json_or_empty_object(prop_map), nil=prop_map is None)
        required = params.get("required")
        parameters = Struct(
            "template.templateToolFunctionParameters",
            {"Type": str(params.get("type") or ""), "Defs": go_number(params.get("$defs")),
             "Items": go_number(params.get("items")),
             "Required": [str(r) for r in required] if isinstance(required, (list, tuple)) else [],
             "Properties": properties},
            json_fields=(("type", "Type", OMIT_NEVER), ("$defs", "Defs", OMIT_NIL), ("items", "Items", OMIT_NIL),
                         ("required", "Required", OMIT_EMPTY), ("properties", "Properties", OMIT_NEVER)),
        )
        function = Struct(
            "template.templateToolFunction",
            {"Name": str(fn.get("name") or ""), "Description": str(fn.get("description") or ""),
             "Parameters": parameters},
            json_fields=(("name", "Name", OMIT_NEVER), ("description", "Description", OMIT_NEVER),
                         ("parameters", "Parameters", OMIT_NEVER)),
        )
        values.append(Struct(
            "template.templateTool",
            {"Type": str(tool.get("type") or ""), "Items": go_number(tool.get("items")), "Function": function},
            json_fields=(("type", "Type", OMIT_NEVER), ("items", "Items", OMIT_NIL),
                         ("function", "Function", OMIT_NEVER)),
        ))
    return Typed("template.templateTools", values, string=json_of(values))


def think_values(think: ThinkValue) -> dict[str, Any]:
    """`.Think`, `.ThinkLevel`, `.IsThinkSet` from a request's think value (api.ThinkValue)."""
    if think is None:
        return {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    if isinstance(think, bool):
        return {"Think": think, "ThinkLevel": "medium" if think else "", "IsThinkSet": True}
    return {"Think": think in THINK_LEVELS, "ThinkLevel": str(think), "IsThinkSet": True}


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """Messages, tools and tool calls must be JSON objects; anything else is the client's error."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"invalid {what}: expected an object, got {type(value).__name__}")
    return value


def think_level(think: ThinkValue) -> str | None:
    """The level a template that takes one as `reasoning_effort` gets (Ollama's
    ThinkValue.Level(): "max" is "high", the highest such templates know); None unless the
    request named a level."""
    if not isinstance(think, str) or think not in THINK_LEVELS:
        return None
    return "high" if think == "max" else think
