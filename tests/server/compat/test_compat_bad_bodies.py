"""Whatever a client sends to `/v1/responses` or `/v1/messages`, the answer is never a 500 (but for
the weightless test models' load failure) and every error is in the API's own shape: random
bodies built around each API's fields, through Flask's test client over the tiny models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LOAD_FAILURE = "llama runner process has terminated: failed to load model"

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
                    st.sampled_from(["", "x", "user", "assistant", "tool", "text", "function", "base64"]))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["type", "text", "role", "content", "name"]), inner,
                                             max_size=3), max_leaves=8)


def _object(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, JSON_VALUES) for k, v in fields.items()})


RESPONSES_PART = _object({"type": st.sampled_from(["input_text", "output_text", "input_image", "input_file", "x"]),
                          "text": st.text(max_size=5), "image_url": st.sampled_from(["data:image/png;base64,AAAA",
                                                                                     "data:,", "http://x/y.png"])})
RESPONSES_ITEM = _object({
    "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "", "other"]),
    "role": st.sampled_from(["user", "assistant", "system", "developer"]),
    "content": st.one_of(st.text(max_size=5), st.lists(RESPONSES_PART, max_size=2)),
    "call_id": st.text(max_size=3), "name": st.text(max_size=3),
    "arguments": st.sampled_from(["", "{}", '{"a": 1}', "[1]", "{", "null"]),
    "output": st.one_of(st.text(max_size=5), st.lists(RESPONSES_PART, max_size=2)),
    "encrypted_content": st.text(max_size=5), "summary": st.lists(_object({"text": st.text(max_size=3)}), max_size=2),
})
RESPONSES_BODY = _object({
    "model": st.sampled_from(["tiny", "tools", "nope", ""]),
    "input": st.one_of(st.text(max_size=5), st.lists(RESPONSES_ITEM, max_size=3)),
    "instructions": st.text(max_size=5),
    "tools": st.lists(_object({"type": st.sampled_from(["function", "web_search"]), "name": st.text(max_size=3),
                               "parameters": st.just({"type": "object", "properties": {}})}), max_size=2),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]),
                             _object({"type": st.just("function"), "name": st.text(max_size=3)})),
    "text": _object({"format": _object({"type": st.sampled_from(["text", "json_schema", "json_object", "x"]),
                                        "schema": st.just({"type": "object"})})}),
    "reasoning": _object({"effort": st.sampled_from(["low", "none", "bogus"])}),
    "max_output_tokens": st.integers(-2, 3), "temperature": st.floats(0, 2), "stream": st.booleans(),
    "previous_response_id": st.text(max_size=3), "background": st.booleans(),
})

ANTHROPIC_BLOCK = _object({
    "type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "x"]),
    "text": st.text(max_size=5), "thinking": st.text(max_size=5), "id": st.text(max_size=3),
    "name": st.text(max_size=3), "input": st.dictionaries(st.text(max_size=2), SCALARS, max_size=2),
    "tool_use_id": st.text(max_size=3),
    "content": st.one_of(st.text(max_size=3), st.lists(_object({"type": st.sampled_from(["text", "image"]),
                                                                "text": st.text(max_size=3)}), max_size=2)),
    "source": _object({"type": st.sampled_from(["base64", "url"]), "data": st.sampled_from(["AAAA", "!!", ""])}),
})
ANTHROPIC_BODY = _object({
    "model": st.sampled_from(["tiny", "tools", "nope", ""]),
    "max_tokens": st.integers(-1, 3),
    "messages": st.lists(_object({"role": st.sampled_from(["user", "assistant"]),
                                  "content": st.one_of(st.text(max_size=5), st.lists(ANTHROPIC_BLOCK, max_size=3))}),
                         max_size=3),
    "system": st.one_of(st.text(max_size=5), st.lists(_object({"type": st.just("text"), "text": st.text(max_size=3)}))),
    "tools": st.lists(_object({"name": st.text(max_size=3), "type": st.sampled_from(["custom", "web_search_1"]),
                               "input_schema": st.just({"type": "object", "properties": {}})}), max_size=2),
    "tool_choice": _object({"type": st.sampled_from(["auto", "any", "tool", "none", "x"]), "name": st.text(max_size=3)}),
    "thinking": _object({"type": st.sampled_from(["enabled", "disabled"])}),
    "stop_sequences": st.lists(st.text(max_size=3), max_size=2),
    "stream": st.booleans(),
})

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def fuzz_app(app: Flask) -> Iterator[Flask]:
    yield app
    app.extensions["pyollama"].close()


def _post(app: Flask, path: str, body: Any) -> tuple[int, bytes]:
    response = app.test_client().post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    try:
        return response.status_code, response.get_data()
    finally:
        response.close()


def _message(status: int, data: bytes, anthropic: bool) -> str | None:
    """The error's message, checked to be in the API's shape; None for a success."""
    if status < 400:
        return None
    body = json.loads(data)
    if anthropic:
        assert body["type"] == "error" and set(body) == {"type", "error", "request_id"}, body
        assert isinstance(body["error"]["type"], str)
    else:
        assert set(body) == {"error"} and isinstance(body["error"]["type"], str), body
    message = body["error"]["message"]
    assert isinstance(message, str) and message and "Traceback" not in message
    return message


@SETTINGS
@given(body=RESPONSES_BODY)
def test_responses_bodies_never_answer_500(fuzz_app: Flask, body: dict[str, Any]) -> None:
    status, data = _post(fuzz_app, "/v1/responses", body)
    message = _message(status, data, anthropic=False)
    assert status < 500 or (message or "").startswith(LOAD_FAILURE), (body, status, data)


@SETTINGS
@given(body=ANTHROPIC_BODY)
def test_messages_bodies_never_answer_500(fuzz_app: Flask, body: dict[str, Any]) -> None:
    status, data = _post(fuzz_app, "/v1/messages", body)
    message = _message(status, data, anthropic=True)
    assert status < 500 or (message or "").startswith(LOAD_FAILURE), (body, status, data)


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/messages"])
@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'"x"', b"1e999", b"[" * 100_000])
def test_malformed_bodies_answer_400_in_the_apis_shape(fuzz_app: Flask, path: str, raw: bytes) -> None:
    response = fuzz_app.test_client().post(path, data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data()[:200]
    assert _message(400, response.get_data(), anthropic=path == "/v1/messages")
