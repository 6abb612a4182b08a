"""HTTP side of the registry protocol: requests, retries, credentials and auth challenges.

The registry is a Docker/OCI distribution (v2) server: Ollama's own registry, or a plain
`registry:2` / distribution / Harbor / Zot. `pyollama.store.registry` drives pulls and
pushes on top of `RegistryClient`.

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
import logging
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pyollama import __version__
from pyollama.errors import CanceledError, RegistryError

log = logging.getLogger("pyollama.registry")

AUTH_ENV = "OLLAMA_REGISTRY_AUTH"
# Error bodies are echoed into messages; a registry could send megabytes.
_MAX_ERROR_BODY = 4096
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class RegistryUnauthorizedError(RegistryError):
    """The registry refused our credentials (or we had none) after a challenge."""

    def __init__(self, message: str = "unauthorized: access denied") -> None:
        super().__init__(message)


class RegistryNotFoundError(RegistryError):
    """404 from the registry; Ollama reports Go's os.ErrNotExist text."""

    def __init__(self, message: str = "file does not exist") -> None:
        super().__init__(message)


class RegistryConnectionError(RegistryError):
    """The registry could not be reached, or the connection broke (after retries)."""


class RegistryCanceledError(RegistryError, CanceledError):
    """The caller cancelled a pull or push (499)."""

    status = 499

    def __init__(self, message: str = "request canceled") -> None:
        super().__init__(message)


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


def user_agent() -> str:
    """Ollama sends `ollama/<version> (<arch> <os>) Go/<version>`; ours names Python instead."""
    return f"pyollama/{__version__} ({platform.machine().lower()} {sys.platform}) Python/{platform.python_version()}"


def error_text(resp: requests.Response) -> str:
    """Ollama's `<code>: <body>` for a failed registry request."""
    try:
        # iter_content serves both a consumed body and a still-open stream.
        body = next(resp.iter_content(_MAX_ERROR_BODY), b"")
    except (requests.RequestException, OSError):  # the body only decorates an error being reported
        body = b""
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else ""
    return f"{resp.status_code}: {text}"


class ReadableBody(Protocol):
    """A streamed request body of known length (requests sends Content-Length from len())."""

    def read(self, size: int = -1) -> bytes: ...

    def __len__(self) -> int: ...


Body = Callable[[], "bytes | ReadableBody"]


class RegistryClient:
    """Requests to one repository of one registry, with auth and retries.

    Shared by the download threads of a pull: the session's connection pool is thread-safe
    and the auth state is guarded by `_auth_lock`.
    """

    def __init__(
        self,
        base_url: str,
        repository: str,
        auth: RegistryAuth,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        pool_size: int = 16,
        cancel: threading.Event | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.host = urlsplit(self.base_url).netloc
        self.auth = auth
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.cancel = cancel
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent()
        # Ollama never uses a proxy from the environment for its own registry; neither do we
        # for loopback registries, where an HTTP_PROXY would only get in the way.
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._auth_lock = threading.Lock()
        self._authorization: str | None = None

    def close(self) -> None:
        self.session.close()

    # -- URLs -----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """`<base>/v2/<repository>/<path>`."""
        return f"{self.base_url}/v2/{self.repository}/{path.lstrip('/')}"

    def resolve(self, location: str) -> str:
        """A `Location` header (possibly relative) as an absolute URL."""
        return urljoin(self.base_url + "/", location)

    # -- requests -------------------------------------------------------------------------------

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RegistryCanceledError()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
        allow_redirects: bool = True,
        retry: bool | None = None,
    ) -> requests.Response:
        """Send a request; answer 401 challenges once; retry transient failures.

        `body` is a factory so the request can be sent again after a challenge or a
        connection error. Responses with status >= 400 other than 401 are returned to the
        caller, which knows which of them are errors (a 404 on a blob HEAD is an answer).
        `retry` defaults to True for idempotent methods.
        """
        if retry is None:
            retry = method in ("GET", "HEAD", "PUT", "DELETE")
        attempt = 0
        reauthorized = False
        while True:
            self.check_cancel()
            send_headers = dict(headers or {})
            with self._auth_lock:
                authorization = self._authorization
            if authorization is not None:
                send_headers["Authorization"] = authorization
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=send_headers,
                    data=body() if body is not None else None,
                    stream=stream,
                    allow_redirects=allow_redirects,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                attempt += 1
                if not retry or attempt > self.max_retries:
                    raise RegistryConnectionError(f'{method} "{url}": {_reason(exc)}') from None
                self._sleep(attempt)
                continue
            if resp.status_code == 401:
                challenge_header = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                if reauthorized:
                    raise RegistryUnauthorizedError()
                self._answer_challenge(challenge_header, authorization)
                reauthorized = True
                continue
            if resp.status_code in _TRANSIENT_STATUSES and retry and attempt < self.max_retries:
                resp.close()
                attempt += 1
                self._sleep(attempt)
                continue
            return resp

    def _sleep(self, attempt: int) -> None:
        delay = self.retry_backoff * (2 ** (attempt - 1))
        if self.cancel is not None:
            if self.cancel.wait(delay):
                raise RegistryCanceledError()
        else:
            time.sleep(delay)

    # -- auth -----------------------------------------------------------------------------------

    def _answer_challenge(self, header: str, sent: str | None) -> None:
        """Set `_authorization` for the challenge in `header`, or raise unauthorized."""
        challenge = parse_challenge(header)
        creds = self.auth.lookup(self.host)
        with self._auth_lock:
            if self._authorization != sent:
                # Another thread already answered a challenge while this request was in flight.
                return
            if challenge is None:
                raise RegistryUnauthorizedError()
            if challenge.scheme == "basic":
                if creds is None:
                    raise RegistryUnauthorizedError()
                self._authorization = creds.basic_header()
                return
            if challenge.scheme == "bearer":
                self._authorization = "Bearer " + self._fetch_token(challenge, creds)
                return
            raise RegistryUnauthorizedError()

    def _fetch_token(self, challenge: Challenge, creds: Credentials | None) -> str:
        realm = challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"invalid auth realm {realm!r}")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        for scope in challenge.params.get("scope", "").split():
            query.append(("scope", scope))
        url = (realm + ("&" if parts.query else "?") + urlencode(query)) if query else realm
        headers: dict[str, str] = {}
        same_host = (parts.hostname or "").lower() == (urlsplit(self.base_url).hostname or "").lower()
        # Credentials are the registry's; a realm elsewhere gets them only over TLS.
        if creds is not None and (parts.scheme == "https" or same_host):
            headers["Authorization"] = creds.basic_header()
        try:
            resp = self.session.get(url, headers=headers, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RegistryConnectionError(f'GET "{realm}": {_reason(exc)}') from None
        with resp:
            if resp.status_code in (401, 403):
                raise RegistryUnauthorizedError()
            if resp.status_code >= 400:
                raise RegistryError(error_text(resp))
            try:
                data = resp.json()
            except ValueError:
                raise RegistryError("auth realm answered with a body that is not JSON") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError("auth realm answered without a token")
        return token


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which names what actually failed."""
    inner: BaseException = exc
    while True:
        nxt = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        nxt = nxt or getattr(inner, "reason", None)
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    return str(inner) or type(inner).__name__


def environ_auth() -> RegistryAuth:
    """Credentials from this process's environment and home directory."""
    return RegistryAuth.from_environ(os.environ)
