"""Generate, chat and embed end to end: waitress + the engine + SmolLM2-135M, through the official
`ollama` client and raw HTTP. Outputs are kept short (the CI machine has two cores)."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ollama
import pytest
import requests

from pyollama.config import Config
from pyollama.llama import Model
from pyollama.server import create_app
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.server.conftest import CHATML, CHATML_TOOLS, LiveServer, add_model, start_server, stop_server

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


@pytest.fixture(scope="module")
def vocab(smollm2_path: Path) -> Model:
    """SmolLM2's tokenizer alone, to see where the token boundaries of a reply fall."""
    return Model(smollm2_path, vocab_only=True)


STOP_PROMPT = "Explain rain in one sentence."
STOP_OPTIONS = {"temperature": 0, "seed": 1, "num_predict": 16}


@pytest.fixture(scope="module")
def stop_case(client: ollama.Client, vocab: Model) -> tuple[str, str]:
    """(stop, expected reply): a stop string that starts inside one generated token and ends
    inside the next, and the greedy reply cut just before it."""
    full = client.generate(model=MODEL, prompt=STOP_PROMPT, options=STOP_OPTIONS)
    assert full.done_reason == "length" and full.eval_count == STOP_OPTIONS["num_predict"]
    assert full.context is not None
    generated = full.context[-full.eval_count :]  # context = prompt tokens + the generated ones
    text = full.response
    assert vocab.detokenize(generated) == text and text.isascii()
    ends = [len(vocab.detokenize(generated[: i + 1])) for i in range(len(generated))]
    for i in range(1, len(ends)):
        start, boundary, end = ends[i - 2] if i >= 2 else 0, ends[i - 1], ends[i]
        if boundary - start >= 3 and end - boundary >= 3:
            stop = text[boundary - 2 : boundary + 2]
            if text.index(stop) == boundary - 2:
                break
    else:
        raise AssertionError(f"no two long adjacent tokens in {text!r}")
    # the stop string starts two characters into one token and ends two into the next
    assert start < boundary - 2 and boundary + 2 < end
    assert len(vocab.tokenize(stop, add_special=False)) >= 2
    return stop, text[: boundary - 2]


def test_generate_stop_string_spanning_tokens_never_leaks(client: ollama.Client, stop_case: tuple[str, str]) -> None:
    stop, expected = stop_case
    options = {**STOP_OPTIONS, "stop": [stop]}
    stopped = client.generate(model=MODEL, prompt=STOP_PROMPT, options=options)
    assert stopped.response == expected
    assert stopped.done_reason == "stop"
    chunks = [c.response or "" for c in client.generate(model=MODEL, prompt=STOP_PROMPT, options=options, stream=True)]
    assert "".join(chunks) == expected  # exactly the text before it: no part of the stop string


def test_model_parameter_stop_never_appears_even_in_part(
    inference_server: LiveServer, client: ollama.Client, stop_case: tuple[str, str]
) -> None:
    stop, expected = stop_case
    created = _post(inference_server, "/api/create",
                    {"model": "smollm2-stop", "from": MODEL, "parameters": {"stop": [stop]}, "stream": False})
    assert created.status_code == 200 and created.json() == {"status": "success"}
    assert client.show("smollm2-stop").parameters == f'stop                           "{stop}"'
    stopped = client.generate(model="smollm2-stop", prompt=STOP_PROMPT, options=STOP_OPTIONS)
    assert (stopped.response, stopped.done_reason) == (expected, "stop")
    chunks = [c.response or "" for c in client.generate(model="smollm2-stop", prompt=STOP_PROMPT, options=STOP_OPTIONS,
                                                  stream=True, keep_alive=0)]
    assert "".join(chunks) == expected  # exactly the text before it: no part of the stop string


@pytest.mark.parametrize("num_predict", [1, 5, 9])
def test_generate_num_predict_is_exact(inference_server: LiveServer, num_predict: int) -> None:
    # counting never ends by itself within a few tokens, so only num_predict stops it
    body = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": num_predict}}
    reply = _post(inference_server, "/api/generate", body).json()
    assert (reply["eval_count"], reply["done_reason"]) == (num_predict, "length")
    lines = _stream(inference_server, "/api/generate", {**body, "stream": True})
    assert (lines[-1]["eval_count"], lines[-1]["done_reason"]) == (num_predict, "length")
    assert "".join(line["response"] for line in lines) == reply["response"]


def test_chat_num_predict_is_exact(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 50."}],
                        options={"temperature": 0, "num_predict": 7})
    assert (reply.eval_count, reply.done_reason) == (7, "length")


# Greedy continuations of SmolLM2 that are Chinese, and end on a character boundary at this
# num_predict (the model spends two or three byte-level tokens on each character; a cut in the
# middle of one would end the reply with U+FFFD, as it does in Ollama).
CHINESE_RAW_PROMPT = "中文：你好，世界！中文：你好，世界！中文：你好，"
CHINESE_RAW_PREDICT = 11
CHINESE_CHAT = [{"role": "user", "content": "Translate to Chinese: I love you"}]
CHINESE_CHAT_PREDICT = 24


def _ndjson_lines(server: LiveServer, path: str, body: dict[str, Any]) -> list[bytes]:
    with requests.post(f"{server.url}{path}", json=body, stream=True, timeout=120) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line]


def _assert_whole_characters(pieces: list[str]) -> None:
    for piece in pieces:
        assert "\ufffd" not in piece, pieces
        piece.encode("utf-8")  # no lone surrogates: every piece is complete UTF-8 text


def _non_ascii(text: str) -> int:
    return sum(1 for ch in text if ord(ch) > 127)


def test_generate_stream_sends_whole_multibyte_characters(inference_server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": CHINESE_RAW_PROMPT, "raw": True,
            "options": {"temperature": 0, "num_predict": CHINESE_RAW_PREDICT}}
    lines = [json.loads(raw.decode("utf-8")) for raw in _ndjson_lines(inference_server, "/api/generate", body)]
    pieces = [line["response"] for line in lines]
    _assert_whole_characters(pieces)
    text = "".join(pieces)
    final = lines[-1]
    assert final["done"] is True and final["eval_count"] == CHINESE_RAW_PREDICT
    assert _non_ascii(text) >= 3
    # fewer characters than tokens: the characters were joined from several tokens each
    assert len(text) < final["eval_count"]
    whole = _post(inference_server, "/api/generate", {**body, "stream": False}).json()
    assert whole["response"] == text


def test_chat_stream_sends_whole_multibyte_characters(inference_server: LiveServer, vocab: Model) -> None:
    body = {"model": MODEL, "messages": CHINESE_CHAT,
            "options": {"temperature": 0, "num_predict": CHINESE_CHAT_PREDICT}}
    lines = [json.loads(raw.decode("utf-8")) for raw in _ndjson_lines(inference_server, "/api/chat", body)]
    pieces = [line["message"]["content"] for line in lines if line["message"]["content"]]
    text = "".join(pieces)
    if lines[-1]["done_reason"] == "length":
        # where num_predict cuts a character in two (on some CPUs' greedy output), what is left
        # of it is flushed at the very end, once; nothing before it is split
        pieces[-1] = pieces[-1].rstrip("\ufffd")
    _assert_whole_characters(pieces)
    assert _non_ascii(text) >= 3
    # the characters were joined from several tokens each (whatever else the greedy reply holds
    # on this CPU: some CPUs' SmolLM2 answers half in English)
    wide = "".join(ch for ch in text if ord(ch) > 127)
    assert len(vocab.tokenize(wide, False)) > len(wide)
    whole = _post(inference_server, "/api/chat", {**body, "stream": False}).json()
    assert whole["message"]["content"] == text


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


# -- /api/show on the real model ---------------------------------------------------------------------


def test_show_reports_gguf_metadata_details_and_capabilities(client: ollama.Client, vocab: Model) -> None:
    show = client.show(MODEL)
    info = show.modelinfo or {}
    assert info["general.architecture"] == "llama"
    meta = vocab.metadata()  # llama.cpp's own reading of the GGUF header (values as text)
    assert info["llama.context_length"] == int(meta["llama.context_length"]) == 8192
    assert info["llama.embedding_length"] == int(meta["llama.embedding_length"]) == 576
    assert info["llama.block_count"] == int(meta["llama.block_count"]) == 30
    assert info["general.parameter_count"] == 134_515_008
    assert info["tokenizer.ggml.model"] == "gpt2"
    assert info["tokenizer.ggml.bos_token_id"] == vocab.token_bos
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert show.capabilities == ["completion"]
    assert show.template == vocab.chat_template()
    assert show.details is not None
    assert show.details.model_dump() == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": "134.52M", "quantization_level": "Q4_1",
    }
    assert show.parameters == 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"'


def test_show_verbose_adds_tokenizer_arrays(inference_server: LiveServer, vocab: Model, smollm2_path: Path) -> None:
    from gguf import GGUFReader

    brief = _post(inference_server, "/api/show", {"model": MODEL}).json()
    verbose = _post(inference_server, "/api/show", {"model": MODEL, "verbose": True}).json()
    arrays = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges")
    # Ollama leaves arrays longer than five elements empty unless verbose
    assert all(brief["model_info"][key] == [] for key in arrays)
    tokens = verbose["model_info"]["tokenizer.ggml.tokens"]
    assert len(tokens) == vocab.n_vocab == 49152
    assert [tokens[i] for i in (0, 1, 2, 1000)] == [vocab.token_text(i) for i in (0, 1, 2, 1000)]
    assert len(verbose["model_info"]["tokenizer.ggml.token_type"]) == 49152
    assert len(verbose["model_info"]["tokenizer.ggml.merges"]) == 48900
    assert {k: v for k, v in verbose["model_info"].items() if k not in arrays} == {
        k: v for k, v in brief["model_info"].items() if k not in arrays}
    # tensors, as the GGUF lists them (Ollama sends them whether or not verbose)
    reader = GGUFReader(smollm2_path)
    expected = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(n) for n in t.shape]}
                for t in reader.tensors]
    assert verbose["tensors"] == brief["tensors"] == expected
    assert expected[0] == {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}


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


# -- keep_alive and /api/ps expires_at ---------------------------------------------------------------


def _ps_entry(server: LiveServer, name: str = MODEL) -> dict[str, Any]:
    (entry,) = [m for m in requests.get(f"{server.url}/api/ps", timeout=10).json()["models"] if m["name"] == name]
    return entry


def _expires_at(server: LiveServer) -> datetime:
    return datetime.fromisoformat(_ps_entry(server)["expires_at"])


def _seconds_left(server: LiveServer) -> float:
    return (_expires_at(server) - datetime.now(timezone.utc)).total_seconds()


@pytest.mark.parametrize(("keep_alive", "seconds"), [(120, 120), (42.5, 42.5), ("1h30m", 5400), ("10m", 600)])
def test_ps_expires_at_is_now_plus_keep_alive(inference_server: LiveServer, keep_alive: Any, seconds: float) -> None:
    loaded = _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": keep_alive}).json()
    assert loaded["done_reason"] == "load"
    assert _seconds_left(inference_server) == pytest.approx(seconds, abs=5)


@pytest.mark.parametrize("keep_alive", [-1, -0.5, "-1m"])
def test_ps_expires_at_is_centuries_away_for_negative_keep_alive(inference_server: LiveServer, keep_alive: Any) -> None:
    _post(inference_server, "/api/chat", {"model": MODEL, "messages": [], "keep_alive": keep_alive})
    # Ollama: now + the longest Go duration (about 292 years)
    assert _expires_at(inference_server).year >= datetime.now().year + 290


def test_ps_keeps_the_runners_keep_alive_when_a_request_sends_none(inference_server: LiveServer) -> None:
    _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": 120})
    reply = _post(inference_server, "/api/generate",
                  {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}).json()
    assert reply["done"] is True
    assert _seconds_left(inference_server) == pytest.approx(120, abs=5)


@pytest.mark.parametrize(("env_value", "seconds"), [("90s", 90), ("45", 45)])
def test_ps_expires_at_defaults_to_ollama_keep_alive(smollm2_models: Path, env_value: str, seconds: float) -> None:
    config = replace(
        Config.from_env({"HOME": str(smollm2_models.parent), "OLLAMA_KEEP_ALIVE": env_value}),
        models=smollm2_models, num_parallel=1, context_length=512, num_threads=2,
    )
    assert config.keep_alive == seconds
    app = create_app(config)
    server, running = start_server(app)
    try:
        assert _post(server, "/api/generate", {"model": MODEL}).json()["done_reason"] == "load"
        assert _seconds_left(server) == pytest.approx(seconds, abs=5)
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()


def test_generate_with_keep_alive_zero_unloads_once_answered(inference_server: LiveServer) -> None:
    _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": -1})
    assert MODEL in _ps_names(inference_server)
    reply = _post(inference_server, "/api/generate",
                  {"model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": 0,
                   "options": {"num_predict": 1}}).json()
    assert reply["done"] is True and reply["eval_count"] == 1
    assert MODEL not in _ps_names(inference_server)


# -- which options reload the model -------------------------------------------------------------------


def _loads(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "pyollama.scheduler" and r.getMessage().startswith("loaded model"))


def test_per_request_options_never_reload_but_load_time_options_do(
    inference_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyollama.scheduler")
    base = {"model": MODEL, "prompt": "Hi", "raw": True, "stream": False, "keep_alive": "10m"}
    first = _post(inference_server, "/api/generate", {**base, "options": {"num_predict": 1, "num_ctx": 2048}}).json()
    loads = _loads(caplog)
    before = _ps_entry(inference_server)
    assert before["context_length"] == 2048
    per_request: list[dict[str, Any]] = [
        {"temperature": 0.1}, {"top_k": 3}, {"top_p": 0.5}, {"min_p": 0.2}, {"seed": 7}, {"stop": ["x", "y"]},
        {"repeat_penalty": 1.3, "repeat_last_n": 8}, {"presence_penalty": 0.5, "frequency_penalty": 0.5},
        {"mirostat": 2}, {"num_keep": 1}, {"typical_p": 0.9},
    ]
    for options in per_request:
        reply = _post(inference_server, "/api/generate", {**base, "options": {"num_predict": 1, **options}}).json()
        assert reply["done"] is True, options
        # the runner was there already: load_duration is the wait for it, far below a load
        assert reply["load_duration"] < first["load_duration"] or reply["load_duration"] < 50_000_000, options
    assert _loads(caplog) == loads
    after = _ps_entry(inference_server)
    assert {k: after[k] for k in ("digest", "size", "context_length")} == {
        k: before[k] for k in ("digest", "size", "context_length")}

    for options, context_length in (({"num_ctx": 1024}, 1024), ({"num_ctx": 1024, "num_batch": 64}, 1024),
                                     ({"num_ctx": 1024, "num_batch": 64, "num_thread": 1}, 1024)):
        reply = _post(inference_server, "/api/generate", {**base, "options": {"num_predict": 1, **options}}).json()
        assert reply["done"] is True
        loads += 1
        assert _loads(caplog) == loads, options
        assert _ps_entry(inference_server)["context_length"] == context_length
    _post(inference_server, "/api/generate", {"model": MODEL, "keep_alive": 0})


# -- a client that goes away -------------------------------------------------------------------------


def _canceled_count(server: LiveServer) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pyollama_requests_canceled_total" and sample.labels == {
                "endpoint": "/api/generate", "method": "POST"}:
                return sample.value
    return 0.0


def test_disconnect_is_logged_as_499_request_canceled(
    inference_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyollama.access")
    before = _canceled_count(inference_server)
    body: dict[str, Any] = {"model": MODEL, "prompt": "Count to one thousand.", "options": {"num_predict": 2000, "temperature": 0}}
    with requests.post(f"{inference_server.url}/api/generate", json=body, stream=True, timeout=60) as response:
        assert response.status_code == 200
        assert json.loads(next(response.iter_lines()))["done"] is False
    logged: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not logged and time.monotonic() < deadline:
        # an earlier test's finished request (status 200) may still be logged after this one starts
        logged = [r.request for r in caplog.records  # type: ignore[attr-defined]
                  if r.name == "pyollama.access" and r.request["path"] == "/api/generate"  # type: ignore[attr-defined]
                  and r.request["status"] != 200]  # type: ignore[attr-defined]
        time.sleep(0.1)
    (line,) = logged
    assert (line["status"], line["error"], line["model"]) == (499, "request canceled", MODEL)
    assert _canceled_count(inference_server) == before + 1
    message = next(r.getMessage() for r in caplog.records
                   if r.name == "pyollama.access" and "path=/api/generate" in r.getMessage()
                   and "status=200" not in r.getMessage())
    assert 'status=499' in message and 'error="request canceled"' in message


def test_non_streaming_request_canceled_when_client_hangs_up(
    inference_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """stream:false: the server notices the closed connection between tokens and stops generating."""
    import socket

    caplog.set_level(logging.INFO, logger="pyollama.access")
    requests.post(f"{inference_server.url}/api/generate", json={"model": MODEL, "prompt": ""}, timeout=120)  # load
    # a raw count goes on for thousands of tokens, whatever the prompt cache holds
    body = json.dumps({"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "raw": True, "stream": False,
                       "options": {"num_predict": 4000, "temperature": 0}}).encode()
    started = time.monotonic()
    with socket.create_connection((inference_server.host, inference_server.port)) as sock:
        sock.sendall(f"POST /api/generate HTTP/1.1\r\nHost: {inference_server.host}\r\n".encode()
                     + b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)  # generating by now
    logged: list[dict[str, Any]] = []
    while not logged and time.monotonic() - started < 60:
        logged = [r.request for r in caplog.records  # type: ignore[attr-defined]
                  if r.name == "pyollama.access" and r.request["path"] == "/api/generate"  # type: ignore[attr-defined]
                  and r.request["status"] != 200]  # type: ignore[attr-defined]
        time.sleep(0.05)
    (line,) = logged
    assert (line["status"], line["error"]) == (499, "request canceled")
    # 4,000 tokens take far longer than this: the generation stopped when the client left
    assert time.monotonic() - started < 15
    assert _ps_names(inference_server) == [MODEL]  # the runner is free for the next request
    again = requests.post(f"{inference_server.url}/api/generate", json={"model": MODEL, "prompt": "Hi",
                          "stream": False, "options": {"num_predict": 3}}, timeout=60)
    assert again.status_code == 200 and again.json()["eval_count"] <= 3


def test_generate_with_lone_surrogate_escapes_answers(inference_server: LiveServer) -> None:
    """Go (and so Ollama) decodes an unpaired surrogate escape as U+FFFD; it reaches the model as
    that character instead of failing in the tokenizer."""
    raw = b'{"model": "smollm2:135m", "prompt": "Say \\ud800 and \\udfff", "system": "\\udc00", "stream": false, ' \
          b'"options": {"num_predict": 2, "temperature": 0}}'
    response = requests.post(f"{inference_server.url}/api/generate", data=raw, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["done"] is True
