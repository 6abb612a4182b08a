"""Request decoding: Ollama's (Go's) error texts for empty, malformed and wrongly typed bodies."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from pyollama.errors import BadRequestError
from pyollama.server.bodies import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    decode_json,
    parse_format,
    parse_keep_alive,
    parse_think,
)


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/show", "/api/pull"])
@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_post_answers_missing_request_body_when_body_is_empty(client: FlaskClient, path: str, body: bytes) -> None:
    response = client.post(path, data=body)
    assert response.status_code == 400
    assert response.json == {"error": "missing request body"}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"x", "invalid character 'x' looking for beginning of value"),
        (b'{"model":', "unexpected EOF"),
        (b'{"model" "x"}', "invalid character '\"' after object key"),
        (b'{"model":"x",}', "invalid character '}' looking for beginning of object key string"),
        (b'{"model":"x" "stream":true}', "invalid character '\"' after object key:value pair"),
        (b'{"messages":[1 2]}', "invalid character '2' after array element"),
        (b'{"model":"unterminated', "unexpected EOF"),
        (b'{"a":NaN}', "invalid character 'N' looking for beginning of value"),
    ],
)
def test_chat_answers_go_syntax_error_when_json_is_malformed(client: FlaskClient, body: bytes, message: str) -> None:
    response = client.post("/api/chat", data=body)
    assert response.status_code == 400
    assert response.json == {"error": message}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "stream": "yes"}, "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool"),
        ({"model": 5}, "json: cannot unmarshal number into Go struct field ChatRequest.model of type string"),
        ({"model": "m", "messages": {}}, "json: cannot unmarshal object into Go struct field ChatRequest.messages of type []api.Message"),
        (
            {"model": "m", "messages": [{"role": "user", "content": 1}]},
            "json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type string",
        ),
        ({"model": "m", "top_logprobs": 1.5}, "json: cannot unmarshal number 1.5 into Go struct field ChatRequest.top_logprobs of type int"),
        ({"model": "m", "options": []}, "json: cannot unmarshal array into Go struct field ChatRequest.options of type map[string]interface {}"),
    ],
)
def test_chat_answers_go_type_error_when_field_has_wrong_type(client: FlaskClient, body: dict, message: str) -> None:
    response = client.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json == {"error": message}


def test_chat_rejects_array_body_with_go_value_type_error(client: FlaskClient) -> None:
    response = client.post("/api/chat", data=b"[]")
    assert response.json == {"error": "json: cannot unmarshal array into Go value of type api.ChatRequest"}


def test_decode_json_reads_first_value_and_ignores_trailing_bytes() -> None:
    assert decode_json(b' {"model": "m"} trailing garbage') == {"model": "m"}


def test_generate_request_matches_keys_case_insensitively_and_skips_nulls() -> None:
    req = GenerateRequest.from_json({"Model": "m", "PROMPT": "hi", "stream": None, "unknown": 1})
    assert (req.model, req.prompt, req.stream) == ("m", "hi", True)


def test_chat_request_lowercases_roles() -> None:
    req = ChatRequest.from_json({"model": "m", "messages": [{"role": "USER", "content": "hi"}]})
    assert req.messages[0].role == "user"


def test_generate_request_decodes_base64_images() -> None:
    req = GenerateRequest.from_json({"model": "m", "images": ["aGVsbG8="]})
    assert req.images == [b"hello"]


@pytest.mark.parametrize(("image", "offset"), [("aGVs!G8=", 4), ("aGVsbG8", 4), ("YWJ", 0)])
def test_generate_request_rejects_bad_base64_with_offset(image: str, offset: int) -> None:
    with pytest.raises(BadRequestError) as info:
        GenerateRequest.from_json({"model": "m", "images": [image]})
    assert info.value.message == f"illegal base64 data at input byte {offset}"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (0, 0.0), (42.5, 42.5), (-1, -1.0), ("5m", 300.0), ("-1m", -1.0), ("0", 0.0)],
)
def test_parse_keep_alive_converts_numbers_and_durations(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3600", 'time: missing unit in duration "3600"'),
        (True, "Unsupported type: 'bool'"),
        ({}, "Unsupported type: 'map[string]interface {}'"),
        ([], "Unsupported type: '[]interface {}'"),
    ],
)
def test_parse_keep_alive_rejects_with_ollama_text(value: object, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_keep_alive(value)
    assert info.value.message == message


def test_parse_think_accepts_bools_and_levels() -> None:
    assert [parse_think(v) for v in (None, True, False, "low", "max")] == [None, True, False, "low", "max"]


def test_parse_think_rejects_unknown_level_and_other_types() -> None:
    with pytest.raises(BadRequestError, match=r'^invalid think value: "extreme" \(must be "high", "medium"'):
        parse_think("extreme")
    with pytest.raises(BadRequestError, match=r"^think must be a boolean or string"):
        parse_think(1)


def test_parse_format_distinguishes_json_schema_and_none() -> None:
    assert parse_format("json").json_mode
    assert parse_format({"type": "object"}).schema == {"type": "object"}
    assert not parse_format("").json_mode and parse_format("").schema is None
    assert not parse_format(None).json_mode and parse_format(None).schema is None


def test_parse_format_rejects_other_values_with_ollama_text() -> None:
    with pytest.raises(BadRequestError) as info:
        parse_format("yaml")
    assert info.value.message == 'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object'


def test_embed_request_inputs_accepts_string_or_strings_only() -> None:
    assert EmbedRequest.from_json({"input": "a"}).inputs() == ["a"]
    assert EmbedRequest.from_json({"input": ""}).inputs() == []
    assert EmbedRequest.from_json({"input": ["a", ""]}).inputs() == ["a", ""]
    with pytest.raises(BadRequestError, match="^invalid input type$"):
        EmbedRequest.from_json({"input": ["a", 1]}).inputs()
    with pytest.raises(BadRequestError, match="^invalid input type$"):
        EmbedRequest.from_json({"input": 3}).inputs()
