"""`pyollama serve` with RPC workers: a model split across two `pyollama rpc-server` processes
and the local CPU, served over HTTP; a worker lost mid-generation fails only that request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from gpu_helpers import RpcWorker, ServeProcess

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 24, "seed": 7}
STOPPED = "model runner has unexpectedly stopped"


def _generate(url: str, prompt: str, **options: Any) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": prompt, "stream": False, "options": {**GREEDY, **options}}
    resp = requests.post(f"{url}/api/generate", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.fixture()
def local_server(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path / "local", repack=False)  # the workers' kernels, on any CPU
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def rpc_server(tmp_path: Path, rpc_workers: list[RpcWorker]) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path / "rpc", rpc=",".join(w.endpoint for w in rpc_workers))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_generate_split_across_two_workers_matches_local_only(
    local_server: ServeProcess, rpc_server: ServeProcess, rpc_workers: list[RpcWorker]
) -> None:
    prompt = "List three colors of the rainbow."
    local = _generate(local_server.url, prompt)
    split = _generate(rpc_server.url, prompt)
    assert split["response"] == local["response"]
    assert 0 < split["eval_count"] == local["eval_count"] <= GREEDY["num_predict"]
    assert split["context"] == local["context"]
    ps = requests.get(f"{rpc_server.url}/api/ps", timeout=10).json()
    assert [m["name"] for m in ps["models"]] == [MODEL]
    # num_gpu unset: every layer on the workers, reported as Ollama reports GPU offload
    assert ps["models"][0]["size_vram"] == ps["models"][0]["size"] > 0
    local_ps = requests.get(f"{local_server.url}/api/ps", timeout=10).json()
    assert local_ps["models"][0]["size_vram"] == 0
    half = _generate(rpc_server.url, prompt, num_gpu=15)  # a load-time option: reloads with 15 of 31 layers
    assert half["response"] == local["response"]
    ps = requests.get(f"{rpc_server.url}/api/ps", timeout=10).json()
    assert abs(ps["models"][0]["size_vram"] - ps["models"][0]["size"] * 15 / 31) <= 1
    # llama.cpp's load log (relayed from the model's process): weights on both workers
    log = rpc_server.log()
    buffers = re.findall(r"RPC\d+\[([\d.:]+)\] model buffer size = +([\d.]+) MiB", log)
    assert {endpoint for endpoint, mib in buffers if float(mib) > 1} == {w.endpoint for w in rpc_workers}, log[-3000:]
    assert "model runner process" in log


def test_worker_killed_mid_generation_fails_that_request_and_server_recovers(
    rpc_server: ServeProcess, rpc_workers: list[RpcWorker]
) -> None:
    prompt = "Count from one to one thousand, one number per line."
    before = _generate(rpc_server.url, prompt)
    body = {"model": MODEL, "prompt": prompt, "stream": True, "options": {**GREEDY, "num_predict": 2000}}
    lines: list[dict[str, Any]] = []
    with requests.post(f"{rpc_server.url}/api/generate", json=body, stream=True, timeout=300) as resp:
        assert resp.status_code == 200
        for raw in resp.iter_lines():
            lines.append(json.loads(raw))
            if len(lines) == 3:
                rpc_workers[1].kill()  # mid-generation
    assert len(lines) > 3 and not any(line.get("done") for line in lines)
    error = lines[-1].get("error", "")
    assert STOPPED in error and "Remote RPC server crashed" in error, lines[-1]

    # The server is up and says clearly what is wrong while the worker is away.
    assert requests.get(f"{rpc_server.url}/", timeout=10).text == "Ollama is running"
    assert [m["name"] for m in requests.get(f"{rpc_server.url}/api/tags", timeout=10).json()["models"]]
    resp = requests.post(
        f"{rpc_server.url}/api/generate",
        json={"model": MODEL, "prompt": prompt, "stream": False, "options": GREEDY},
        timeout=120,
    )
    assert resp.status_code == 500
    assert f"could not connect to RPC server {rpc_workers[1].endpoint}" in resp.json()["error"]

    rpc_workers[1].start()
    after = _generate(rpc_server.url, prompt)
    assert after["response"] == before["response"]
