"""The engine's limits through the real server: a client that leaves frees its sequence within a
decode step, and prompts and generations that outgrow `num_ctx` are cut as Ollama cuts them.

Every server here has one sequence (OLLAMA_NUM_PARALLEL=1), so the prompt cache and the slot a
request runs in are never in doubt. SmolLM2-135M, outputs kept short (two cores).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pyollama.engine.base import RunnerBase
from pyollama.engine.runner import Runner
from pyollama.server import create_app
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.server.conftest import CHATML, LiveServer, add_model, serving, smollm2_config

MODEL = "smollm2:135m"
NUM_CTX = 256
SMALL_CTX = {"temperature": 0, "seed": 1, "num_ctx": NUM_CTX}
TOO_LONG = "the input length exceeds the context length"


def _one_slot_server(models: Path) -> contextlib.AbstractContextManager[LiveServer]:
    """The model in the server's own process (PYOLLAMA_RUNNER_PROCESS=0): its slots and its log
    can be watched from the test."""
    return serving(create_app(smollm2_config(models, num_parallel=1, runner_process=False)))


@pytest.fixture
def one_slot(smollm2_models: Path) -> Iterator[LiveServer]:
    with _one_slot_server(smollm2_models) as server:
        yield server


@pytest.fixture(scope="module")
def small_ctx(smollm2_models: Path) -> Iterator[LiveServer]:
    """One sequence; the tests ask for num_ctx 256 in their options (one reload, then kept)."""
    with _one_slot_server(smollm2_models) as server:
        store: Store = server.app.extensions["pyollama"].store
        weights = store.load_record(ModelName.parse(MODEL)).model_path
        assert weights is not None
        add_model(store, "smollm2-chatml", weights, template=CHATML, params={"stop": ["<|im_end|>"]})
        yield server


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=300)


def _runner(server: LiveServer, model: str = MODEL, options: dict[str, Any] = SMALL_CTX) -> RunnerBase:
    """The loaded runner of `model` (loading it first, by default with num_ctx 256)."""
    assert _post(server, "/api/generate", {"model": model, "options": options}).json()["done_reason"] == "load"
    scheduler = server.app.extensions["pyollama"].scheduler()
    digest = server.app.extensions["pyollama"].store.load_record(ModelName.parse(model)).digest
    return scheduler._entries[digest].runner


def _open_stream(server: LiveServer, body: dict[str, Any]) -> tuple[socket.socket, Any]:
    """POST a streaming request; returns its socket (to cut) and the response (to read lines from)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    conn.connect()
    sock = conn.sock
    conn.request("POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    return sock, response


def _time_to_first_line(server: LiveServer, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    sock, response = _open_stream(server, body)
    try:
        line = json.loads(response.readline())
        elapsed = time.perf_counter() - t0
        assert line["done"] is False and line["response"]
        response.read()  # to the end: the slot is free again when this returns
        return elapsed
    finally:
        response.close()
        sock.close()


# -- cancellation -----------------------------------------------------------------------------------


def test_disconnect_frees_the_only_slot_within_a_decode_step(one_slot: LiveServer) -> None:
    runner = _runner(one_slot, options={})
    assert isinstance(runner, Runner)  # in process: its slots can be watched
    short = {"model": MODEL, "prompt": "Name a color.", "options": {"temperature": 0, "num_predict": 4}}
    # Counting goes on and on: the 2000 tokens would take tens of seconds to generate.
    long = {"model": MODEL, "prompt": ", ".join(str(i) for i in range(1, 21)) + ",", "raw": True,
            "options": {"temperature": 0, "num_predict": 2000}}
    # The short request's time to first token when the slot holds the long prompt (no cache hit),
    # as it will after the disconnect.
    baselines = []
    for _ in range(2):
        _post(one_slot, "/api/generate", {**long, "stream": False, "options": {"temperature": 0, "num_predict": 2}})
        baselines.append(_time_to_first_line(one_slot, short))
    baseline = min(baselines)

    sock, response = _open_stream(one_slot, long)
    stamps = []
    for _ in range(12):
        assert json.loads(response.readline())["done"] is False
        stamps.append(time.perf_counter())
    token_time = statistics.median(b - a for a, b in itertools.pairwise(stamps[2:]))
    assert runner.n_active == 1
    task = runner.slots[0].task  # read only: the decode thread owns it
    assert task is not None

    closed = time.perf_counter()
    n_generated = len(task.generated)
    sock.shutdown(socket.SHUT_RDWR)  # the client goes away mid-stream
    sock.close()
    response.close()
    while runner.n_active and time.perf_counter() - closed < 30:
        time.sleep(0.002)
    freed = time.perf_counter() - closed
    assert runner.n_active == 0  # generating the rest would have taken 2000 decode steps
    # The server sees the closed socket when a write fails (a token or two after the close), then
    # the decode loop drops the sequence at its next step. Counted in decode steps, since wall
    # time on a loaded two-core machine says little (idle, `freed` is about 30 ms).
    assert len(task.generated) - n_generated <= 6, (len(task.generated), n_generated)
    assert task.result.done_reason == ""  # cancelled, not finished
    # In seconds only a loose bound (the process can stall for seconds under load): a tenth of
    # what the rest of the generation would have taken.
    remaining = (2000 - n_generated) * token_time
    assert freed < remaining / 10, (freed, token_time)

    # The only slot is free: the next request starts at once instead of queueing behind
    # the rest of the first one's generation.
    ttft = _time_to_first_line(one_slot, short)
    assert ttft < 2 * baseline + remaining / 10, (ttft, baseline, token_time)
    assert len(task.generated) - n_generated <= 6  # nothing more was generated for the first request


# -- context overflow -------------------------------------------------------------------------------


def _full_prompt_tokens(server: LiveServer, runner: RunnerBase, body: dict[str, Any]) -> list[int]:
    """The tokens the engine would get before any truncation: the rendered prompt, tokenized."""
    rendered = _post(server, "/api/generate", {**body, "_debug_render_only": True}).json()
    return runner.tokenize(rendered["_debug_info"]["rendered_template"])


def test_generate_prompt_over_num_ctx_keeps_num_keep_and_the_newest_tokens(
    small_ctx: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    runner = _runner(small_ctx)
    words = " ".join(f"item{i}" for i in range(300))
    body = {"model": MODEL, "prompt": f"Here is a list: {words}. Which item came last?", "stream": False,
            "options": {**SMALL_CTX, "num_predict": 8, "num_keep": 10}}
    full = _full_prompt_tokens(small_ctx, runner, body)
    assert len(full) > 2 * NUM_CTX

    with caplog.at_level(logging.WARNING, logger="pyollama.runner"):
        reply = _post(small_ctx, "/api/generate", body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["done"] is True and answer["eval_count"] >= 1 and answer["response"]
    assert 0 < answer["prompt_eval_count"] <= NUM_CTX
    evaluated = answer["context"][: len(answer["context"]) - answer["eval_count"]]
    assert len(evaluated) + answer["eval_count"] <= NUM_CTX
    assert evaluated[:10] == full[:10]
    assert evaluated[10:] == full[len(full) - (len(evaluated) - 10) :]
    assert [r for r in caplog.records if r.getMessage().startswith("truncating input prompt")]


def test_generate_prompt_over_num_ctx_without_truncate_is_400(small_ctx: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "word " * 400, "raw": True, "truncate": False, "stream": False,
            "options": {**SMALL_CTX, "num_predict": 4}}
    reply = _post(small_ctx, "/api/generate", body)
    assert (reply.status_code, reply.json()) == (400, {"error": TOO_LONG})


def test_embed_input_over_num_ctx_without_truncate_is_400(small_ctx: LiveServer) -> None:
    body = {"model": MODEL, "input": ["short", "word " * 400], "options": {"num_ctx": NUM_CTX}}
    refused = _post(small_ctx, "/api/embed", {**body, "truncate": False})
    assert (refused.status_code, refused.json()) == (400, {"error": TOO_LONG})
    truncated = _post(small_ctx, "/api/embed", body)
    assert truncated.status_code == 200
    assert len(truncated.json()["embeddings"]) == 2
    assert truncated.json()["prompt_eval_count"] <= NUM_CTX + 4  # "short" is a token or two


def test_generate_reaching_the_end_of_the_context_stops_with_length(small_ctx: LiveServer) -> None:
    runner = _runner(small_ctx)
    # A count that nearly fills num_ctx: the model goes on counting until the context is full
    # (where `shift: false` ends it; a shift would go on, see test_context_shift.py).
    numbers = [str(i) for i in range(1, 200)]
    while len(runner.tokenize(", ".join(numbers) + ",")) > NUM_CTX - 12:
        numbers.pop()
    prompt = ", ".join(numbers) + ","
    n_prompt = len(runner.tokenize(prompt))
    body = {"model": MODEL, "prompt": prompt, "raw": True, "stream": False, "shift": False,
            "options": {**SMALL_CTX, "num_predict": -1}}
    answer = _post(small_ctx, "/api/generate", body).json()
    assert answer["done_reason"] == "length"
    # it ran to the last position of the context, not a token further
    assert answer["eval_count"] == NUM_CTX - n_prompt


@pytest.mark.parametrize("model", [MODEL, "smollm2-chatml"], ids=["gguf-jinja-template", "go-template"])
def test_chat_over_num_ctx_keeps_the_system_and_newest_messages(small_ctx: LiveServer, model: str) -> None:
    runner = _runner(small_ctx, model)
    filler = "This is an old message about nothing in particular. " * 3
    messages = [{"role": "system", "content": "You are the system ZEBRA."}]
    for i in range(12):
        messages += [{"role": "user", "content": f"OLD{i}: {filler}"}, {"role": "assistant", "content": "ok"}]
    messages.append({"role": "user", "content": "NEWEST: say yes."})
    body = {"model": model, "messages": messages, "options": {**SMALL_CTX, "num_predict": 3}}

    rendered = _post(small_ctx, "/api/chat", {**body, "_debug_render_only": True}).json()
    prompt = rendered["_debug_info"]["rendered_template"]
    assert "You are the system ZEBRA." in prompt and "NEWEST: say yes." in prompt
    assert "OLD0:" not in prompt and "OLD11:" in prompt  # oldest dropped first
    assert len(runner.tokenize(prompt)) <= NUM_CTX

    reply = _post(small_ctx, "/api/chat", {**body, "stream": False}).json()
    assert reply["done"] is True and 0 < reply["prompt_eval_count"] <= NUM_CTX
    # The chat evaluated exactly that prompt: sent again raw, all of it but the last token
    # comes from the prompt cache of the one slot.
    again = _post(small_ctx, "/api/generate", {"model": model, "prompt": prompt, "raw": True, "stream": False,
                                                 "options": {**SMALL_CTX, "num_predict": 1}}).json()
    assert again["prompt_eval_count"] == 1
