"""The rest of the OpenAI surface: embeddings and models through the `openai` client, request
translation and errors in OpenAI's shape (most checked on the cheap tiny-model app, before any
model would load)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest
import requests
from flask.testing import FlaskClient

from pyollama.config import Config
from pyollama.errors import PyollamaError, ServerBusyError
from pyollama.server.openai_bodies import parse_chat_completion, parse_completion
from pyollama.server.openai_shapes import ChatChunks
from pyollama.server.responses import openai_error_body as error_body
from pyollama.server.streaming import EventStream, sse_wire
from tests.server.conftest import LiveServer, make_app
from tests.server.openai.conftest import CHAT_MODEL, EMBED_MODEL


def _error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_match_ollama_embed(oai: openai.OpenAI, openai_server: LiveServer) -> None:
    texts = ["The cat sat on the mat.", "Prometheus scrapes metrics."]
    reply = oai.embeddings.create(model=EMBED_MODEL, input=texts)
    native = requests.post(f"{openai_server.url}/api/embed", json={"model": EMBED_MODEL, "input": texts}, timeout=120)
    body = native.json()
    assert reply.object == "list" and reply.model == EMBED_MODEL
    assert [d.index for d in reply.data] == [0, 1]
    # the same float32 values: the client reads base64 float32s, /api/embed writes each float32's
    # shortest digits (as Go does), which read back as another float64 but the same float32
    assert np.array_equal(np.float32([d.embedding for d in reply.data]), np.float32(body["embeddings"]))
    assert len(reply.data[0].embedding) == 384
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == body["prompt_eval_count"]


def test_embeddings_base64_is_little_endian_float32(openai_server: LiveServer) -> None:
    url = f"{openai_server.url}/v1/embeddings"
    floats = requests.post(url, json={"model": EMBED_MODEL, "input": "hello"}, timeout=120).json()
    packed = requests.post(url, json={"model": EMBED_MODEL, "input": "hello", "encoding_format": "base64"},
                           timeout=120).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert np.array_equal(np.frombuffer(raw, dtype="<f4"), np.float32(floats["data"][0]["embedding"]))


def test_embeddings_dimensions_truncate_and_renormalise(oai: openai.OpenAI) -> None:
    reply = oai.embeddings.create(model=EMBED_MODEL, input="hello", dimensions=8)
    vector = reply.data[0].embedding
    assert len(vector) == 8
    assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)


def test_embeddings_empty_string_is_embedded_as_one_input(oai: openai.OpenAI) -> None:
    assert len(oai.embeddings.create(model=EMBED_MODEL, input="").data) == 1


# -- models -------------------------------------------------------------------------------------


def test_models_list_and_retrieve(oai: openai.OpenAI, openai_server: LiveServer) -> None:
    listed = {m.id: m for m in oai.models.list()}
    assert {CHAT_MODEL, "all-minilm:latest", "smollm2-tools:latest"} <= set(listed)
    tags = requests.get(f"{openai_server.url}/api/tags", timeout=30).json()["models"]
    assert set(listed) == {m["name"] for m in tags}
    assert all(m.object == "model" and m.owned_by == "library" for m in listed.values())
    model = oai.models.retrieve(CHAT_MODEL)
    assert (model.id, model.owned_by, model.created) == (CHAT_MODEL, "library", listed[CHAT_MODEL].created)
    assert oai.models.retrieve("all-minilm").id == "all-minilm"  # the name as given


def test_models_retrieve_missing_is_not_found_error(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("missing")
    assert caught.value.body == _error(404, "model 'missing:latest' not found")["error"]


def test_models_list_of_empty_store_is_null(config: Config) -> None:
    response = make_app(config).test_client().get("/v1/models")
    assert response.json == {"object": "list", "data": None}


# -- errors in OpenAI's shape (cheap app) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/chat/completions", {"model": "tiny", "messages": []}, 400, "[] is too short - 'messages'"),
        ("/v1/chat/completions", {"model": "missing", "messages": [{"role": "user", "content": "hi"}]}, 404,
         "model 'missing' not found"),
        ("/v1/chat/completions", {"model": 7, "messages": []}, 400,
         "json: cannot unmarshal number into Go struct field ChatCompletionRequest.model of type string"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": 1.5}]}, 400,
         "invalid message content type: float64"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user"}]}, 400,
         "invalid message content type: <nil>"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
         400, "invalid message format"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, 400,
         "image URLs are not currently supported, please use base64 encoded data instead"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": "data:image/gif;base64,R0lG"}]}]}, 400, "invalid image input"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}, 400,
         "invalid tool call arguments"),
        ("/v1/chat/completions", {"model": "tiny", "reasoning_effort": "huge",
                                  "messages": [{"role": "user", "content": "hi"}]}, 400,
         ('invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", '
          '"max", or "none")')),
        ("/v1/chat/completions", {"model": "tiny", "reasoning_effort": "high",
                                  "messages": [{"role": "user", "content": "hi"}]}, 400,
         '"tiny" does not support thinking'),
        ("/v1/chat/completions", {"model": "tiny", "tools": [{"type": "function", "function": {"name": "f"}}],
                                  "messages": [{"role": "user", "content": "hi"}]}, 400,
         "registry.ollama.ai/library/tiny:latest does not support tools"),
        ("/v1/chat/completions", {"model": "tools", "tool_choice": {"type": "function", "function": {"name": "g"}},
                                  "tools": [{"type": "function", "function": {"name": "f"}}],
                                  "messages": [{"role": "user", "content": "hi"}]}, 400,
         'tool_choice names "g", which is not one of the tools'),
        ("/v1/chat/completions", {"model": "tiny", "response_format": {"type": "json_schema",
                                                                       "json_schema": {"schema": "nope"}},
                                  "messages": [{"role": "user", "content": "hi"}]}, 400,
         'invalid format: "\\"nope\\""; expected "json" or a valid JSON Schema object'),
        ("/v1/completions", {"model": "tiny", "prompt": ["a", "b"]}, 400,
         "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string"),
        ("/v1/completions", {"model": "tiny", "prompt": "x", "stop": ["a", 1]}, 400,
         "invalid type for 'stop' field: float64"),
        ("/v1/completions", {"model": "missing", "prompt": "x"}, 404, "model 'missing' not found"),
        ("/v1/embeddings", {"model": "embedder", "input": "x", "encoding_format": "int8"}, 400,
         "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64']."),
        ("/v1/embeddings", {"model": "embedder", "input": []}, 400, "invalid input"),
        ("/v1/embeddings", {"model": "embedder"}, 400, "invalid input"),
        ("/v1/embeddings", {"model": "embedder", "input": [[1, 2]]}, 400, "invalid input type"),
        ("/v1/embeddings", {"model": "missing", "input": "x"}, 404, 'model "missing" not found, try pulling it first'),
    ],
)
def test_errors_use_openai_shape_and_status(
    client: FlaskClient, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = client.post(path, json=body)
    assert (response.status_code, response.json) == (status, _error(status, message))
    assert response.headers["Content-Type"] == "application/json"


def test_malformed_json_is_openai_shaped_400(client: FlaskClient) -> None:
    response = client.post("/v1/chat/completions", data=b"{nope")
    assert response.status_code == 400
    assert response.json == _error(400, "invalid character 'n' looking for beginning of object key string")


def test_unknown_v1_route_and_wrong_method_answer_like_gin(client: FlaskClient) -> None:
    assert client.get("/v1/chat/completions").status_code == 405
    assert client.get("/v1/nope").data == b"404 page not found"


def test_openai_errors_are_raised_by_the_openai_client(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model=CHAT_MODEL, messages=[])
    assert bad.value.status_code == 400 and bad.value.body == _error(400, "[] is too short - 'messages'")["error"]
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])


def test_server_errors_map_to_api_error() -> None:
    assert error_body(503, ServerBusyError().message) == _error(503, ServerBusyError().message)
    assert error_body(500, "boom")["error"]["type"] == "api_error"


# -- translation ----------------------------------------------------------------------------------


def test_chat_translation_maps_openai_fields_to_ollama_options() -> None:
    req = parse_chat_completion({
        "model": "m", "messages": [{"role": "User", "content": "hi"}], "stop": "END", "max_tokens": 9,
        "seed": 3, "frequency_penalty": 0.5, "response_format": {"type": " JSON_Object "},
        "reasoning": {"effort": "xhigh"}, "n": 3, "user": "u", "stream_options": {"include_usage": True},
    })
    assert req.chat.options == {"stop": ["END"], "num_predict": 9, "temperature": 1.0, "seed": 3,
                                "frequency_penalty": 0.5, "top_p": 1.0}
    assert (req.chat.format, req.chat.think, req.chat.stream, req.include_usage) == ("json", "max", False, True)
    assert [(m.role, m.content) for m in req.chat.messages] == [("user", "hi")]


def test_chat_translation_splits_content_parts_into_messages() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    req = parse_chat_completion({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                                     {"type": "image_url", "image_url": f"data:;base64,{png}"}]},
        {"role": "assistant", "content": None, "reasoning": "hmm", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]})
    messages = req.chat.messages
    assert [(m.role, m.content, m.images) for m in messages[:3]] == [
        ("user", "look", []), ("user", "", [b"\x89PNG fake"]), ("user", "", [b"\x89PNG fake"])]
    assert messages[3].thinking == "hmm"
    assert messages[3].tool_calls == [{"id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}]
    assert (messages[4].tool_name, messages[4].tool_call_id, messages[4].content) == ("f", "call_1", "42")


def test_completion_translation_forwards_penalties_and_defaults_top_p() -> None:
    req = parse_completion({"model": "m", "prompt": "p", "top_p": 0, "temperature": 0.2, "logprobs": 2})
    assert req.generate.options == {"temperature": 0.2, "frequency_penalty": 0.0, "presence_penalty": 0.0,
                                    "top_p": 1.0}
    assert (req.generate.logprobs, req.generate.top_logprobs, req.generate.raw) == (True, 2, False)


def test_chat_chunks_split_reasoning_from_content_and_finish_with_tool_calls() -> None:
    chunks = ChatChunks("chatcmpl-1", 100, include_usage=True)
    call = {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}}
    first = chunks.event({"model": "m", "message": {"role": "assistant", "content": "", "thinking": "let me see",
                                                    "tool_calls": [call]}, "done": False})
    last = chunks.event({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
                         "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 7})
    deltas = [c["choices"][0]["delta"] for c in first]
    assert deltas == [
        {"role": "assistant", "content": None, "reasoning": "let me see"},
        {"content": "", "tool_calls": [{"id": "call_a", "index": 0, "type": "function",
                                        "function": {"name": "f", "arguments": '{"x":1}'}}]},
    ]
    assert last[0]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    assert last[1]["choices"] == [] and last[1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 7,
                                                             "total_tokens": 12}


def test_stream_error_after_the_first_chunk_becomes_an_error_frame_without_done() -> None:
    def events() -> Iterator[dict[str, Any]]:
        yield {"model": "m", "message": {"role": "assistant", "content": "b"}, "done": False}
        raise PyollamaError("an error was encountered while running the model: boom")

    first = {"model": "m", "message": {"role": "assistant", "content": "a"}, "done": False}
    frames = list(EventStream(first, events(), [], sse_wire(ChatChunks("chatcmpl-1", 1, include_usage=False).event)))
    assert len(frames) == 3 and b"[DONE]" not in b"".join(frames)
    assert json.loads(frames[-1][len(b"data: ") :]) == _error(
        500, "an error was encountered while running the model: boom")
