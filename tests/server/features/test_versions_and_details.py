"""What clients read before they send a request, through the waitress server: the versions
(`/api/version`, the `Server` header) and the `details` of models created from plain GGUFs
(`/api/tags`, `/api/show`, `/api/ps`), which carry the GGUF's lengths and quantization level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ollama
import pytest
import requests

import pyollama
from pyollama.gguf import read_gguf_info
from tests.server.conftest import LiveServer
from tests.server.features.conftest import BASE, create, post, upload
from tests.server.features.media_helpers import write_tiny_llama

SERVER = f"pyollama/{pyollama.__version__} (Ollama API 0.33.0)"


def _semver(version: str) -> tuple[int, ...]:
    """How editor integrations read Ollama's version: three dot-separated numbers."""
    return tuple(int(part) for part in version.split("."))


def test_version_is_the_ollama_api_served_and_pyollamas_own(features_server: LiveServer) -> None:
    response = requests.get(f"{features_server.url}/api/version", timeout=10)
    assert response.json() == {"version": "0.33.0", "pyollama_version": pyollama.__version__}
    # integrations that need Ollama >= 0.6.4 (tool calling, structured outputs) accept it
    assert _semver(response.json()["version"]) >= (0, 6, 4)
    assert response.headers["Server"] == SERVER
    head = requests.head(f"{features_server.url}/api/version", timeout=10)
    assert (head.status_code, head.headers["Server"]) == (200, SERVER)


def test_server_header_is_pyollamas_on_streamed_replies_and_errors(features_server: LiveServer) -> None:
    """waitress names itself only where the app sent no `Server` header."""
    body = {"model": BASE, "prompt": "a", "options": {"num_predict": 2, "temperature": 0}}
    with requests.post(f"{features_server.url}/api/generate", json=body, stream=True, timeout=300) as streamed:
        assert streamed.status_code == 200 and streamed.headers["Server"] == SERVER
        assert streamed.content.strip().splitlines()
    missing = post(features_server, "/api/generate", {"model": "no-such-model", "prompt": "a"})
    assert (missing.status_code, missing.headers["Server"]) == (404, SERVER)


@pytest.fixture(scope="module")
def plain_gguf_model(features_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The tiny Llama (context 512, embedding 256, Q8_0 weights) created from its GGUF alone."""
    path = write_tiny_llama(tmp_path_factory.mktemp("details") / "tiny.gguf", dtype="Q8_0")
    create(features_server, {"model": "details-tiny", "files": {"tiny.gguf": upload(features_server, path)}})
    return "details-tiny:latest", path


def _listed(server: LiveServer, name: str) -> dict[str, Any]:
    models = requests.get(f"{server.url}/api/tags", timeout=10).json()["models"]
    (entry,) = [m for m in models if m["name"] == name]
    return dict(entry)


def test_tags_details_carry_the_ggufs_lengths_and_quantization(
    features_server: LiveServer, plain_gguf_model: tuple[str, Path]
) -> None:
    name, path = plain_gguf_model
    info = read_gguf_info(path)
    assert (info.context_length, info.embedding_length, info.file_type_name) == (512, 256, "Q8_0")
    details = _listed(features_server, name)["details"]
    assert details == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": info.parameter_size, "quantization_level": "Q8_0",
        "context_length": 512, "embedding_length": 256,
    }
    # Ollama's field order: the two newer lengths last
    assert list(details)[-2:] == ["context_length", "embedding_length"]


def test_show_and_ps_details_are_the_tags_details(
    client: ollama.Client, features_server: LiveServer, plain_gguf_model: tuple[str, Path]
) -> None:
    name, _ = plain_gguf_model
    listed = _listed(features_server, name)["details"]
    assert post(features_server, "/api/show", {"model": name}).json()["details"] == listed
    client.generate(model=name, prompt="a", options={"num_predict": 1}, keep_alive="1m")
    loaded = requests.get(f"{features_server.url}/api/ps", timeout=10).json()["models"]
    assert [m["details"] for m in loaded if m["name"] == name] == [listed]
    # the official client reads the fields it knows
    shown = client.show(name).details
    assert shown is not None and shown.quantization_level == "Q8_0" and shown.family == "llama"


def test_smollm2_details_read_the_lengths_from_its_gguf(features_server: LiveServer) -> None:
    details = _listed(features_server, BASE)["details"]
    assert (details["context_length"], details["embedding_length"]) == (8192, 576)
    assert details["quantization_level"] == "Q4_1"
