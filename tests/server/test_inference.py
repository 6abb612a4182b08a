"""Generate, chat and embed end to end: waitress + the engine + SmolLM2-135M, through the official
`ollama` client and raw HTTP. Outputs are kept short (the CI machine has two cores)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import ollama
import pytest
import requests

from pyollama.store.manifests import Store
from pyollama.store.names import ModelName
from tests.server.conftest import CHATML, CHATML_TOOLS, LiveServer, add_model

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 12}


@pytest.fixture(scope="module")
def client(inference_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=inference_server.url)


@pytest.fixture(scope="module")
def chatml_model(inference_server: LiveServer) -> str:
    """SmolLM2's weights with an Ollama Go template layer (ChatML), so prompts go through
    pyollama's Go template renderer instead of the GGUF's Jinja template."""
    store: Store = inference_server.app.extensions["pyollama"].store
    weights = store.load_record(ModelName.parse(MODEL)).model_path
    assert weights is not None
    add_model(store, "smollm2-chatml", weights, template=CHATML, params={"stop": ["<|im_end|>"]})
    return "smollm2-chatml"


@pytest.fixture(scope="module")
def tools_model(inference_server: LiveServer) -> str:
    """SmolLM2 with a Go template that uses `.Tools` (so the model has the tools capability)."""
    store: Store = inference_server.app.extensions["pyollama"].store
    weights = store.load_record(ModelName.parse(MODEL)).model_path
    assert weights is not None
    add_model(store, "smollm2-tools", weights, template=CHATML_TOOLS, params={"stop": ["<|im_end|>"]})
    return "smollm2-tools"


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=120)


def _stream(server: LiveServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with requests.post(f"{server.url}{path}", json=body, stream=True, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line]


def _ps_names(server: LiveServer) -> list[str]:
    return [m["name"] for m in requests.get(f"{server.url}/api/ps", timeout=10).json()["models"]]


# -- generate ---------------------------------------------------------------------------------------


def test_generate_without_stream_returns_one_object_with_metrics(inference_server: LiveServer) -> None:
    response = _post(inference_server, "/api/generate",
                     {"model": MODEL, "prompt": "Why is the sky blue?", "stream": False, "options": GREEDY})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["model"] == MODEL
    assert body["done"] is True
    assert body["response"].strip()
    assert body["done_reason"] in ("stop", "length")
    if body["done_reason"] == "length":
        assert body["eval_count"] == GREEDY["num_predict"]
    assert body["context"] and all(isinstance(t, int) for t in body["context"])
    for key in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
        assert body[key] > 0, key
    assert body["total_duration"] >= body["eval_duration"]


def test_generate_stream_matches_non_stream_greedy(client: ollama.Client) -> None:
    whole = client.generate(model=MODEL, prompt="Name three colors.", options=GREEDY)
    chunks = list(client.generate(model=MODEL, prompt="Name three colors.", options=GREEDY, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.response for c in chunks) == whole.response
    assert chunks[-1].context == whole.context
    assert chunks[-1].done_reason == whole.done_reason


def test_generate_raw_sends_prompt_as_is_and_returns_no_context(inference_server: LiveServer) -> None:
    body = _post(inference_server, "/api/generate",
                 {"model": MODEL, "prompt": "The capital of France is", "raw": True, "stream": False,
                  "options": GREEDY}).json()
    assert body["response"]
    assert "context" not in body


def test_generate_context_continues_conversation(client: ollama.Client) -> None:
    first = client.generate(model=MODEL, prompt="My name is Ada.", options=GREEDY)
    second = client.generate(model=MODEL, prompt="What is my name?", context=first.context, options=GREEDY)
    assert second.context is not None and len(second.context) > len(first.context or [])
    assert second.context[: len(first.context or [])] != []


def test_generate_same_seed_gives_same_output(client: ollama.Client) -> None:
    options = {"temperature": 1.0, "seed": 1234, "num_predict": 10}
    a = client.generate(model=MODEL, prompt="Write a word.", options=options).response
    b = client.generate(model=MODEL, prompt="Write a word.", options=options).response
    assert a == b


def test_generate_stop_string_spanning_tokens_never_leaks(client: ollama.Client) -> None:
    options = {"temperature": 0, "seed": 1, "num_predict": 16}
    full = client.generate(model=MODEL, prompt="Explain rain in one sentence.", options=options).response
    assert len(full) > 12
    stop = full[6:12]  # six characters from the middle: almost surely more than one token
    expected = full[: full.index(stop)]
    stopped = client.generate(model=MODEL, prompt="Explain rain in one sentence.", options={**options, "stop": [stop]})
    assert stopped.response == expected
    assert stopped.done_reason == "stop"
    streamed = client.generate(model=MODEL, prompt="Explain rain in one sentence.",
                               options={**options, "stop": [stop]}, stream=True)
    assert "".join(c.response for c in streamed) == expected


def test_generate_streams_whole_utf8_characters(inference_server: LiveServer) -> None:
    lines = _stream(inference_server, "/api/generate",
                    {"model": MODEL, "prompt": "你好🙂🙂🙂🙂 中文 🙂🙂", "raw": True,
                     "options": {"temperature": 0, "num_predict": 16}})
    text = "".join(line.get("response", "") for line in lines)
    assert text
    assert all("\ufffd" not in line.get("response", "") for line in lines)
    assert lines[-1]["done"] is True


def test_generate_format_json_constrains_output(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="Give a JSON object with a name.", format="json",
                            options={"temperature": 0, "num_predict": 8})
    assert reply.response.lstrip().startswith(("{", "["))


# -- chat -------------------------------------------------------------------------------------------


def test_chat_without_stream_answers_with_message(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], options=GREEDY)
    assert reply.message.role == "assistant"
    assert reply.message.content
    assert reply.done and reply.done_reason in ("stop", "length")
    assert reply.eval_count and reply.prompt_eval_count


def test_chat_stream_with_history_matches_non_stream(client: ollama.Client) -> None:
    messages = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    chunks = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert "".join(c.message.content for c in chunks) == whole.message.content
    final = chunks[-1]
    assert final.done and final.message.content == "" and final.done_reason == whole.done_reason


def test_chat_raw_stream_lines_have_ollama_shape(inference_server: LiveServer) -> None:
    lines = _stream(inference_server, "/api/chat",
                    {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": GREEDY})
    for line in lines[:-1]:
        assert set(line) == {"model", "created_at", "message", "done"}
        assert line["message"]["role"] == "assistant"
    final = lines[-1]
    assert final["done"] is True and final["message"] == {"role": "assistant", "content": ""}
    assert "context" not in final
    assert final["eval_count"] >= 1


def test_chat_renders_gguf_jinja_template_without_template_layer(inference_server: LiveServer) -> None:
    body = _post(inference_server, "/api/chat",
                 {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "_debug_render_only": True}).json()
    assert body["done"] is False
    assert body["_debug_info"]["rendered_template"] == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chat_renders_go_template_layer(inference_server: LiveServer, chatml_model: str) -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    body = _post(inference_server, "/api/chat",
                 {"model": chatml_model, "messages": messages, "_debug_render_only": True, "keep_alive": 0}).json()
    assert body["_debug_info"]["rendered_template"] == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    reply = _post(inference_server, "/api/chat",
                  {"model": chatml_model, "messages": messages, "stream": False, "options": GREEDY,
                   "keep_alive": 0}).json()
    assert reply["message"]["content"]


def test_generate_renders_request_template_field(inference_server: LiveServer) -> None:
    body = _post(inference_server, "/api/generate",
                 {"model": MODEL, "prompt": "2+2?", "template": "Q: {{ .Prompt }}\nA:",
                  "_debug_render_only": True}).json()
    assert body["_debug_info"]["rendered_template"] == "Q: 2+2?\nA:"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
    },
}
# Forces a JSON tool call, so a 135M model reliably produces one.
CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["get_weather"]},
        "arguments": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Tokyo"]}},
            "required": ["city"],
        },
    },
    "required": ["name", "arguments"],
}


@pytest.mark.parametrize("stream", [False, True])
def test_chat_returns_tool_calls_from_go_template_model(client: ollama.Client, tools_model: str, stream: bool) -> None:
    messages = [{"role": "user", "content": "What is the weather in Tokyo?"}]
    response = client.chat(model=tools_model, messages=messages, tools=[WEATHER_TOOL], format=CALL_SCHEMA,
                           options={"temperature": 0, "num_predict": 40}, stream=stream, keep_alive=0)
    chunks = list(response) if stream else [response]
    calls = [call for chunk in chunks for call in chunk.message.tool_calls or []]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Tokyo"}
    assert "".join(chunk.message.content for chunk in chunks).strip() == ""


# -- embeddings -------------------------------------------------------------------------------------


def test_embed_returns_normalised_vectors_with_metrics(client: ollama.Client) -> None:
    result = client.embed(model=MODEL, input=["hello world", "good morning"])
    assert len(result.embeddings) == 2
    for vector in result.embeddings:
        assert len(vector) == 576
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert result.prompt_eval_count and result.total_duration


def test_embed_dimensions_truncates_and_renormalises(client: ollama.Client) -> None:
    full = client.embed(model=MODEL, input="hello world").embeddings[0]
    short = client.embed(model=MODEL, input="hello world", dimensions=8).embeddings[0]
    assert len(short) == 8
    assert math.isclose(math.sqrt(sum(x * x for x in short)), 1.0, rel_tol=1e-4)
    norm = math.sqrt(sum(x * x for x in full[:8]))
    assert short == pytest.approx([x / norm for x in full[:8]], rel=1e-4, abs=1e-6)


def test_embed_empty_input_loads_and_returns_no_vectors(inference_server: LiveServer) -> None:
    assert _post(inference_server, "/api/embed", {"model": MODEL, "input": []}).json() == {
        "model": MODEL,
        "embeddings": [],
    }


def test_embed_refuses_too_long_input_without_truncate(inference_server: LiveServer) -> None:
    response = _post(inference_server, "/api/embed",
                     {"model": MODEL, "input": "word " * 5000, "truncate": False})
    assert response.status_code == 400
    assert response.json() == {"error": "the input length exceeds the context length"}


def test_legacy_embeddings_returns_raw_vector(client: ollama.Client) -> None:
    vector = client.embeddings(model=MODEL, prompt="hello world").embedding
    assert len(vector) == 576
    assert not math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)
    assert client.embeddings(model=MODEL, prompt="").embedding == []


# -- the CLI against the running server ---------------------------------------------------------------


def test_cli_run_streams_reply(inference_server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from pyollama.cli import main

    monkeypatch.setenv("OLLAMA_HOST", inference_server.url)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert main(["run", MODEL, "Say", "hello.", "--verbose"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    assert "eval count:" in captured.err


# -- load, unload, keep-alive, cancellation: last, since each unload makes the next request reload ----


def test_generate_empty_prompt_loads_and_keep_alive_zero_unloads(inference_server: LiveServer) -> None:
    loaded = _post(inference_server, "/api/generate", {"model": MODEL}).json()
    assert (loaded["done"], loaded["done_reason"], loaded["response"]) == (True, "load", "")
    ps = requests.get(f"{inference_server.url}/api/ps", timeout=10).json()["models"]
    assert [m["name"] for m in ps] == [MODEL]
    assert ps[0]["context_length"] == 2048
    assert ps[0]["size"] > 0 and ps[0]["size_vram"] == 0
    assert ps[0]["digest"] and ps[0]["details"]["family"] == "llama"
    unloaded = _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert _ps_names(inference_server) == []


def test_chat_empty_messages_load_then_unload(inference_server: LiveServer) -> None:
    loaded = _post(inference_server, "/api/chat", {"model": MODEL, "messages": []}).json()
    assert loaded["done_reason"] == "load"
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert _ps_names(inference_server) == [MODEL]
    unloaded = _post(inference_server, "/api/chat", {"model": MODEL, "messages": [], "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert _ps_names(inference_server) == []


def test_keep_alive_expires_model(inference_server: LiveServer) -> None:
    _post(inference_server, "/api/chat", {"model": MODEL, "keep_alive": "1s"})
    assert _ps_names(inference_server) == [MODEL]
    deadline = time.monotonic() + 10
    while _ps_names(inference_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ps_names(inference_server) == []


def test_disconnect_cancels_generation_and_releases_runner(inference_server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Count to one thousand.", "keep_alive": 0,
            "options": {"num_predict": 2000, "temperature": 0}}
    with requests.post(f"{inference_server.url}/api/generate", json=body, stream=True, timeout=60) as response:
        first = next(response.iter_lines())
        assert json.loads(first)["done"] is False
    # With keep_alive 0 the model unloads as soon as the request lets go of it: that happens
    # only if the server noticed the disconnect and cancelled the 2000-token generation.
    deadline = time.monotonic() + 15
    while _ps_names(inference_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ps_names(inference_server) == []


def test_generate_options_change_reloads_with_new_context(inference_server: LiveServer) -> None:
    _post(inference_server, "/api/generate", {"model": MODEL, "options": {"num_ctx": 1024}})
    ps = requests.get(f"{inference_server.url}/api/ps", timeout=10).json()["models"]
    assert ps[0]["context_length"] == 1024
    _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": 0})


def test_chat_truncates_history_that_exceeds_context(inference_server: LiveServer) -> None:
    filler = "This is an old message about nothing in particular. " * 6
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(12):
        messages += [{"role": "user", "content": f"{i}: {filler}"}, {"role": "assistant", "content": "ok"}]
    messages.append({"role": "user", "content": "Say yes."})
    # A small num_ctx (a reload, undone by keep_alive 0) keeps the prompt evaluation short.
    body = _post(inference_server, "/api/chat",
                 {"model": MODEL, "messages": messages, "stream": False, "keep_alive": 0,
                  "options": {"temperature": 0, "num_predict": 2, "num_ctx": 512}}).json()
    assert body["done"] is True
    assert 0 < body["prompt_eval_count"] <= 512
