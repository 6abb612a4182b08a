"""The HTTP client the `pyollama` commands use to talk to a running server, on `requests`.

Only `OLLAMA_HOST` (through `Config`) decides where it connects: the session ignores the proxy,
`.netrc` and `REQUESTS_CA_BUNDLE` environment, so a `HTTP_PROXY` meant for the internet never
carries requests to the local server. There is no timeout: a pull or create can stream progress
for hours.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests

from pyollama import __version__
from pyollama.config import Config

CHUNK = 1 << 20  # bytes per read when hashing or uploading a file


class ClientError(Exception):
    """The server answered with an error (status 0: it could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _root_cause(exc: BaseException) -> BaseException:
    """The socket error under `requests`' and urllib3's wrappers (`[Errno 111] Connection refused`)."""
    seen: set[int] = set()
    cause = exc
    while id(cause) not in seen:
        seen.add(id(cause))
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    return cause


class Client:
    """A minimal Ollama API client: JSON requests, NDJSON streams, blob uploads."""

    def __init__(self, base_url: str, timeout: float | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.headers.update({"Accept": "application/json", "User-Agent": f"pyollama/{__version__}"})

    @classmethod
    def from_env(cls) -> Client:
        return cls(Config.from_env().base_url)

    def _unreachable(self, exc: BaseException) -> ClientError:
        return ClientError(0, f"could not connect to pyollama at {self.host}:{self.port}, is it running? "
                              f"({_root_cause(exc)})")

    def _send(self, method: str, path: str, *, body: Any = None, stream: bool = False,
              data: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            return self._session.request(method, self.base_url + path, data=data, headers=headers,
                                         stream=stream, timeout=self.timeout, allow_redirects=False)
        except requests.ConnectionError as exc:
            raise self._unreachable(exc) from exc

    @staticmethod
    def _error(status: int, payload: bytes) -> ClientError:
        text = payload.decode("utf-8", errors="replace").strip()
        try:
            message = json.loads(text).get("error", text)
        except (json.JSONDecodeError, AttributeError):
            message = text or http.client.responses.get(status, str(status))
        return ClientError(status, str(message))

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; the decoded answer (None for an empty body)."""
        resp = self._send(method, path, body=body)
        payload = resp.content
        if resp.status_code >= 400:
            raise self._error(resp.status_code, payload)
        return json.loads(payload) if payload.strip() else None

    def stream(self, method: str, path: str, body: Any = None) -> Iterator[dict[str, Any]]:
        """NDJSON objects as they arrive; an `{"error"}` line raises ClientError."""
        with self._send(method, path, body=body, stream=True) as resp:
            if resp.status_code >= 400:
                raise self._error(resp.status_code, resp.content)
            pending = b""
            for chunk in _arriving_bytes(resp):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield from self._ndjson(line, resp.status_code)
            yield from self._ndjson(pending, resp.status_code)

    @staticmethod
    def _ndjson(raw: bytes, status: int) -> Iterator[dict[str, Any]]:
        line = raw.strip()
        if not line:
            return
        obj = json.loads(line)
        if isinstance(obj, dict) and "error" in obj:
            raise ClientError(status, str(obj["error"]))
        yield obj

    def blob_exists(self, digest: str) -> bool:
        resp = self._send("HEAD", f"/api/blobs/{digest}")
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise ClientError(resp.status_code, http.client.responses.get(resp.status_code, str(resp.status_code)))

    def upload_blob(self, digest: str, path: Path, on_progress: Callable[[int], None]) -> None:
        """POST a file to /api/blobs/<digest>, streamed from disk in chunks."""
        size = path.stat().st_size
        with open(path, "rb") as f:
            # A sized body: requests sends Content-Length (not chunked) and the chunks as they are read.
            data: Any = FileChunks(f, size, on_progress) if size else b""
            if not size:
                on_progress(0)
            resp = self._send("POST", f"/api/blobs/{digest}", data=data,
                              headers={"Content-Type": "application/octet-stream"})
        if resp.status_code >= 400:
            raise self._error(resp.status_code, resp.content)


def _arriving_bytes(resp: requests.Response) -> Iterator[bytes]:
    """A streamed body in pieces as they arrive, never held back until some buffer fills."""
    raw = resp.raw
    if raw.chunked:  # Ollama, waitress and gunicorn stream NDJSON in HTTP chunks: one piece per chunk
        yield from resp.iter_content(chunk_size=None)
    elif hasattr(raw, "read1"):  # a body sent as it is written until the server closes (urllib3 >= 2.3)
        while piece := raw.read1(CHUNK, decode_content=True):
            yield piece
    else:  # older urllib3 reads fixed sizes to the end; only bytes one at a time arrive as sent
        yield from resp.iter_content(chunk_size=1)


class FileChunks:
    """A file's bytes as CHUNK-sized pieces of known total length, reporting bytes read so far."""

    def __init__(self, f: BinaryIO, size: int, on_progress: Callable[[int], None]) -> None:
        self._f = f
        self._size = size
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        done = 0
        while True:
            chunk = self._f.read(CHUNK)
            done += len(chunk)
            self._on_progress(done)
            if not chunk:
                return
            yield chunk
