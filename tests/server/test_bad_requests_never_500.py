"""Property: nothing a client POSTs makes the server answer 500 or leak a stack trace.

Random JSON bodies, malformed bytes and bodies with each endpoint's own fields set to values of
random types go to every POST (and DELETE) endpoint of the app, through Flask's test client over
the tiny store. A 4xx answer must be `{"error": "<text>"}` (the OpenAI routes: `{"error":
{"message": "<text>", ...}}`).

One 500 is legitimate and allowed: a well-formed inference request for a tiny model reaches the
load, and the tiny models are weightless headers that llama.cpp cannot load (Ollama too answers
500 when its runner fails to load a model). Bodies that would reach the network (pull, push, a
`from` model not in the store) are not generated: they would only measure DNS timeouts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields as dataclass_fields
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyollama.options import PredictOptions, RunnerOptions
from pyollama.server.bodies import (
    ANY,
    BOOL,
    CHAT_SPEC,
    COPY_SPEC,
    EMBED_SPEC,
    EMBEDDINGS_SPEC,
    FLOAT,
    GENERATE_SPEC,
    INT,
    MAP,
    NAME_SPEC,
    OBJECT_LIST,
    SHOW_SPEC,
    STRING,
    TRANSFER_SPEC,
)
from pyollama.server.routes.create import CREATE_SPEC

LOAD_FAILURE = "llama runner process has terminated: failed to load model"

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
# Names that exist in the tiny store, do not, or are not names at all.
MODEL_NAMES = st.sampled_from(["tiny", "tools", "embedder", "missing", "", "bad name!", "a/b/c/d/e", "TINY:Latest"])
# Never a valid name: pull and push would go to the registry.
INVALID_NAMES = st.sampled_from(["", "bad name!", "a/b/c/d/e", ":", "x:y:z"])
NOT_STRINGS = SCALARS.filter(lambda v: not isinstance(v, str))
OPTION_KEYS = [f.name for cls in (RunnerOptions, PredictOptions) for f in dataclass_fields(cls)]
OPTION_VALUES = st.integers(-3, 5000) | st.floats(-2, 2, allow_nan=False) | st.booleans() | st.lists(st.text(max_size=4), max_size=2)
OPTIONS = st.dictionaries(st.sampled_from([*OPTION_KEYS, "unknown", "numa"]), OPTION_VALUES | JSON_VALUES, max_size=4)
IMAGES = st.lists(st.sampled_from(["aGVsbG8=", "not base64!", "", "aGVsbG8"]), max_size=2)
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "tool", "USER", "", "narrator"]),
        "content": st.text(max_size=10),
        "thinking": st.text(max_size=5),
        "images": IMAGES,
        "tool_calls": st.lists(st.fixed_dictionaries({}, optional={"id": st.text(max_size=4), "function": JSON_VALUES})
                               | JSON_VALUES, max_size=2),
        "tool_name": st.text(max_size=5),
        "tool_call_id": st.text(max_size=5),
    },
)

# Well-typed values, by field name first, then by the field's Go type.
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "model": MODEL_NAMES,
    "name": MODEL_NAMES,
    "source": MODEL_NAMES,
    "destination": MODEL_NAMES | st.text(max_size=12),
    "options": OPTIONS,
    "parameters": OPTIONS,
    "keep_alive": st.sampled_from(["5m", "1h30m", "-1", "3600", "0", "x", "-1m", "1e3s", ""])
    | st.integers(-5, 10**12) | st.floats(allow_nan=False),
    "format": st.sampled_from(["json", "", "xml", {"type": "object"}, {"type": "nonsense"}, {"properties": 3},
                               {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}]),
    "think": st.sampled_from([True, False, "high", "low", "max", "bogus"]),
    "input": st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=3) | st.lists(JSON_VALUES, max_size=2),
    "context": st.lists(st.integers(-5, 2**40), max_size=4),
    "top_logprobs": st.integers(-5, 30),
    "dimensions": st.integers(-5, 1000),
    "files": st.dictionaries(st.sampled_from(["model.gguf", "../x", "/abs", "a.safetensors", "config.json"]),
                             st.sampled_from(["sha256:" + "0" * 64, "sha256:xyz", ""]), max_size=2),
    "adapters": st.dictionaries(st.sampled_from(["a.gguf", "../x"]), st.sampled_from(["sha256:" + "1" * 64, ""]),
                                max_size=2),
    "license": st.text(max_size=8) | st.lists(st.text(max_size=4) | JSON_VALUES, max_size=2),
    "info": st.dictionaries(st.sampled_from(["general.name", "x", "context_length", "embedding_length"]),
                            JSON_VALUES, max_size=3),
    "template": st.sampled_from(["{{ .Prompt }}", "{{ .Prompt ", "{{ range .Messages }}{{ end }}", "{{ if }}", ""]),
    "prompt": st.text(max_size=12),
    "suffix": st.text(max_size=4),
    "system": st.text(max_size=6),
}
BY_GO_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=12),
    "bool": st.booleans(),
    "int": st.integers(-(2**65), 2**65),
    "float64": st.floats(allow_nan=False),
    "interface {}": JSON_VALUES,
    "map[string]interface {}": st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3),
    "map[string]string": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
    "[]interface {}": st.lists(JSON_VALUES, max_size=3),
    "[]api.ImageData": IMAGES,
    "[]api.Message": st.lists(MESSAGE, max_size=3),
    "[]int": st.lists(st.integers(-5, 2**40), max_size=4),
}


def _typed(name: str, go_type: str | None) -> st.SearchStrategy[Any]:
    if name in BY_NAME:
        return BY_NAME[name]
    return BY_GO_TYPE.get(go_type or "", JSON_VALUES)


def _bodies(
    spec: dict[str, Any],
    overrides: dict[str, st.SearchStrategy[Any]] | None = None,
    required: tuple[str, ...] = ("model", "source", "destination"),
) -> st.SearchStrategy[Any]:
    """Objects with the endpoint's own fields: well typed, or with one field of a random type, or
    with unknown keys too; or any JSON value at all. The `required` fields are always there (the
    names, so that most bodies get past the model lookup)."""
    typed = {key: _typed(key, getattr(kind, "go_type", None)) for key, kind in spec.items()}
    typed.update(overrides or {})
    required_fields = {key: typed.pop(key) for key in required if key in typed}
    well_typed = st.fixed_dictionaries(required_fields, optional=typed)
    one_mistyped = st.builds(lambda body, key, value: {**body, key: value},
                             well_typed, st.sampled_from(sorted(spec)), JSON_VALUES)
    with_extra = st.builds(lambda a, b: {**b, **a}, well_typed,
                           st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2))
    return st.one_of(well_typed, well_typed, well_typed, one_mistyped, with_extra, JSON_VALUES)


ROUTES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("POST", "/api/generate"): _bodies(GENERATE_SPEC),
    ("POST", "/api/chat"): _bodies(CHAT_SPEC),
    ("POST", "/api/embed"): _bodies(EMBED_SPEC),
    ("POST", "/api/embeddings"): _bodies(EMBEDDINGS_SPEC),
    ("POST", "/api/show"): _bodies(SHOW_SPEC),
    ("POST", "/api/copy"): _bodies(COPY_SPEC),
    ("DELETE", "/api/delete"): _bodies(NAME_SPEC),
    ("POST", "/api/create"): _bodies(
        CREATE_SPEC,
        {
            # a `from` model that is not here would be pulled from the registry
            "from": st.sampled_from(["tiny", "", "tools"]),
            # quantizing the weightless tiny GGUF fails in llama.cpp (a 500 in Ollama too)
            "quantize": st.just(""),
            "quantization": st.just(""),
            "model": MODEL_NAMES | st.text(min_size=1, max_size=8),
            "draft_files": st.just({}),
            "draft_quantize": st.just(""),
        },
    ),
    ("POST", "/api/pull"): _bodies(TRANSFER_SPEC, {"model": INVALID_NAMES, "name": INVALID_NAMES}),
    ("POST", "/api/push"): _bodies(TRANSFER_SPEC, {"model": INVALID_NAMES, "name": INVALID_NAMES}),
    ("POST", "/v1/chat/completions"): _bodies(
        {"model": STRING, "messages": OBJECT_LIST, "stream": BOOL, "max_tokens": INT, "temperature": FLOAT,
         "stop": ANY, "tools": OBJECT_LIST, "response_format": MAP, "stream_options": MAP, "seed": INT},
        {"messages": st.lists(MESSAGE, min_size=1, max_size=3), "stream": st.just(False)},
        required=("model", "messages"),
    ),
    ("POST", "/v1/completions"): _bodies(
        {"model": STRING, "prompt": ANY, "stream": BOOL, "max_tokens": INT, "suffix": STRING, "stop": ANY,
         "echo": BOOL},
        {"stream": st.just(False), "prompt": st.text(max_size=8) | JSON_VALUES},
        required=("model", "prompt"),
    ),
    ("POST", "/v1/embeddings"): _bodies(
        {"model": STRING, "input": ANY, "dimensions": INT, "encoding_format": STRING},
        {"encoding_format": st.sampled_from(["float", "base64", "bogus"]), "input": BY_NAME["input"]},
        required=("model", "input"),
    ),
}
# Bodies that are not JSON, or not what a JSON decoder expects.
RAW_BODIES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b'{"model": "tiny"', b"[]", b"null", b'{"model": NaN}', b"\xff\xfe", b'"x"', b"1e999"]),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()[:-1]),
)


@pytest.fixture
def fuzz_app(app: Flask) -> Iterator[Flask]:
    yield app
    app.extensions["pyollama"].close()


def _send(client: FlaskClient, method: str, path: str, data: bytes) -> tuple[int, bytes]:
    response = client.open(path, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        return response.status_code, response.get_data()
    finally:
        response.close()


def _check(path: str, status: int, data: bytes) -> None:
    openai = path.startswith("/v1/")
    if status >= 400:
        body = json.loads(data)
        error = body["error"]
        message = error["message"] if openai else error
        assert isinstance(message, str) and message, body
        assert set(body) == {"error"}, body
        if openai:
            assert isinstance(error, dict) and isinstance(error.get("type"), str), body
        assert "Traceback" not in message
        if status >= 500:
            assert status == 500 and message.startswith(LOAD_FAILURE), (path, status, body)


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
@SETTINGS
@given(data=st.data())
def test_json_bodies_never_answer_500_outside_a_model_load(
    fuzz_app: Flask, method: str, path: str, data: st.DataObject
) -> None:
    body = data.draw(ROUTES[(method, path)], label="body")
    status, answer = _send(fuzz_app.test_client(), method, path, json.dumps(body).encode())
    _check(path, status, answer)


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
@SETTINGS
@given(raw=RAW_BODIES)
def test_malformed_bodies_answer_400_with_error_text(fuzz_app: Flask, method: str, path: str, raw: bytes) -> None:
    status, answer = _send(fuzz_app.test_client(), method, path, raw)
    _check(path, status, answer)
    try:
        json.loads(raw)
    except ValueError:
        assert status == 400, (raw, answer)


@SETTINGS
@given(digest=st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "A" * 64, "sha256-" + "a" * 64, "md5:x", ""])
       | st.text(max_size=20), body=st.binary(max_size=64))
def test_blob_uploads_never_answer_500(fuzz_app: Flask, digest: str, body: bytes) -> None:
    status, answer = _send(fuzz_app.test_client(), "POST", f"/api/blobs/{digest}", body)
    assert status in (200, 201, 400, 404, 405), (digest, status, answer)
    if status == 400:
        assert isinstance(json.loads(answer)["error"], str)


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
def test_deeply_nested_body_answers_400_exceeded_max_depth(fuzz_app: Flask, method: str, path: str) -> None:
    for raw in (b"[" * 100_000, b'{"model": ' + b"[" * 100_000, b'{"a":' * 50_000):
        status, answer = _send(fuzz_app.test_client(), method, path, raw)
        _check(path, status, answer)
        assert status == 400, answer[:200]
        message = json.loads(answer)["error"]
        assert (message["message"] if path.startswith("/v1/") else message) == "exceeded max depth"


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
def test_lone_surrogate_escapes_never_answer_500(fuzz_app: Flask, method: str, path: str) -> None:
    """Go decodes an unpaired surrogate escape as U+FFFD; so does pyollama, so that no text a
    client sends can fail later in a UTF-8 encoder (tokenizer, file name, the error reply)."""
    lone = "\\ud800 and \\udfff"
    bodies = [
        f'{{"model": "tiny{lone}", "prompt": "x"}}',
        f'{{"model": "tiny", "prompt": "{lone}", "system": "{lone}", "stream": false}}',
        f'{{"model": "tiny", "messages": [{{"role": "user", "content": "{lone}"}}], "stream": false}}',
        f'{{"model": "tiny", "input": ["{lone}"], "{lone}": 1}}',
        f'{{"name": "{lone}", "model": "{lone}", "source": "tiny", "destination": "{lone}"}}',
    ]
    network = path in ("/api/pull", "/api/push")  # a valid name there would go to a registry
    for body in bodies[:1] + bodies[4:] if network else bodies:
        status, answer = _send(fuzz_app.test_client(), method, path, body.encode())
        _check(path, status, answer)
        assert "\\ud800" not in answer.decode("utf-8")


def test_lone_surrogate_in_model_name_is_refused_as_a_name(client: FlaskClient) -> None:
    response = client.post("/api/show", data=b'{"model": "nope\\ud800"}', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid model name"}
