"""Scheduling through the real server: concurrent streams, the request queue, the prompt cache
across chat turns, and OLLAMA_MAX_LOADED_MODELS eviction."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.server.conftest import LiveServer, add_model, start_server, stop_server

MODEL = "smollm2:135m"


def _server(models: Path, **overrides: Any) -> tuple[LiveServer, Any, Any]:
    config = replace(Config.from_env({"HOME": str(models.parent)}), models=models, num_threads=2, **overrides)
    app = create_app(config)
    server, running = start_server(app)
    return server, running, app


@pytest.fixture(scope="module")
def parallel_server(smollm2_models: Path) -> Iterator[LiveServer]:
    server, running, app = _server(smollm2_models, num_parallel=4, context_length=1024)
    try:
        yield server
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()


def _chat(server: LiveServer, messages: list[dict[str, str]], **options: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": messages, "stream": False,
            "options": {"temperature": 0, "seed": 1, "num_predict": 24, **options}}
    response = requests.post(f"{server.url}/api/chat", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_concurrent_streams_each_get_their_solo_text(parallel_server: LiveServer) -> None:
    questions = ["Name a color.", "What is 3+4?", "Say hello in French.", "Name a planet.", "What is ice?",
                 "Name a bird."]
    solo = [_chat(parallel_server, [{"role": "user", "content": q}])["message"]["content"] for q in questions]
    together: list[str | None] = [None] * len(questions)

    def one(i: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": questions[i]}],
                "options": {"temperature": 0, "seed": 1, "num_predict": 24}}
        parts = []
        with requests.post(f"{parallel_server.url}/api/chat", json=body, stream=True, timeout=300) as r:
            for line in r.iter_lines():
                if line:
                    parts.append(json.loads(line)["message"]["content"])
        together[i] = "".join(parts)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert together == solo


def test_second_chat_turn_evaluates_only_the_new_messages(parallel_server: LiveServer) -> None:
    first = [{"role": "user", "content": "Tell me one fact about the moon, please, in a short sentence."}]
    r1 = _chat(parallel_server, first)
    history = [*first, r1["message"], {"role": "user", "content": "And the sun?"}]
    r2 = _chat(parallel_server, history)
    assert r1["prompt_eval_count"] > 20
    # only the assistant reply's tail, the new user turn and the generation prompt are evaluated
    assert 0 < r2["prompt_eval_count"] < r1["prompt_eval_count"] + r1["eval_count"]
    assert r2["prompt_eval_count"] <= r1["eval_count"] + 20


def test_full_queue_answers_503_with_ollamas_text(smollm2_models: Path) -> None:
    server, running, app = _server(smollm2_models, num_parallel=1, max_queue=1, context_length=512)
    long_body = {"model": MODEL, "prompt": "Write a long story.", "options": {"num_predict": 400, "temperature": 1}}
    try:
        requests.post(f"{server.url}/api/generate", json={"model": MODEL, "prompt": ""}, timeout=120)  # load
        busy = requests.post(f"{server.url}/api/generate", json=long_body, stream=True, timeout=120)
        busy_lines = busy.iter_lines()  # kept: dropping it would close the connection (and the stream)
        next(busy_lines)  # running in the only slot
        # the second request waits in the queue (its answer only starts once it has a slot)
        waiter = threading.Thread(
            target=lambda: requests.post(f"{server.url}/api/generate", json={**long_body, "stream": False},
                                         timeout=300))
        waiter.start()
        scheduler = app.extensions["pyollama"].scheduler()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(m.record for m in scheduler.loaded()):
            time.sleep(0.05)
        runner_pending = lambda: sum(e.runner.n_queued for e in scheduler._entries.values())
        while time.monotonic() < deadline and runner_pending() < 1:
            time.sleep(0.05)
        refused = requests.post(f"{server.url}/api/generate", json={**long_body, "stream": False}, timeout=120)
        assert refused.status_code == 503
        assert refused.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
        busy_lines.close()
        busy.close()
        waiter.join(timeout=300)
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()


def test_max_loaded_models_evicts_the_idle_model(smollm2_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    store = Store(models)
    weights = Store(smollm2_models).load_record(ModelName.parse(MODEL)).model_path
    assert weights is not None
    add_model(store, "first", weights)
    add_model(store, "second", weights, params={"temperature": 0.5})
    server, running, app = _server(models, num_parallel=1, max_loaded_models=1, context_length=512)
    try:
        for name in ("first", "second"):
            r = requests.post(f"{server.url}/api/generate", json={"model": name, "prompt": ""}, timeout=120)
            assert r.json()["done_reason"] == "load"
        loaded = [m["name"] for m in requests.get(f"{server.url}/api/ps", timeout=30).json()["models"]]
        assert loaded == ["second:latest"]
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()
