"""Names that try to leave the store are refused by the real server before anything is written.

tests/server/create/test_create_api.py covers `../model.gguf`, `/etc/passwd` and `../../../etc/x`
for create; these are the other spellings, the other writing endpoints, and raw blob paths that
no client library would normalise away (sent with http.client, which sends the path as given).
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from create_proofs_helpers import Served

DIGEST = "sha256:" + "a" * 64
BASE = "smollm2:135m"  # bundled: present in the served store


def call(served: Served, method: str, path: str, body: dict[str, Any] | bytes | None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(served.host, served.port, timeout=60)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection.request(method, path, body=data)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def snapshot(root: Path) -> set[str]:
    """Every path under the server's directory except its log and waitress's spool dir."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.name != "serve.log" and p.relative_to(root).parts[0] != "tmp"
    }


@pytest.fixture
def unchanged(served: Served) -> Any:
    """Asserts after the test that nothing was added, removed or renamed in or beside the store."""
    before = snapshot(served.root)
    yield
    assert snapshot(served.root) == before
    assert not [p for p in served.root.parent.rglob("*evil*")]


@pytest.mark.parametrize(
    "key",
    ["sub/../../evil.gguf", "./model.gguf", "..", "a//b.gguf", "..\\evil.gguf", "/tmp/evil.gguf", "m.gguf\x00"],
)
@pytest.mark.parametrize("field", ["files", "adapters"])
def test_create_file_key_outside_the_upload_is_400(served: Served, unchanged: Any, key: str, field: str) -> None:
    body: dict[str, Any] = {"model": "evil", field: {key: DIGEST}}
    if field == "adapters":
        body["from"] = BASE
    assert call(served, "POST", "/api/create", body) == (400, b'{"error":"file path must be relative"}')


@pytest.mark.parametrize(
    "body",
    [
        {"model": "library/../../evil", "from": BASE},
        {"model": "x:..", "from": BASE},
        {"model": "registry.ollama.ai/library/../../../evil", "from": BASE},
        {"model": "/tmp/evil", "from": BASE},
        {"model": "evil", "from": "../../smollm2:135m"},
    ],
)
def test_create_model_name_with_dot_dot_is_400(served: Served, unchanged: Any, body: dict[str, Any]) -> None:
    assert call(served, "POST", "/api/create", body) == (400, b'{"error":"invalid model name"}')


def test_create_same_request_with_a_plain_name_succeeds(served: Served) -> None:
    # The refusals above come from the names alone: the rest of those requests is valid.
    status, answer = call(served, "POST", "/api/create", {"model": "evil", "from": BASE, "stream": False})
    assert (status, json.loads(answer)) == (200, {"status": "success"})
    assert (served.models / "manifests" / "registry.ollama.ai" / "library" / "evil" / "latest").is_file()
    assert call(served, "DELETE", "/api/delete", {"model": "evil"})[0] == 200
    assert not (served.models / "manifests" / "registry.ollama.ai" / "library" / "evil").exists()


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("POST", "/api/copy", {"source": BASE, "destination": "../evil"}, 'destination "../evil" is invalid'),
        ("POST", "/api/copy", {"source": "../../x", "destination": "evil"}, 'source "../../x" is invalid'),
        ("DELETE", "/api/delete", {"model": f"../../{BASE}"}, f'name "../../{BASE}" is invalid'),
        ("POST", "/api/show", {"model": f"../../{BASE}"}, "invalid model name"),
        ("POST", "/api/pull", {"model": "../evil", "stream": False}, "invalid model name"),
        ("POST", "/api/push", {"model": "../evil", "stream": False}, "invalid model name"),
    ],
)
def test_other_endpoints_refuse_names_with_dot_dot(
    served: Served, unchanged: Any, method: str, path: str, body: dict[str, Any], error: str
) -> None:
    status, answer = call(served, method, path, body)
    assert (status, json.loads(answer)) == (400, {"error": error})


@pytest.mark.parametrize(
    "path",
    [
        "/api/blobs/../../evil",
        "/api/blobs/sha256:..%2F..%2Fevil",
        "/api/blobs/sha256-../../../evil",
        "/api/blobs/%2e%2e/%2e%2e/evil",
        f"/api/blobs/{DIGEST}/../../evil",
    ],
)
def test_blob_path_that_is_not_a_digest_is_400_before_any_file_is_touched(
    served: Served, unchanged: Any, path: str
) -> None:
    assert call(served, "POST", path, b"evil bytes") == (400, b'{"error":"invalid digest format"}')
    assert call(served, "HEAD", path, None)[0] == 400
