"""`pyollama push` and `pyollama pull` as subprocesses, against a live server (OLLAMA_HOST) and
a real docker-registry."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import requests
from registry_support import Registry

from pyollama.cli.format import human_bytes
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.server.conftest import LiveServer


def pyollama(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{server.port}"}
    # check=False: the exit code is what the tests look at.
    return subprocess.run([sys.executable, "-m", "pyollama", *args], check=False, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def tag_names(server: LiveServer) -> list[str]:
    return [m["name"] for m in requests.get(f"{server.url}/api/tags", timeout=10).json()["models"]]


def test_cli_push_then_pull_with_insecure(smollm2_server: LiveServer, registry: Registry, tmp_path: Path) -> None:
    model = f"{registry.host}/testns/cli:v1"
    requests.post(f"{smollm2_server.url}/api/copy", json={"source": "smollm2:135m", "destination": model},
                  timeout=30).raise_for_status()
    store = smollm2_server.app.extensions["pyollama"].store
    assert isinstance(store, Store)
    layers = store.read_manifest(ModelName.parse(model)).all_layers()
    kept = tmp_path / "kept"
    kept.mkdir()
    for layer in layers:
        os.link(store.blobs.path(layer.digest), kept / layer.digest.replace(":", "-"))

    pushed = pyollama(smollm2_server, "push", model, "--insecure")
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert lines[0] == "retrieving manifest" and lines[-2:] == ["pushing manifest", "success"]
    big = max(layers, key=lambda layer: layer.size)
    assert any(line.startswith(f"pushing {big.digest[7:19]} 100% ") for line in lines)

    for name in (model, "smollm2:135m"):
        assert pyollama(smollm2_server, "rm", name).returncode == 0
    assert tag_names(smollm2_server) == []

    pulled = pyollama(smollm2_server, "pull", model, "--insecure")
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    # Rate and time left depend on timing: the printer's unit tests in tests/server/test_cli.py show them.
    done = next(line for line in lines if line.startswith(f"pulling {big.digest[7:19]} 100% "))
    assert f"{human_bytes(big.size)}/{human_bytes(big.size)}" in done
    assert tag_names(smollm2_server) == [model]
    for layer in layers:
        assert filecmp.cmp(store.blobs.path(layer.digest), kept / layer.digest.replace(":", "-"), shallow=False)


def test_cli_pull_missing_model_exits_1_with_ollama_error(empty_server: LiveServer, registry: Registry) -> None:
    result = pyollama(empty_server, "pull", f"{registry.host}/testns/absent:latest", "--insecure")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["pulling manifest"]
    assert result.stderr == "Error: pull model manifest: file does not exist\n"


def test_cli_pull_http_registry_without_insecure_fails(empty_server: LiveServer, registry: Registry) -> None:
    result = pyollama(empty_server, "pull", f"http://{registry.host}/testns/absent:latest")
    assert result.returncode == 1
    assert result.stderr == "Error: insecure protocol http\n"
