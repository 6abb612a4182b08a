"""Registry credentials: their sources and formats, and basic / bearer-token registries."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_support import PASSWORD, USER, Registry, TokenServer, small_options, statuses, write_model

from pyollama.store.registry import Progress, pull_model, push_model
from pyollama.store.registry.auth import Credentials, RegistryAuth, RegistryAuthConfigError, parse_challenge
from pyollama.store.registry.client import RegistryUnauthorizedError
from pyollama.store.store import Store


def auth_for(host: str, user: str = USER, password: str = PASSWORD) -> RegistryAuth:
    return RegistryAuth({host: Credentials(user, password)})


def run(gen: object) -> list[Progress]:
    return list(gen)  # type: ignore[call-overload]


# -- credential sources ---------------------------------------------------------------------------


def test_parse_env_value_reads_host_user_password_entries() -> None:
    auth = RegistryAuth.parse("registry.example.com=alice:s3cret, 127.0.0.1:5000=bob:a:b%2Cc%25")
    assert auth.lookup("registry.example.com") == Credentials("alice", "s3cret")
    assert auth.lookup("REGISTRY.example.com") == Credentials("alice", "s3cret")
    # The user ends at the first ':'; escapes let a password hold ',' and '%'.
    assert auth.lookup("127.0.0.1:5000") == Credentials("bob", "a:b,c%")
    assert auth.lookup("127.0.0.1") is None


@pytest.mark.parametrize("value", ["registry.example.com", "host=userwithoutpassword", "=u:p", "host=:p"])
def test_parse_env_value_malformed_entry_raises(value: str) -> None:
    with pytest.raises(RegistryAuthConfigError, match="OLLAMA_REGISTRY_AUTH"):
        RegistryAuth.parse(value)


def test_docker_config_auths_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:hubpw").decode()},
        "127.0.0.1:5000": {"auth": base64.b64encode(b"alice:pa:ss").decode()},
        "other.example": {"username": "carol", "password": "pw"},
        "empty.example": {},
    }, "credsStore": "desktop"}))
    auth = RegistryAuth.from_docker_config(path)
    assert auth.credentials == {
        "index.docker.io": Credentials("hub", "hubpw"),
        "127.0.0.1:5000": Credentials("alice", "pa:ss"),
        "other.example": Credentials("carol", "pw"),
    }


def test_docker_config_missing_file_means_anonymous(tmp_path: Path) -> None:
    assert RegistryAuth.from_docker_config(tmp_path / "nope.json").credentials == {}


def test_docker_config_bad_base64_raises(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"h": {"auth": "***"}}}))
    with pytest.raises(RegistryAuthConfigError, match="invalid base64"):
        RegistryAuth.from_docker_config(path)


def test_from_environ_env_entries_override_docker_config(tmp_path: Path) -> None:
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {
        "a.example": {"auth": base64.b64encode(b"docker:one").decode()},
        "b.example": {"auth": base64.b64encode(b"docker:two").decode()},
    }}))
    auth = RegistryAuth.from_environ({"DOCKER_CONFIG": str(docker_dir), "OLLAMA_REGISTRY_AUTH": "b.example=env:pw"})
    assert auth.lookup("a.example") == Credentials("docker", "one")
    assert auth.lookup("b.example") == Credentials("env", "pw")
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"c.example": {"auth": base64.b64encode(
        b"u:p").decode()}}}))
    assert RegistryAuth.from_environ({}, home=home).credentials == {"c.example": Credentials("u", "p")}


def test_parse_challenge_reads_bearer_parameters() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:ns/m:pull,push repository:ns/other:pull",error="insufficient_scope"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:ns/m:pull,push repository:ns/other:pull",
        "error": "insufficient_scope",
    }
    basic = parse_challenge('Basic realm="x"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "x"}
    assert parse_challenge("") is None


# -- basic auth -----------------------------------------------------------------------------------


def test_basic_auth_registry_push_and_pull_with_right_credentials(
    basic_registry: Registry, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = basic_registry.name()
    model = write_model(src, name, [300_000, 20])
    auth = auth_for(basic_registry.host)
    assert statuses(run(push_model(src, name, insecure=True, auth=auth, options=small_options())))[-1] == "success"
    assert statuses(run(pull_model(dst, name, insecure=True, auth=auth, options=small_options())))[-1] == "success"
    for digest, data in model.blobs.items():
        assert dst.blobs.path(digest).read_bytes() == data


@pytest.mark.parametrize("auth", [RegistryAuth(), None], ids=["anonymous", "wrong-password"])
def test_basic_auth_registry_refuses_wrong_or_missing_credentials(
    basic_registry: Registry, make_store: Callable[[str], Store], auth: RegistryAuth | None
) -> None:
    src = make_store("src")
    name = basic_registry.name()
    write_model(src, name, [1000])
    creds = auth if auth is not None else auth_for(basic_registry.host, password="wrong")
    with pytest.raises(RegistryUnauthorizedError, match="^unauthorized: access denied$"):
        run(push_model(src, name, insecure=True, auth=creds, options=small_options()))
    lines: list[Progress] = []
    with pytest.raises(RegistryUnauthorizedError, match="^pull model manifest: unauthorized: access denied$"):
        lines.extend(pull_model(make_store("dst"), name, insecure=True, auth=creds, options=small_options()))
    assert statuses(lines) == ["pulling manifest"]


def test_basic_auth_credentials_come_from_environment(
    basic_registry: Registry, make_store: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("OLLAMA_REGISTRY_AUTH", f"{basic_registry.host}={USER}:{PASSWORD.replace(' ', '%20')}")
    src = make_store("src")
    name = basic_registry.name()
    write_model(src, name, [1000])
    # auth=None: the generator reads OLLAMA_REGISTRY_AUTH itself.
    assert statuses(run(push_model(src, name, insecure=True, options=small_options())))[-1] == "success"


# -- bearer tokens --------------------------------------------------------------------------------


def test_token_registry_push_and_pull_with_right_credentials(
    token_registry: tuple[Registry, TokenServer], make_store: Callable[[str], Store]
) -> None:
    reg, tokens = token_registry
    src, dst = make_store("src"), make_store("dst")
    name = reg.name()
    model = write_model(src, name, [400_000, 30])
    auth = auth_for(reg.host)
    assert statuses(run(push_model(src, name, insecure=True, auth=auth, options=small_options())))[-1] == "success"
    assert statuses(run(pull_model(dst, name, insecure=True, auth=auth, options=small_options())))[-1] == "success"
    for digest, data in model.blobs.items():
        assert dst.blobs.path(digest).read_bytes() == data
    # The registry lists actions in no fixed order: compare them as sets.
    scopes = [scope.rsplit(":", 1) for req in tokens.requests for scope in req["query"].get("scope", [])]
    granted = [(resource, frozenset(actions.split(","))) for resource, actions in scopes]
    assert ("repository:testns/tiny", frozenset({"pull"})) in granted
    assert ("repository:testns/tiny", frozenset({"pull", "push"})) in granted
    assert all(req["query"]["service"] == [tokens.service] for req in tokens.requests)
    # One token per scope, reused across requests, not one per request.
    assert len(tokens.requests) <= 4


def test_token_registry_mount_across_repositories_gets_wider_token(
    token_registry: tuple[Registry, TokenServer], make_store: Callable[[str], Store]
) -> None:
    reg, tokens = token_registry
    src = make_store("src")
    auth = auth_for(reg.host)
    write_model(src, reg.name("testns/first"), [5000])
    run(push_model(src, reg.name("testns/first"), insecure=True, auth=auth, options=small_options()))
    src.copy(reg.name("testns/first"), reg.name("testns/second"))
    tokens.requests.clear()
    lines = run(push_model(src, reg.name("testns/second"), insecure=True, auth=auth, options=small_options()))
    assert statuses(lines)[-1] == "success"
    scopes = {scope for req in tokens.requests for scope in req["query"].get("scope", [])}
    assert "repository:testns/first:pull" in scopes


def test_token_registry_wrong_password_is_unauthorized(
    token_registry: tuple[Registry, TokenServer], make_store: Callable[[str], Store]
) -> None:
    reg, tokens = token_registry
    lines: list[Progress] = []
    with pytest.raises(RegistryUnauthorizedError, match="^pull model manifest: unauthorized: access denied$"):
        lines.extend(pull_model(make_store("dst"), reg.name(), insecure=True,
                                auth=auth_for(reg.host, password="wrong"), options=small_options()))
    assert statuses(lines) == ["pulling manifest"]
    assert tokens.requests  # the realm was asked, and refused
