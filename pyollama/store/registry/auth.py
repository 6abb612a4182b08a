"""Registry credentials and auth challenges.

Authentication
--------------
Anonymous access is tried first. When a registry answers 401 its `WWW-Authenticate`
challenge decides what happens next:

- `Basic realm="..."`: the request is repeated with HTTP basic credentials for the host.
- `Bearer realm="...",service="...",scope="..."`: a token is fetched from the realm
  (`GET <realm>?service=<service>&scope=<s1>&scope=<s2>`, Docker's token protocol, sending the
  host's credentials as HTTP basic when there are any), and the request is repeated with
  `Authorization: Bearer <token>`. Tokens are cached per client and fetched again when the
  registry challenges again (expiry, or a wider scope such as a cross-repository mount).
  Credentials travel to a realm on a different host only over https.

A second 401, or a token endpoint that refuses, fails with `unauthorized: access denied`
(Ollama's text).

Credentials, per registry host (`host` or `host:port`, exactly as in the model name), come
from, in this order:

1. `OLLAMA_REGISTRY_AUTH`: comma-separated `host=user:password` entries, e.g.
   `OLLAMA_REGISTRY_AUTH="registry.example.com=alice:s3cret,127.0.0.1:5000=bob:pw"`.
   The user name ends at the first `:`; the password is the rest. Percent-escapes are decoded
   in both, so a `,` in a password is written `%2C` and a `%` is written `%25`.
2. Docker's credentials file, `$DOCKER_CONFIG/config.json` or else `~/.docker/config.json`:
   the `auths` object, `{"auths": {"host:port": {"auth": "<base64 of user:password>"}}}`
   (as `docker login` writes it; explicit `username`/`password` fields are read too). Keys
   may carry a scheme and path (`https://host/v1/`); only the host part is matched. Credential
   helpers (`credsStore`, `credHelpers`) are not run.

Ollama's own ed25519-signed token requests (ollama.com accounts) are not implemented; pulls of
public models from registry.ollama.ai use the anonymous token flow.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyollama.errors import RegistryError

AUTH_ENV = "OLLAMA_REGISTRY_AUTH"


class RegistryAuthConfigError(RegistryError):
    """OLLAMA_REGISTRY_AUTH or the Docker credentials file cannot be understood."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _host_key(raw: str) -> str:
    """`host[:port]` of a credentials key that may be a URL (`https://host/v1/`)."""
    raw = raw.strip()
    if "://" in raw:
        raw = urlsplit(raw).netloc
    return raw.split("/", 1)[0].lower()


@dataclass
class RegistryAuth:
    """Credentials per registry host; empty means anonymous only."""

    credentials: dict[str, Credentials] = field(default_factory=dict)

    def lookup(self, host: str) -> Credentials | None:
        return self.credentials.get(host.lower())

    @classmethod
    def parse(cls, value: str) -> RegistryAuth:
        """Parse the `OLLAMA_REGISTRY_AUTH` format (see the module docstring)."""
        creds: dict[str, Credentials] = {}
        for entry in value.split(","):
            entry = entry.strip()
            if not entry:
                continue
            host, sep, userpass = entry.partition("=")
            user, sep2, password = userpass.partition(":")
            if not sep or not sep2 or not host.strip() or not user:
                raise RegistryAuthConfigError(
                    f"invalid {AUTH_ENV} entry {host.strip()!r}: expected host=user:password"
                )
            creds[_host_key(host)] = Credentials(unquote(user), unquote(password))
        return cls(creds)

    @classmethod
    def from_docker_config(cls, path: Path) -> RegistryAuth:
        """Read the `auths` of a Docker config.json; a missing file gives no credentials."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryAuthConfigError(f"cannot read Docker credentials {path}: {exc}") from None
        auths = data.get("auths") if isinstance(data, dict) else None
        creds: dict[str, Credentials] = {}
        if not isinstance(auths, dict):
            return cls()
        for key, entry in auths.items():
            if not isinstance(entry, dict):
                continue
            user, password = entry.get("username"), entry.get("password")
            encoded = entry.get("auth")
            if isinstance(encoded, str) and encoded:
                try:
                    decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    raise RegistryAuthConfigError(
                        f"invalid base64 auth for {key!r} in {path}"
                    ) from None
                user, _, password = decoded.partition(":")
            if isinstance(user, str) and user and isinstance(password, str):
                creds[_host_key(str(key))] = Credentials(user, password)
        return cls(creds)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], home: Path | None = None) -> RegistryAuth:
        """`OLLAMA_REGISTRY_AUTH` entries over those of the Docker credentials file."""
        docker_dir = environ.get("DOCKER_CONFIG")
        if docker_dir:
            config_path = Path(docker_dir) / "config.json"
        else:
            config_path = (home if home is not None else Path.home()) / ".docker" / "config.json"
        merged = cls.from_docker_config(config_path).credentials
        merged.update(cls.parse(environ.get(AUTH_ENV, "")).credentials)
        return cls(merged)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse one `WWW-Authenticate` challenge (`Bearer realm="...",service="...",scope="..."`)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _CHALLENGE_PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme.lower(), params)


def environ_auth() -> RegistryAuth:
    """Credentials from this process's environment and home directory."""
    return RegistryAuth.from_environ(os.environ)
