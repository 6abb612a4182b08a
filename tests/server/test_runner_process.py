"""Models in child processes (PYOLLAMA_RUNNER_PROCESS=1, and always with RPC workers): the same
answers as in-process runners, and a runner that dies takes down only its own requests."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest
import requests

from pyollama.engine.runner_process import ProcessRunner
from pyollama.server import create_app
from tests.server.conftest import LiveServer, serving, smollm2_config

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 16, "seed": 3}


@pytest.fixture(scope="module")
def process_server(smollm2_models: Path) -> Iterator[LiveServer]:
    config = smollm2_config(smollm2_models, num_parallel=2, runner_process=True)
    with serving(create_app(config)) as server:
        yield server


def _runner(server: LiveServer) -> ProcessRunner:
    scheduler = server.app.extensions["pyollama"].scheduler()
    runners = [entry.runner for entry in scheduler._entries.values()]
    assert len(runners) == 1 and isinstance(runners[0], ProcessRunner)
    return runners[0]


def _chat(url: str, content: str, **kw: Any) -> Any:
    return ollama.Client(host=url).chat(
        model=MODEL, messages=[{"role": "user", "content": content}], options=GREEDY, **kw
    )


@pytest.fixture(scope="module")
def in_process_server(smollm2_models: Path) -> Iterator[LiveServer]:
    """PYOLLAMA_RUNNER_PROCESS=0: the model in the server's own process."""
    with serving(create_app(smollm2_config(smollm2_models, num_parallel=2, runner_process=False))) as server:
        yield server


def test_child_process_runner_answers_like_in_process_runner(
    process_server: LiveServer, in_process_server: LiveServer
) -> None:
    mine = _chat(process_server.url, "Name a fruit.")
    theirs = _chat(in_process_server.url, "Name a fruit.")
    assert mine.message.content == theirs.message.content
    assert 0 < mine.eval_count == theirs.eval_count <= GREEDY["num_predict"]
    assert in_process_server.app.extensions["pyollama"].scheduler()._entries  # loaded in this process
    assert not any(isinstance(e.runner, ProcessRunner)
                   for e in in_process_server.app.extensions["pyollama"].scheduler()._entries.values())
    assert _runner(process_server).pid != os.getpid()
    streamed = "".join(part.message.content for part in _chat(process_server.url, "Name a fruit.", stream=True))
    assert streamed == theirs.message.content
    # the second identical turn is served from the child's prompt cache
    again = _chat(process_server.url, "Name a fruit.")
    assert again.prompt_eval_count < mine.prompt_eval_count


def test_embed_through_child_process_matches_in_process(
    process_server: LiveServer, in_process_server: LiveServer
) -> None:
    body = {"model": MODEL, "input": ["hello world", "le ciel est bleu"]}
    mine = requests.post(f"{process_server.url}/api/embed", json=body, timeout=120).json()
    theirs = requests.post(f"{in_process_server.url}/api/embed", json=body, timeout=120).json()
    assert len(mine["embeddings"]) == 2
    for a, b in zip(mine["embeddings"], theirs["embeddings"]):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4


def test_bad_request_from_child_keeps_its_status_and_text(process_server: LiveServer) -> None:
    # refused by the engine in the child (the model has no vision projector), not by the routes
    body = {"model": MODEL, "prompt": "What is this?", "images": ["aGVsbG8="], "stream": False}
    resp = requests.post(f"{process_server.url}/api/generate", json=body, timeout=120)
    assert resp.status_code == 400
    assert resp.json() == {"error": "Multimodal data provided, but model does not support multimodal requests."}


def test_runner_killed_mid_stream_fails_that_request_and_next_request_reloads(process_server: LiveServer) -> None:
    before = _chat(process_server.url, "Name a fruit.").message.content  # loaded
    pid = _runner(process_server).pid
    body = {
        "model": MODEL,
        "prompt": "Count from one to one thousand.",
        "options": {**GREEDY, "num_predict": 2000},
    }
    lines = []
    with requests.post(f"{process_server.url}/api/generate", json=body, stream=True, timeout=120) as resp:
        assert resp.status_code == 200
        for raw in resp.iter_lines():
            lines.append(json.loads(raw))
            if len(lines) == 2:
                os.kill(pid, signal.SIGKILL)
    assert lines[-1] == {
        "error": "model runner has unexpectedly stopped, this may be due to resource limitations or an internal "
        "error, check ollama server logs for details: signal: killed"
    }
    # the server answers, loads a fresh runner and gives the same greedy reply as before
    assert _chat(process_server.url, "Name a fruit.").message.content == before
    assert _runner(process_server).pid != pid


def test_client_disconnect_cancels_in_child(process_server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Count from one to one thousand.", "options": {**GREEDY, "num_predict": 2000}}
    with requests.post(f"{process_server.url}/api/generate", json=body, stream=True, timeout=120) as resp:
        next(resp.iter_lines())
    runner = _runner(process_server)
    deadline = time.monotonic() + 10
    while runner.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runner.busy
