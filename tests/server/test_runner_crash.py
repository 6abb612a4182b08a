"""A native crash never takes the server down: each model runs in a child process by default,
a runner that dies by a signal fails only the requests it held (Ollama's text, naming the
signal), the next request loads it again, and other models keep answering throughout. A runner
that faults before its first decode is reloaded without the CPU's extra buffer types."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pyollama.engine.runner_process import STOPPED, ProcessRunner, exit_description
from pyollama.options import RunnerOptions
from pyollama.server import create_app
from tests.server.conftest import LiveServer, import_smollm2, serving, smollm2_config

MODEL = "smollm2:135m"
OTHER = "terse:latest"  # the same weights under another manifest: a runner of its own
GREEDY = {"temperature": 0, "seed": 3}
SEGFAULT = f"{STOPPED}: signal: segmentation fault"
# A prompt long enough that its evaluation takes a good part of a second on two cores: a signal
# sent while it runs lands before the first token.
LONG_PROMPT = "Summarise this list of numbers. " + " ".join(str(i) for i in range(900))


def _crash_server(models: Path) -> Iterator[LiveServer]:
    with serving(create_app(smollm2_config(models, num_parallel=2))) as server:
        resp = requests.post(f"{server.url}/api/create",
                             json={"model": OTHER, "from": MODEL, "system": "Answer in one word.", "stream": False},
                             timeout=120)
        assert resp.status_code == 200, resp.text
        yield server


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _crash_server(import_smollm2(tmp_path_factory.mktemp("crash") / "models"))


@pytest.fixture()
def fresh_crash_server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from _crash_server(import_smollm2(tmp_path / "models"))


def _runner(server: LiveServer, name: str) -> ProcessRunner:
    scheduler = server.app.extensions["pyollama"].scheduler()
    with scheduler._cond:
        found = [e.runner for e in scheduler._entries.values() if e.record.name.display == name]
    assert len(found) == 1, f"{name} is not loaded"
    assert isinstance(found[0], ProcessRunner)
    return found[0]


def _generate(server: LiveServer, model: str, prompt: str = "Name a fruit.", **options: Any) -> requests.Response:
    body = {"model": model, "prompt": prompt, "stream": False, "options": {**GREEDY, "num_predict": 8, **options}}
    return requests.post(f"{server.url}/api/generate", json=body, timeout=300)


def _ps(server: LiveServer) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in requests.get(f"{server.url}/api/ps", timeout=30).json()["models"]}


def _wait_dead(runner: ProcessRunner) -> None:
    deadline = time.monotonic() + 30
    while runner.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not runner.alive


def test_models_run_in_child_processes_by_default(crash_server: LiveServer) -> None:
    assert _generate(crash_server, MODEL).status_code == 200
    assert _generate(crash_server, OTHER).status_code == 200
    pids = {_runner(crash_server, MODEL).pid, _runner(crash_server, OTHER).pid}
    assert len(pids) == 2 and os.getpid() not in pids


def test_segfault_mid_stream_fails_only_that_request(crash_server: LiveServer) -> None:
    before = _generate(crash_server, MODEL).json()["response"]
    other_before = _generate(crash_server, OTHER).json()["response"]
    runner = _runner(crash_server, MODEL)
    body = {"model": MODEL, "prompt": "Count from one to one thousand.", "options": {**GREEDY, "num_predict": 2000}}
    lines = []
    with requests.post(f"{crash_server.url}/api/generate", json=body, stream=True, timeout=120) as resp:
        assert resp.status_code == 200
        for raw in resp.iter_lines():
            lines.append(json.loads(raw))
            if len(lines) == 2:
                os.kill(runner.pid, signal.SIGSEGV)
    assert lines[-1] == {"error": SEGFAULT}
    assert all("response" in line for line in lines[:2])
    # the other model never noticed; this one loads again and answers as before
    assert _generate(crash_server, OTHER).json()["response"] == other_before
    assert _generate(crash_server, MODEL).json()["response"] == before
    assert _runner(crash_server, MODEL).pid != runner.pid
    assert _ps(crash_server)[MODEL]["repack"] is True  # it had decoded: not a bad CPU path


def test_segfault_on_every_reload_leaves_server_and_other_model_serving(crash_server: LiveServer) -> None:
    other_before = _generate(crash_server, OTHER).json()["response"]
    seen = set()
    for _ in range(3):
        assert _generate(crash_server, MODEL).status_code == 200
        runner = _runner(crash_server, MODEL)
        assert runner.pid not in seen
        seen.add(runner.pid)
        os.kill(runner.pid, signal.SIGSEGV)
        _wait_dead(runner)
        assert _generate(crash_server, OTHER).json()["response"] == other_before
        assert requests.get(f"{crash_server.url}/api/tags", timeout=30).status_code == 200
    assert _generate(crash_server, MODEL).status_code == 200


def test_segfault_before_first_token_is_healed_by_a_reload_without_repack(
    fresh_crash_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A native fault in a runner's first decode is what a bad CPU path looks like: the request
    that met it is answered by the model loaded again without the CPU's extra buffer types."""
    server = fresh_crash_server
    assert _generate(server, OTHER).status_code == 200
    # load without decoding (an empty prompt only loads the model, as in Ollama)
    load = requests.post(f"{server.url}/api/generate", json={"model": MODEL}, timeout=120)
    assert load.status_code == 200 and load.json()["done_reason"] == "load"
    runner = _runner(server, MODEL)
    assert _ps(server)[MODEL]["repack"] is True

    result: dict[str, Any] = {}

    def ask() -> None:
        body = {"model": MODEL, "prompt": LONG_PROMPT, "options": {**GREEDY, "num_predict": 4}}
        with requests.post(f"{server.url}/api/generate", json=body, stream=True, timeout=120) as resp:
            result["status"] = resp.status_code
            result["lines"] = [json.loads(raw) for raw in resp.iter_lines()]

    asking = threading.Thread(target=ask)
    with caplog.at_level(logging.WARNING):
        asking.start()
        deadline = time.monotonic() + 30
        while not runner.busy and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # the child has the request and is evaluating the prompt
        os.kill(runner.pid, signal.SIGSEGV)
        asking.join(timeout=120)
        _wait_dead(runner)
        again = _generate(server, MODEL)
    lines = result["lines"]
    assert result["status"] == 200
    assert not any("error" in line for line in lines), lines
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] >= 1
    assert again.status_code == 200 and again.json()["done"] is True
    assert _runner(server, MODEL).pid != runner.pid
    ps = _ps(server)
    assert ps[MODEL]["repack"] is False
    assert ps[OTHER]["repack"] is True
    warned = [r.getMessage() for r in caplog.records if "first decode" in r.getMessage()]
    assert len(warned) == 1 and "PYOLLAMA_REPACK=0" in warned[0]
    died = [r.getMessage() for r in caplog.records if "stopped: signal: segmentation fault" in r.getMessage()]
    assert died, "the server did not log why the runner died"


def test_segfault_before_first_token_fails_the_request_when_repack_is_forced(smollm2_models: Path) -> None:
    """PYOLLAMA_REPACK=1: there is nothing to try instead, so the request that met the fault
    fails with Ollama's text naming the signal, and the next one loads the model as it was."""
    with serving(create_app(smollm2_config(smollm2_models, num_parallel=1, repack=True))) as server:
        load = requests.post(f"{server.url}/api/generate", json={"model": MODEL}, timeout=120)
        assert load.status_code == 200
        runner = _runner(server, MODEL)
        body = {"model": MODEL, "prompt": LONG_PROMPT, "options": {**GREEDY, "num_predict": 4}}
        lines: list[dict[str, Any]] = []

        def ask() -> None:
            with requests.post(f"{server.url}/api/generate", json=body, stream=True, timeout=120) as resp:
                lines.extend(json.loads(raw) for raw in resp.iter_lines())

        asking = threading.Thread(target=ask)
        asking.start()
        deadline = time.monotonic() + 30
        while not runner.busy and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # the child has the request and is evaluating the prompt
        os.kill(runner.pid, signal.SIGSEGV)
        asking.join(timeout=120)
        assert lines[-1] == {"error": SEGFAULT}
        assert not any(line.get("response") for line in lines)
        assert _generate(server, MODEL).status_code == 200
        assert _runner(server, MODEL).pid != runner.pid
        assert _ps(server)[MODEL]["repack"] is True


def test_repack_environment_variable_forces_layout(smollm2_models: Path) -> None:
    config = smollm2_config(smollm2_models, num_parallel=1, repack=False)
    with serving(create_app(config)) as server:
        assert _generate(server, MODEL).status_code == 200
        assert _ps(server)[MODEL]["repack"] is False


def test_child_imports_the_servers_package_from_any_working_directory(
    smollm2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `pyollama/` in the working directory (a source checkout without its compiled module)
    is not what the child imports."""
    decoy = tmp_path / "pyollama"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy package was imported')\n")
    monkeypatch.chdir(tmp_path)
    runner = ProcessRunner(str(smollm2_path), RunnerOptions(num_ctx=256), num_parallel=1)
    try:
        assert runner.alive and runner.n_ctx == 256
    finally:
        runner.close()


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exit status 0"), (3, "exit status 3"), (-11, "signal: segmentation fault"),
     (-4, "signal: illegal instruction"), (-7, "signal: bus error"), (-9, "signal: killed")],
)
def test_exit_description_reads_like_go(code: int, text: str) -> None:
    assert exit_description(code) == text
