"""Hostile clients against a real server with a real model loaded (smollm2 through waitress).

Requests are generated from whole classes of bad input, each put into every field of every
endpoint where it fits: numbers past float64 (`1e400`), past the C int or float the option
reaches in llama.cpp, past Go's int; lone UTF-16 surrogates; durations no timer can hold;
malformed tool definitions and tool calls; wrong types. Every answer must be below 500 with
a JSON error for a 4xx, and the server must still generate and list its models afterwards.
Valid requests that survive the mutation generate one token, so the model really runs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyollama.options import OPTIONS
from pyollama.server import create_app
from tests.server.conftest import LiveServer, serving, smollm2_config

MODEL = "smollm2:135m"
EMBEDDER = "all-minilm"  # not in this store: embed requests reach the 404 path, never a load

# Raw JSON number literals (written into the body as text, so that 1e400 stays 1e400).
NUMBERS = [
    "1e400", "-1e400", "1" + "0" * 400, "2147483648", "-2147483649", "9223372036854775808",
    "1e39", "-1e39", "1e308", "1e15", "-3", "100000", "0.5", "-0.0",
]
LONE = ["\\ud800", "a\\udfffb", "\\udbff\\udbff", "\\ud800\\u0041"]
STRINGS = [*(f'"{s}"' for s in LONE), '"1e400s"', '"9999999999h"', '"-9999999999h"', '"x"', '""']
VALUES = [*NUMBERS, *STRINGS, "true", "null", "[]", "{}", "[1e400]", '{"a": 1e400}', "[" * 20 + "]" * 20]
TOOLS = [
    "[1]", '["x"]', '[{"type": "function", "function": 3}]', '[{"type": "function", "function": {"name": 5}}]',
    '[{"type": "function", "function": {"name": "f", "parameters": 5}}]',
    '[{"type": "function", "function": {"name": "f", "parameters": {"required": "x"}}}]',
    '[{"type": "function", "function": {"name": "f", "parameters": {"properties": []}}}]',
]
TOOL_CALL_ARGUMENTS = ['"a string"', "3", "[1, 2]", "true", "1e400", '"{\\"not\\": json"']

BASE_BODIES: dict[str, dict[str, Any]] = {
    "/api/generate": {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}},
    "/api/chat": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False,
                  "options": {"num_predict": 1}},
    "/api/embed": {"model": MODEL, "input": "Hi"},
    "/api/embeddings": {"model": MODEL, "prompt": "Hi"},
    "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
    "/v1/completions": {"model": MODEL, "prompt": "Hi", "max_tokens": 1},
    "/v1/embeddings": {"model": MODEL, "input": "Hi"},
    "/api/show": {"model": MODEL},
    "/api/create": {"model": "hostile", "from": MODEL, "stream": False},
    "/api/copy": {"source": MODEL, "destination": "hostile-copy"},
    "/api/push": {"model": "never-created", "stream": False},
}
# Fields each class goes into, besides every option (for the endpoints that take options).
FIELDS: dict[str, list[str]] = {
    "/api/generate": ["prompt", "system", "template", "suffix", "context", "keep_alive", "top_logprobs", "model",
                      "format", "think", "images"],
    "/api/chat": ["keep_alive", "top_logprobs", "model", "format", "think", "tools", "messages"],
    "/api/embed": ["input", "keep_alive", "dimensions", "truncate", "model"],
    "/api/embeddings": ["prompt", "keep_alive", "model"],
    "/v1/chat/completions": ["max_tokens", "temperature", "seed", "top_p", "top_logprobs", "frequency_penalty",
                             "tools", "messages", "stop"],
    "/v1/completions": ["max_tokens", "temperature", "seed", "prompt", "logprobs", "stop", "suffix"],
    "/v1/embeddings": ["input", "dimensions", "model"],
    "/api/show": ["model", "verbose"],
    "/api/create": ["model", "system", "template", "parameters", "quantize", "messages", "license"],
    "/api/copy": ["source", "destination"],
    "/api/push": ["insecure"],
}
TAKES_OPTIONS = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings")
PLACEHOLDER = "@@VALUE@@"


def _body(path: str, field: str, value: str) -> str:
    """BASE_BODIES[path] with `field` (or `options.<name>`, `parameters.<name>`, a tool call's
    arguments, a message's content) set to the raw JSON `value`."""
    body = json.loads(json.dumps(BASE_BODIES[path]))
    if field.startswith("options."):
        body.setdefault("options", {})[field.split(".", 1)[1]] = PLACEHOLDER
    elif field.startswith("parameters."):
        body["parameters"] = {field.split(".", 1)[1]: PLACEHOLDER}
    elif field == "tool_call.arguments":
        body["messages"] = [
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": PLACEHOLDER}}]},
            {"role": "user", "content": "Hi"},
        ]
    elif field == "message.content":
        body["messages"] = [{"role": "user", "content": PLACEHOLDER}]
    else:
        body[field] = PLACEHOLDER
    return json.dumps(body).replace(json.dumps(PLACEHOLDER), value)


def _requests() -> st.SearchStrategy[tuple[str, str]]:
    cases: list[st.SearchStrategy[tuple[str, str]]] = []
    for path, fields in FIELDS.items():
        targets = list(fields)
        if path in TAKES_OPTIONS:
            targets += [f"options.{name}" for name in OPTIONS]
        if path == "/api/create":
            targets += [f"parameters.{name}" for name in OPTIONS]
        if path in ("/api/chat", "/v1/chat/completions"):
            targets += ["message.content"]
        # a valid reply length would only make the model write for minutes (a context shift
        # keeps going): those fields get the invalid values
        bounded = ["options.num_predict", "max_tokens"]
        values = st.sampled_from(VALUES)
        cases.append(st.tuples(st.just(path), st.builds(_body, st.just(path),
                                                        st.sampled_from([t for t in targets if t not in bounded]), values)))
        if any(t in bounded for t in targets):
            lengths = st.sampled_from([v for v in VALUES if v not in ("-3", "100000", "0.5", "-0.0")])
            cases.append(st.tuples(st.just(path), st.builds(_body, st.just(path),
                                                            st.sampled_from([t for t in targets if t in bounded]),
                                                            lengths)))
        if path in ("/api/chat", "/v1/chat/completions"):
            cases.append(st.tuples(st.just(path), st.builds(_body, st.just(path), st.just("tools"),
                                                            st.sampled_from(TOOLS))))
        if path == "/api/push":  # never a name a create made: that push would go to the registry
            names = st.sampled_from([v for v in VALUES if not v.startswith('"') or "\\u" in v or v == '""'])
            cases.append(st.tuples(st.just(path), st.builds(_body, st.just(path), st.just("model"), names)))
        if path == "/api/chat":
            cases.append(st.tuples(st.just(path), st.builds(_body, st.just(path), st.just("tool_call.arguments"),
                                                            st.sampled_from(TOOL_CALL_ARGUMENTS))))
    return st.one_of(cases)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory, smollm2_models: Path) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("hostile") / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    with serving(create_app(smollm2_config(models, num_parallel=2))) as server:
        yield server


def _check_answer(path: str, status: int, text: str) -> None:
    assert status < 500, (path, status, text[:400])
    if status >= 400:
        body = json.loads(text)
        assert set(body) == {"error"}, body
        message = body["error"]["message"] if path.startswith("/v1/") else body["error"]
        assert isinstance(message, str) and message and "Traceback" not in message, body
        assert "incompatible" not in message and "C int" not in message, body  # no binding internals


def _still_serves(server: LiveServer) -> None:
    reply = requests.post(f"{server.url}/api/generate", timeout=300,
                          json={"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
    assert reply.status_code == 200, reply.text
    assert reply.json()["eval_count"] >= 1
    for endpoint in ("/api/ps", "/api/tags"):
        answer = requests.get(server.url + endpoint, timeout=30)
        assert answer.status_code == 200, (endpoint, answer.text)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=_requests())
def test_hostile_requests_never_answer_500_with_a_real_model(hostile_server: LiveServer, case: tuple[str, str]) -> None:
    path, body = case
    reply = requests.post(hostile_server.url + path, data=body.encode("utf-8"), timeout=300,
                          headers={"Content-Type": "application/json"})
    _check_answer(path, reply.status_code, reply.text)
    assert "\\ud800" not in reply.text


def test_the_server_still_works_after_the_hostile_requests(hostile_server: LiveServer) -> None:
    _still_serves(hostile_server)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ('{"num_predict": 1e400}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
        ('{"num_thread": 100000}', 'option "num_thread" must be between -2147483648 and 512'),
        ('{"top_k": 1e11}', 'option "top_k" must be between -2147483648 and 2147483647'),
        ('{"repeat_last_n": 2147483648}', 'option "repeat_last_n" must be between -2147483648 and 2147483647'),
        ('{"temperature": 1e39}', ('option "temperature" must be between -3.4028234663852886e+38 and '
                                  "3.4028234663852886e+38")),
        ('{"seed": 1e30}', 'option "seed" must be between -9223372036854775808 and 9223372036854775807'),
    ],
)
def test_out_of_range_options_answer_400_naming_the_option(hostile_server: LiveServer, options: str, error: str) -> None:
    body = f'{{"model": "{MODEL}", "prompt": "Hi", "stream": false, "options": {options}}}'
    reply = requests.post(f"{hostile_server.url}/api/generate", data=body, timeout=300)
    assert (reply.status_code, reply.json()) == (400, {"error": error})


def test_negative_num_thread_means_the_default_as_in_ollama(hostile_server: LiveServer) -> None:
    reply = requests.post(f"{hostile_server.url}/api/generate", timeout=300, json={
        "model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1, "num_thread": -3}})
    assert reply.status_code == 200, reply.text


def test_huge_keep_alive_means_forever_and_ps_keeps_answering(hostile_server: LiveServer) -> None:
    for keep_alive in (1e15, 1e300, 2**70):
        reply = requests.post(f"{hostile_server.url}/api/generate", timeout=300, json={
            "model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": keep_alive, "options": {"num_predict": 1}})
        assert reply.status_code == 200, reply.text
        ps = requests.get(f"{hostile_server.url}/api/ps", timeout=30)
        assert ps.status_code == 200, ps.text
        (loaded,) = [m for m in ps.json()["models"] if m["name"] == MODEL]
        assert loaded["expires_at"] > "2300"  # forever, as Ollama shows it: about 292 years on
    reply = requests.post(f"{hostile_server.url}/api/generate", timeout=300,
                          json={"model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": "9999999999h"})
    assert (reply.status_code, reply.json()) == (400, {"error": 'time: invalid duration "9999999999h"'})
    requests.post(f"{hostile_server.url}/api/generate", timeout=300, json={"model": MODEL, "keep_alive": "5m"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"tools": [1]}, "json: cannot unmarshal number into Go struct field ChatRequest.tools of type api.Tool"),
        ({"tools": [{"type": "function", "function": {"name": 5}}]},
         "json: cannot unmarshal number into Go struct field ChatRequest.tools.function.name of type string"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]},
         ("json: cannot unmarshal string into Go struct field ChatRequest.messages.tool_calls.function.arguments "
         "of type api.ToolCallFunctionArguments")),
        ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}]},
         ("json: cannot unmarshal number into Go struct field ChatRequest.messages.tool_calls.function.arguments "
         "of type api.ToolCallFunctionArguments")),
    ],
)
def test_malformed_tools_and_tool_calls_answer_400(hostile_server: LiveServer, body: dict[str, Any], error: str) -> None:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False, **body}
    reply = requests.post(f"{hostile_server.url}/api/chat", json=request, timeout=300)
    assert (reply.status_code, reply.json()) == (400, {"error": error})


def test_push_of_a_model_that_does_not_exist_is_404(hostile_server: LiveServer) -> None:
    reply = requests.post(f"{hostile_server.url}/api/push", json={"model": "nothing-here", "stream": False}, timeout=60)
    assert (reply.status_code, reply.json()) == (404, {"error": "model 'nothing-here:latest' not found"})
    streamed = requests.post(f"{hostile_server.url}/api/push", json={"model": "nothing-here"}, timeout=60)
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert lines == [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"},
                     {"error": "model 'nothing-here:latest' not found"}]


def test_a_client_token_id_past_the_vocabulary_is_a_clear_400(hostile_server: LiveServer) -> None:
    for token in (99999999999, -5, 49152):
        reply = requests.post(f"{hostile_server.url}/api/generate", timeout=300, json={
            "model": MODEL, "prompt": "Hi", "context": [1, token], "stream": False, "options": {"num_predict": 1}})
        assert (reply.status_code, reply.json()) == (
            400, {"error": f"invalid context: token id {token} out of range [0, 49152)"})
