"""Optional API keys: with keys configured every endpoint but `GET /`, `HEAD /` and CORS
preflights refuses a missing or wrong bearer token and accepts a right one (or a right
`x-api-key`, as Anthropic's clients send it); without keys nothing changes. The `ollama` client's
headers and the `openai` client's `api_key` both work."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import ollama
import openai
import pytest
from flask import Flask

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.server.auth import ApiKeys, ApiKeysFileError, bearer_token
from pyollama.store.store import Store
from tests.server.openai.conftest import CHAT_MODEL, LiveFactory

KEYS = ("k-one", "k-two")
DIGEST = "sha256:" + "0" * 64
# sample values for the converters in the app's routes
_SAMPLES = {"digest": DIGEST, "model": "tiny"}


def _endpoints(app: Flask) -> list[tuple[str, str]]:
    """(method, path) for every route the app serves, path parameters filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: _SAMPLES[m.group(1)], rule.rule)
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            if path == "/" and method in ("GET", "HEAD"):
                continue
            out.append((method, path))
    return sorted(set(out))


@pytest.fixture
def keyed_app(config: Config, tiny_store: Store) -> Flask:
    return create_app(replace(config, api_keys=KEYS), store=tiny_store)


def test_every_endpoint_refuses_missing_and_wrong_keys_and_accepts_right_ones(keyed_app: Flask) -> None:
    client = keyed_app.test_client()
    endpoints = _endpoints(keyed_app)
    assert ("POST", "/v1/chat/completions") in endpoints and ("GET", "/metrics") in endpoints
    assert len(endpoints) > 20
    for method, path in endpoints:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "k-one"},
                        {"Authorization": "Basic k-one"}, {"Authorization": "Bearer k-one-x"}):
            response = client.open(path, method=method, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            if method != "HEAD":
                answer = response.json
                assert answer is not None
                if path == "/v1/messages":  # Anthropic's shape, with a request id
                    assert answer.pop("request_id").startswith("req_")
                    expected = {"type": "error", "error": {"type": "authentication_error", "message": "unauthorized"}}
                elif path.startswith("/v1/"):
                    expected = {"error": {"message": "unauthorized", "type": "invalid_request_error", "param": None,
                                          "code": "invalid_api_key"}}
                else:
                    expected = {"error": "unauthorized"}
                assert answer == expected, (method, path)
        for key in KEYS:
            # Anthropic's clients send the key as `x-api-key`
            for headers in ({"Authorization": f"Bearer {key}"}, {"Authorization": f"bearer {key}"}, {"x-api-key": key}):
                response = client.open(path, method=method, headers=headers, json={})
                assert response.status_code != 401, (method, path)


def test_root_and_cors_preflight_stay_open(keyed_app: Flask) -> None:
    client = keyed_app.test_client()
    assert client.get("/").status_code == 200
    assert client.head("/").status_code == 200
    preflight = client.options("/api/chat", headers={"Origin": "http://localhost:3000",
                                                     "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert client.options("/api/chat").status_code == 401  # not a preflight


def test_refusals_carry_cors_headers_for_allowed_origins(keyed_app: Flask) -> None:
    response = keyed_app.test_client().get("/api/tags", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_without_keys_nothing_is_checked(config: Config, tiny_store: Store) -> None:
    client = create_app(config, store=tiny_store).test_client()
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert client.get("/api/tags", headers=headers).status_code == 200
        assert client.get("/v1/models", headers=headers).status_code == 200
        assert client.get("/metrics", headers=headers).status_code == 200


def test_keys_file_adds_keys_and_ignores_comments(config: Config, tiny_store: Store, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\n  file-key  \n\nsecond-key\n", encoding="utf-8")
    client = create_app(replace(config, api_keys=("env-key",), api_keys_file=keys_file), store=tiny_store).test_client()
    for key in ("env-key", "file-key", "second-key"):
        assert client.get("/api/tags", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    for key in ("# operators", "", "file-key  "):
        assert client.get("/api/tags", headers={"Authorization": f"Bearer {key}x"}).status_code == 401


def test_empty_keys_file_refuses_everything(config: Config, tiny_store: Store, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("\n# none yet\n", encoding="utf-8")
    client = create_app(replace(config, api_keys_file=keys_file), store=tiny_store).test_client()
    assert client.get("/api/tags").status_code == 401
    assert client.get("/api/tags", headers={"Authorization": "Bearer "}).status_code == 401


def test_unreadable_keys_file_stops_the_app_from_starting(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ApiKeysFileError, match="cannot read PYOLLAMA_API_KEYS_FILE"):
        create_app(replace(config, api_keys_file=tmp_path / "missing"))


def test_keys_file_comes_from_the_environment(tmp_path: Path) -> None:
    config = Config.from_env({"HOME": str(tmp_path), "PYOLLAMA_API_KEYS_FILE": f"'{tmp_path}/keys'"})
    assert config.api_keys_file == tmp_path / "keys"
    assert Config.from_env({"HOME": str(tmp_path)}).api_keys_file is None


def test_api_keys_accept_only_exact_keys() -> None:
    keys = ApiKeys(["alpha", "beta-long-key", "ünïcode"])
    assert all(keys.accepts(k) for k in ("alpha", "beta-long-key", "ünïcode"))
    assert not any(keys.accepts(k) for k in ("", "alph", "alphaa", "ALPHA", "beta", "unicode"))
    assert bearer_token("Bearer  tok ") == "tok" and bearer_token("Token tok") == "" and bearer_token("") == ""


def test_ollama_and_openai_clients_send_keys(make_server: LiveFactory) -> None:
    server = make_server(api_keys=("sekrit",))
    keyed = ollama.Client(host=server.url, headers={"Authorization": "Bearer sekrit"}, timeout=300)
    assert CHAT_MODEL in {m.model for m in keyed.list().models}
    reply = keyed.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}],
                       options={"num_predict": 2, "temperature": 0})
    assert reply.done
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=server.url, timeout=30).list()
    assert (refused.value.status_code, refused.value.error) == (401, "unauthorized")

    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sekrit", max_retries=0, timeout=300)
    completion = good.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=2, temperature=0)
    assert completion.choices[0].finish_reason == "length"
    with pytest.raises(openai.AuthenticationError) as denied:
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"
