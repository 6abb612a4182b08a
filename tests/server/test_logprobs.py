"""`logprobs` and `top_logprobs` on /api/generate and /api/chat, through the official `ollama`
client and raw HTTP against SmolLM2 on a real server, checked against a NumPy reference:
the log-softmax of the model's raw logits from `pyollama.llama` (greedy, temperature 0)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import ollama
import pytest
import requests

from pyollama.llama import Model
from pyollama.server import create_app
from pyollama.store.names import ModelName
from tests.server.conftest import LiveServer, serving, smollm2_config
from tests.server.logprob_reference import greedy_reference, reference_logprobs, top

MODEL = "smollm2:135m"
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 1, "num_predict": 10}
# The server decodes in batches of its own (2 sequences, other chunk sizes) and the reference
# in a fresh context: the same logits up to float rounding.
TOL = 2e-3


@pytest.fixture(scope="module")
def model(inference_server: LiveServer) -> Model:
    path = inference_server.app.extensions["pyollama"].store.load_record(ModelName.parse(MODEL)).model_path
    assert isinstance(path, Path)
    return Model(str(path))


@pytest.fixture(scope="module")
def client(inference_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=inference_server.url, timeout=300)


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{server.url}{path}", json={**body, "stream": False}, timeout=300)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _stream(server: LiveServer, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with requests.post(f"{server.url}{path}", json={**body, "stream": True}, stream=True, timeout=300) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines():
            if line:
                yield json.loads(line)


def _piece(model: Model, token: int) -> bytes:
    return bytes(model.token_to_piece(token, True))


def _check_against_reference(
    model: Model, entries: list[Any], tokens: list[int], rows: list[np.ndarray[Any, Any]], n_top: int
) -> None:
    """Each entry is the sampled token's log-softmax value in the reference row, its text and
    bytes are the token's piece, and its top list holds the row's `n_top` largest values."""
    assert len(entries) == len(tokens) == len(rows)
    for entry, token, row in zip(entries, tokens, rows):
        assert token == int(np.argmax(row))  # greedy: the sampled token is the row's best
        assert entry["token"] == _piece(model, token).decode("utf-8", errors="replace")
        assert entry["logprob"] == pytest.approx(row[token], abs=TOL)
        assert entry["logprob"] <= 0
        tops = entry.get("top_logprobs", [])
        assert len(tops) == n_top
        if n_top:
            assert tops[0]["token"] == entry["token"]
            values = [t["logprob"] for t in tops]
            assert values == sorted(values, reverse=True)
            assert values == pytest.approx([row[i] for i in top(row, n_top)], abs=TOL)


def test_generate_logprobs_are_the_raw_log_softmax_streamed_and_not(
    inference_server: LiveServer, client: ollama.Client, model: Model
) -> None:
    whole = client.generate(model=MODEL, prompt="Name the capital of France.", options=GREEDY, logprobs=True,
                            top_logprobs=5)
    assert whole.eval_count and whole.context and whole.logprobs
    generated = list(whole.context[-whole.eval_count :])
    prompt = list(whole.context[: -whole.eval_count])
    entries = [lp.model_dump(exclude_none=True) for lp in whole.logprobs]
    _check_against_reference(model, entries, generated, reference_logprobs(model, prompt, generated), 5)

    chunks = list(client.generate(model=MODEL, prompt="Name the capital of France.", options=GREEDY,
                                  logprobs=True, top_logprobs=5, stream=True))
    streamed = [lp for chunk in chunks for lp in (chunk.logprobs or [])]
    assert "".join(chunk.response or "" for chunk in chunks) == whole.response
    assert [lp.token for lp in streamed] == [lp.token for lp in whole.logprobs]
    assert [lp.logprob for lp in streamed] == pytest.approx([lp.logprob for lp in whole.logprobs], abs=TOL)
    assert chunks[-1].done and not chunks[-1].logprobs  # they ride with the text, not the final object


def test_chat_logprobs_match_a_greedy_reference_streamed_and_not(
    inference_server: LiveServer, client: ollama.Client, model: Model
) -> None:
    messages = [{"role": "user", "content": "What is two plus two?"}]
    rendered = _post(inference_server, "/api/chat", {"model": MODEL, "messages": messages,
                                                     "_debug_render_only": True})["_debug_info"]["rendered_template"]
    steps = greedy_reference(model, list(model.tokenize(rendered, True, True)), GREEDY["num_predict"])

    whole = client.chat(model=MODEL, messages=messages, options=GREEDY, logprobs=True, top_logprobs=2)
    assert whole.logprobs is not None and len(whole.logprobs) == whole.eval_count
    entries = [lp.model_dump(exclude_none=True) for lp in whole.logprobs]
    _check_against_reference(model, entries, [t for t, _ in steps], [row for _, row in steps], 2)

    chunks = list(client.chat(model=MODEL, messages=messages, options=GREEDY, logprobs=True, top_logprobs=2,
                              stream=True))
    streamed = [lp for chunk in chunks for lp in (chunk.logprobs or [])]
    assert "".join(chunk.message.content or "" for chunk in chunks) == whole.message.content
    assert [lp.token for lp in streamed] == [lp.token for lp in whole.logprobs]
    assert [lp.logprob for lp in streamed] == pytest.approx([lp.logprob for lp in whole.logprobs], abs=TOL)


def test_each_chunk_carries_the_bytes_of_its_text_when_characters_split_across_tokens(
    inference_server: LiveServer,
) -> None:
    body = {"model": MODEL, "prompt": "🦙🦙🦙🦙🦙🦙", "raw": True, "options": {**GREEDY, "num_predict": 12},
            "logprobs": True}
    chunks = [c for c in _stream(inference_server, "/api/generate", body) if not c["done"]]
    entries = [entry for chunk in chunks for entry in chunk["logprobs"]]
    pieces = [bytes(entry.get("bytes", [])) for entry in entries]
    assert any(_incomplete_utf8(piece) for piece in pieces)  # the case this test is about happened
    for piece, entry in zip(pieces, entries):
        assert entry["token"] == piece.decode("utf-8", errors="replace")
        assert "top_logprobs" not in entry  # none asked for: omitted, as Ollama's omitempty
    for chunk in chunks:
        assert b"".join(bytes(e.get("bytes", [])) for e in chunk["logprobs"]) == chunk["response"].encode()
    whole = _post(inference_server, "/api/generate", body)
    assert b"".join(pieces) == whole["response"].encode()
    assert [e["token"] for e in whole["logprobs"]] == [e["token"] for e in entries]
    assert len(entries) == whole["eval_count"]


def _incomplete_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_tokens_that_only_made_the_stop_string_have_no_logprobs(inference_server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Count: one, two, three, four, five, six,", "raw": True, "logprobs": True,
            "options": {**GREEDY, "num_predict": 30, "stop": ["nine, ten"]}}
    whole = _post(inference_server, "/api/generate", body)
    assert whole["done_reason"] == "stop" and "nine" not in whole["response"]
    pieces = [bytes(e["bytes"]) for e in whole["logprobs"]]
    text = whole["response"].encode()
    # every entry but the last lies inside the reply; the last is the token the stop string began in
    assert text.startswith(b"".join(pieces[:-1])) and b"".join(pieces).startswith(text)
    assert whole["eval_count"] > len(pieces)  # the stop string's own tokens were dropped


def test_a_runner_in_the_server_process_gives_the_same_logprobs(
    inference_server: LiveServer, smollm2_models: Path
) -> None:
    """The other side of the runner-process boundary: the engine's chunks as they are."""
    body = {"model": MODEL, "prompt": "Name three colors.", "options": GREEDY, "logprobs": True, "top_logprobs": 2}
    child = _post(inference_server, "/api/generate", body)
    with serving(create_app(smollm2_config(smollm2_models, runner_process=False))) as server:
        here = _post(server, "/api/generate", body)
        streamed = [e for chunk in _stream(server, "/api/generate", body) for e in chunk.get("logprobs", [])]
    for entries in (here["logprobs"], streamed):
        assert [e["token"] for e in entries] == [e["token"] for e in child["logprobs"]]
        assert [e["logprob"] for e in entries] == pytest.approx([e["logprob"] for e in child["logprobs"]], abs=TOL)
        assert all(len(e["top_logprobs"]) == 2 for e in entries)


def test_no_logprobs_unless_asked(inference_server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Say hi.", "options": GREEDY}
    assert "logprobs" not in _post(inference_server, "/api/generate", body)
    assert all("logprobs" not in chunk for chunk in _stream(inference_server, "/api/generate", body))
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "options": GREEDY,
            "top_logprobs": 3}  # top_logprobs alone asks for nothing
    assert "logprobs" not in _post(inference_server, "/api/chat", chat)


def test_top_logprobs_out_of_range_is_refused(inference_server: LiveServer) -> None:
    response = requests.post(f"{inference_server.url}/api/generate", timeout=60,
                             json={"model": MODEL, "prompt": "hi", "logprobs": True, "top_logprobs": 21})
    assert response.status_code == 400
    assert response.json() == {"error": "top_logprobs must be between 0 and 20"}
