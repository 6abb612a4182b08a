"""The real server (waitress on a loopback port) driven by the official `ollama` client and raw HTTP."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ollama
import pytest
import requests

from pyollama.store.store import Store
from tests.server.conftest import LiveServer, free_port


def test_client_lists_models(live: LiveServer) -> None:
    models = ollama.Client(host=live.url).list().models
    assert sorted(m.model for m in models) == ["embedder:latest", "tiny:latest", "tools:latest"]
    tiny = next(m for m in models if m.model == "tiny:latest")
    assert tiny.details is not None and tiny.details.family == "llama"
    assert tiny.size and tiny.digest and tiny.modified_at is not None


def test_client_shows_model(live: LiveServer) -> None:
    show = ollama.Client(host=live.url).show("tiny")
    assert show.template is not None and show.template.startswith("{{- range .Messages }}")
    assert show.parameters is not None and "temperature" in show.parameters
    assert show.modelinfo is not None and show.modelinfo["general.architecture"] == "llama"
    assert show.capabilities == ["completion"]


def test_client_copies_and_deletes(live: LiveServer) -> None:
    client = ollama.Client(host=live.url)
    client.copy("tiny", "tiny-copy:v1")
    assert "tiny-copy:v1" in [m.model for m in client.list().models]
    client.delete("tiny-copy:v1")
    assert "tiny-copy:v1" not in [m.model for m in client.list().models]


def test_client_ps_and_version(live: LiveServer) -> None:
    assert ollama.Client(host=live.url).ps().models == []
    assert requests.get(f"{live.url}/api/version", timeout=10).json()["version"]


def test_client_uploads_blob(live: LiveServer, tmp_path: Path, tiny_store: Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    digest = ollama.Client(host=live.url).create_blob(path)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert tiny_store.blobs.path(digest).read_bytes() == data
    assert requests.head(f"{live.url}/api/blobs/{digest}", timeout=10).status_code == 200


def test_blob_upload_streams_chunked_body(live: LiveServer, tiny_store: Store) -> None:
    data = b"x" * (2 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
    response = requests.post(f"{live.url}/api/blobs/{digest}", data=chunks, timeout=30)
    assert response.status_code == 201
    assert tiny_store.blobs.size(digest) == len(data)


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (lambda c: c.show("missing"), 404, "model 'missing:latest' not found"),
        (lambda c: c.delete("missing"), 404, "model 'missing' not found"),
        (lambda c: c.copy("missing", "x"), 404, 'model "missing" not found'),
        (lambda c: c.generate(model="missing", prompt="hi"), 404, "model 'missing' not found"),
        (lambda c: c.chat(model="embedder", messages=[{"role": "user", "content": "x"}]), 400,
         '"embedder" does not support chat'),
        (lambda c: c.embed(model="missing", input="x"), 404, 'model "missing" not found, try pulling it first'),
    ],
)
def test_client_raises_response_error_with_status(live: LiveServer, call, status: int, message: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        call(ollama.Client(host=live.url))
    assert info.value.status_code == status
    assert info.value.error == message


def test_streaming_error_before_output_keeps_status(live: LiveServer) -> None:
    client = ollama.Client(host=live.url)
    with pytest.raises(ollama.ResponseError) as info:
        for _ in client.chat(model="missing", messages=[{"role": "user", "content": "x"}], stream=True):
            pass
    assert info.value.status_code == 404


def test_raw_http_unknown_route_and_method(live: LiveServer) -> None:
    response = requests.get(f"{live.url}/api/unknown", timeout=10)
    assert (response.status_code, response.text) == (404, "404 page not found")
    response = requests.get(f"{live.url}/api/chat", timeout=10)
    assert (response.status_code, response.text) == (405, "405 method not allowed")


def test_raw_http_host_header_guard(live: LiveServer) -> None:
    conn = http.client.HTTPConnection(live.host, live.port, timeout=10)
    conn.request("GET", "/api/version", headers={"Host": "attacker.example"})
    response = conn.getresponse()
    assert response.status == 403
    conn.close()


def test_raw_http_multibyte_names_in_errors_survive(live: LiveServer) -> None:
    body = json.dumps({"model": "tiny", "prompt": "你好", "think": "🙂"}, ensure_ascii=False).encode()
    response = requests.post(f"{live.url}/api/generate", data=body, timeout=10)
    assert response.status_code == 400
    assert "🙂" in response.json()["error"]


def _start_gunicorn(models: Path, port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`gunicorn -k gthread -w 1` on the app factory, configured from the environment as Ollama is."""
    env = {**os.environ, "OLLAMA_MODELS": str(models), "OLLAMA_HOST": f"127.0.0.1:{port}", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}",
         "pyollama.server:create_app()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("gunicorn did not start") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def test_gunicorn_serves_app_factory(tiny_store: Store) -> None:
    port = free_port()
    proc = _start_gunicorn(tiny_store.root, port)
    try:
        names = [m["name"] for m in requests.get(f"http://127.0.0.1:{port}/api/tags", timeout=10).json()["models"]]
        assert "tiny:latest" in names
    finally:
        _stop(proc)


def test_gunicorn_streams_generate_line_by_line(tmp_path: Path, smollm2_models: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    port = free_port()
    proc = _start_gunicorn(models, port, {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_CONTEXT_LENGTH": "512"})
    try:
        options = {"temperature": 0, "num_predict": 6}
        body: dict[str, Any] = {"model": "smollm2:135m", "prompt": "1, 2, 3, 4,", "raw": True, "options": options}
        url = f"http://127.0.0.1:{port}/api/generate"
        with requests.post(url, json=body, stream=True, timeout=120) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/x-ndjson"
            assert response.headers.get("Transfer-Encoding") == "chunked"
            lines = [json.loads(line) for line in response.iter_lines() if line]
        assert all(line["done"] is False and line["response"] for line in lines[:-1])
        final = lines[-1]
        assert (final["done"], final["done_reason"], final["eval_count"]) == (True, "length", 6)
        assert len(lines) >= 3  # pieces as they came, not one buffered reply
        whole = requests.post(url, json={**body, "stream": False}, timeout=120).json()
        assert "".join(line["response"] for line in lines) == whole["response"]
        # the official client over the same server
        streamed = ollama.Client(host=f"http://127.0.0.1:{port}").generate(
            model="smollm2:135m", prompt="1, 2, 3, 4,", raw=True, stream=True, options=options)
        assert "".join(chunk.response or "" for chunk in streamed) == whole["response"]
    finally:
        _stop(proc)
