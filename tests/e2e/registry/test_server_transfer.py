"""`/api/push` and `/api/pull` through the real server (waitress on a loopback port) against a
real docker-registry, driven by the official `ollama` client and raw HTTP."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

import ollama
import pytest
import requests
from registry_support import Registry

from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.server.conftest import LiveServer

GREEDY = {"temperature": 0, "seed": 7, "num_predict": 16}
MISSING = "pull model manifest: file does not exist"


def store_of(server: LiveServer) -> Store:
    store = server.app.extensions["pyollama"].store
    assert isinstance(store, Store)
    return store


def tag_names(server: LiveServer) -> list[str]:
    return [m["name"] for m in requests.get(f"{server.url}/api/tags", timeout=10).json()["models"]]


def greedy_reply(client: ollama.Client, model: str) -> str:
    reply = client.generate(model=model, prompt="Name a colour.", options=GREEDY)
    return str(reply.response)


def test_server_push_delete_pull_roundtrip_keeps_blobs_and_reply(
    smollm2_server: LiveServer, registry: Registry, tmp_path: Path
) -> None:
    client = ollama.Client(host=smollm2_server.url)
    model = f"{registry.host}/testns/pirate:latest"
    created = list(client.create(model=model, from_="smollm2:135m", system="You are a pirate. Answer briefly.",
                                 stream=True))
    assert created[-1].status == "success"
    before = greedy_reply(client, model)
    assert before
    client.generate(model=model, keep_alive=0)  # unload: the pulled files must be the ones that answer
    assert requests.get(f"{smollm2_server.url}/api/ps", timeout=10).json()["models"] == []

    store = store_of(smollm2_server)
    manifest = store.read_manifest(ModelName.parse(model))
    layers = manifest.all_layers()
    # Hard links keep the pushed bytes to compare with after the local copies are deleted.
    kept = tmp_path / "kept"
    kept.mkdir()
    for layer in layers:
        os.link(store.blobs.path(layer.digest), kept / layer.digest.replace(":", "-"))

    pushed = list(client.push(model, insecure=True, stream=True))
    statuses = [p.status for p in pushed]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    for layer in layers:
        lines = [p for p in pushed if p.digest == layer.digest]
        # Ollama's push emits `pushing <hex12>` (API.md §15: the docs' `starting upload` is legacy).
        assert lines and {p.status for p in lines} == {f"pushing {layer.digest[7:19]}"}
        assert lines[-1].total == layer.size and lines[-1].completed == layer.size

    # Delete both models so that the pull has to download every blob, the GGUF included.
    client.delete(model)
    client.delete("smollm2:135m")
    assert tag_names(smollm2_server) == []
    assert not any(store.blobs.exists(layer.digest) for layer in layers)

    pulled = list(client.pull(model, insecure=True, stream=True))
    statuses = [p.status for p in pulled]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    for layer in layers:
        lines = [p for p in pulled if p.digest == layer.digest]
        assert lines and {p.status for p in lines} == {f"pulling {layer.digest[7:19]}"}
        assert all(p.total == layer.size for p in lines)
        assert lines[-1].completed == layer.size
    big = max(layers, key=lambda layer: layer.size)
    assert len([p for p in pulled if p.digest == big.digest]) >= 2  # progress while downloading

    for layer in layers:
        assert filecmp.cmp(store.blobs.path(layer.digest), kept / layer.digest.replace(":", "-"), shallow=False)
    assert store.read_manifest(ModelName.parse(model)).digests() == manifest.digests()
    assert tag_names(smollm2_server) == [model]
    assert greedy_reply(client, model) == before


def test_server_push_missing_local_model_reports_couldnt_retrieve(
    empty_server: LiveServer, registry: Registry
) -> None:
    resp = requests.post(f"{empty_server.url}/api/push",
                         json={"model": f"{registry.host}/testns/absent:latest", "insecure": True}, timeout=30)
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[:2] == [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"}]
    assert "error" in lines[-1]


def test_server_pull_missing_model_streams_error_after_pulling_manifest(
    empty_server: LiveServer, registry: Registry
) -> None:
    model = f"{registry.host}/testns/absent:latest"
    resp = requests.post(f"{empty_server.url}/api/pull", json={"model": model, "insecure": True}, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in resp.text.splitlines()] == [
        {"status": "pulling manifest"}, {"error": MISSING}]

    client = ollama.Client(host=empty_server.url)
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull(model, insecure=True, stream=True))
    assert err.value.error == MISSING
    assert tag_names(empty_server) == []


def test_server_pull_missing_model_without_stream_is_500(empty_server: LiveServer, registry: Registry) -> None:
    model = f"{registry.host}/testns/absent:latest"
    resp = requests.post(f"{empty_server.url}/api/pull", json={"model": model, "insecure": True, "stream": False},
                         timeout=30)
    assert resp.status_code == 500
    assert resp.json() == {"error": MISSING}

    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=empty_server.url).pull(model, insecure=True)
    assert (err.value.status_code, err.value.error) == (500, MISSING)
