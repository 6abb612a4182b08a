"""`GET /metrics`: Prometheus text that `prometheus_client`'s parser reads, whose counters move by
exactly what known requests did. Each test runs a fresh server (its own registry, scheduler and
prompt cache) over the shared store."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from pyollama.config import Config
from tests.server.conftest import LiveServer, make_app
from tests.server.openai.conftest import CHAT_MODEL, EMBED_MODEL, LiveFactory, delta, scrape, value

CHAT = {"model": CHAT_MODEL, "stream": False, "options": {"temperature": 0, "seed": 1, "num_predict": 12}}

def chat(server: LiveServer, content: str, **extra: Any) -> dict[str, Any]:
    body = {**CHAT, "messages": [{"role": "user", "content": content}], **extra}
    response = requests.post(f"{server.url}/api/chat", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_metrics_parse_and_start_at_zero_without_loading_anything(config: Config) -> None:
    client = make_app(config).test_client()
    response = client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"pyollama_requests", "pyollama_prompt_tokens", "pyollama_generated_tokens",
            "pyollama_prompt_cache_hit_tokens", "pyollama_time_to_first_token_seconds",
            "pyollama_time_per_output_token_seconds", "pyollama_queue_depth", "pyollama_active_sequences",
            "pyollama_loaded_models"} <= set(families)
    gauges = {name: families[name].samples[0].value
              for name in ("pyollama_queue_depth", "pyollama_active_sequences", "pyollama_loaded_models")}
    assert gauges == {"pyollama_queue_depth": 0, "pyollama_active_sequences": 0, "pyollama_loaded_models": 0}


def test_each_app_has_its_own_registry(config: Config) -> None:
    first, second = make_app(config).test_client(), make_app(config).test_client()
    for _ in range(3):
        first.get("/api/version")
    text = second.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/api/version"' not in text


def test_request_counters_move_by_endpoint_method_and_status(make_server: LiveFactory) -> None:
    server = make_server()
    before = scrape(server)
    for _ in range(3):
        requests.get(f"{server.url}/api/tags", timeout=30)
    requests.head(f"{server.url}/api/tags", timeout=30)
    requests.post(f"{server.url}/api/generate", json={"model": "missing"}, timeout=30)
    requests.get(f"{server.url}/no/such/path", timeout=30)
    requests.post(f"{server.url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=30)
    after = scrape(server)
    total = "pyollama_requests_total"
    assert delta(before, after, total, endpoint="/api/tags", method="GET", status="200") == 3
    assert delta(before, after, total, endpoint="/api/tags", method="HEAD", status="200") == 1
    assert delta(before, after, total, endpoint="/api/generate", method="POST", status="404") == 1
    assert delta(before, after, total, endpoint="unmatched", method="GET", status="404") == 1
    assert delta(before, after, total, endpoint="/v1/chat/completions", method="POST", status="400") == 1
    assert delta(before, after, total, endpoint="/metrics", method="GET", status="200") == 1  # the first scrape


def test_token_counters_and_prompt_cache_hits_move_by_what_the_replies_report(make_server: LiveFactory) -> None:
    server = make_server()
    before = scrape(server)
    first = chat(server, "Tell me about the moon.")
    second = chat(server, "Tell me about the moon.")  # the same prompt: all but one token from the cache
    after = scrape(server)
    model = {"model": CHAT_MODEL}
    prompt_tokens = first["prompt_eval_count"] + second["prompt_eval_count"]
    assert delta(before, after, "pyollama_prompt_tokens_total", **model) == prompt_tokens
    assert delta(before, after, "pyollama_generated_tokens_total", **model) == first["eval_count"] + second["eval_count"]
    assert second["prompt_eval_count"] == 1
    # a fresh server: the first request found nothing cached, the second reused the rest of its prompt
    assert delta(before, after, "pyollama_prompt_cache_hit_tokens_total", **model) == first["prompt_eval_count"] - 1
    assert delta(before, after, "pyollama_time_to_first_token_seconds_count", **model) == 2
    assert 0 < delta(before, after, "pyollama_time_per_output_token_seconds_count", **model) <= (
        first["eval_count"] + second["eval_count"] - 2)
    assert value(after, "pyollama_loaded_models") == 1
    assert value(after, "pyollama_loaded_model_size_bytes", model=CHAT_MODEL) > 0


def test_openai_and_embedding_requests_count_their_tokens(make_server: LiveFactory) -> None:
    server = make_server()
    before = scrape(server)
    completion = requests.post(f"{server.url}/v1/completions", timeout=300, json={
        "model": CHAT_MODEL, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}).json()
    embedding = requests.post(f"{server.url}/v1/embeddings", timeout=300, json={
        "model": EMBED_MODEL, "input": ["one", "two three"]}).json()
    after = scrape(server)
    assert delta(before, after, "pyollama_generated_tokens_total", model=CHAT_MODEL) == 5
    assert delta(before, after, "pyollama_prompt_tokens_total", model=CHAT_MODEL) == (
        completion["usage"]["prompt_tokens"])
    assert delta(before, after, "pyollama_prompt_tokens_total", model="all-minilm:latest") == (
        embedding["usage"]["prompt_tokens"])
    assert delta(before, after, "pyollama_requests_total", endpoint="/v1/embeddings", method="POST", status="200") == 1


def _settled(server: LiveServer, name: str) -> float:
    """The gauge once it reads zero (a cancelled stream frees its sequence on the next decode step)."""
    current = -1.0
    for _ in range(100):
        current = value(scrape(server), name)
        if current == 0:
            break
        time.sleep(0.05)
    return current


@contextlib.contextmanager
def _open_stream(server: LiveServer) -> Iterator[None]:
    """A stream generating until the block ends. Its line iterator is kept alive meanwhile: when
    it is dropped, urllib3 closes the connection, and the server cancels the stream at once."""
    # a raw count goes on for thousands of tokens: the stream is still running whatever the speed
    body = {"model": CHAT_MODEL, "stream": True, "raw": True, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
            "options": {"temperature": 0, "num_predict": 4000}}
    with requests.post(f"{server.url}/api/generate", json=body, stream=True, timeout=300) as response:
        lines = response.iter_lines()
        next(lines)  # generating now
        yield
        lines.close()


def test_active_sequences_gauge_counts_a_stream_in_flight(make_server: LiveFactory) -> None:
    server = make_server()
    chat(server, "warm up")  # loaded before the stream, so the stream's first line comes quickly
    with _open_stream(server):
        during = scrape(server)
    assert value(during, "pyollama_active_sequences") == 1
    assert value(during, "pyollama_queue_depth") == 0
    assert _settled(server, "pyollama_active_sequences") == 0  # closing the stream cancelled it


def test_queue_depth_gauge_counts_requests_waiting_for_a_sequence(make_server: LiveFactory) -> None:
    server = make_server(num_parallel=1)
    chat(server, "warm up")
    with _open_stream(server):  # the only sequence is busy
        waiting = threading.Thread(target=chat, args=(server, "and me"), daemon=True)
        waiting.start()
        depth = 0.0
        for _ in range(200):  # until the second request has queued behind the stream
            depth = value(scrape(server), "pyollama_queue_depth")
            if depth:
                break
            time.sleep(0.02)
    waiting.join(timeout=300)
    assert depth == 1
    assert value(scrape(server), "pyollama_queue_depth") == 0
