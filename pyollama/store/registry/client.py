"""HTTP side of the registry protocol: requests, retries and answering auth challenges.

The registry is a Docker/OCI distribution (v2) server: Ollama's own registry, or a plain
`registry:2` / distribution / Harbor / Zot. `pull` and `push` drive transfers on top of
`RegistryClient`; credentials and challenges are parsed in `auth`.
"""

from __future__ import annotations

import logging
import platform
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pyollama import __version__
from pyollama.errors import CanceledError, RegistryError
from pyollama.store.registry.auth import Challenge, Credentials, RegistryAuth, parse_challenge

log = logging.getLogger("pyollama.registry")

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
