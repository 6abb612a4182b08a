"""Support for the registry end-to-end tests (fixtures are in conftest.py): a real
distribution registry process (Debian's `docker-registry`, installed by
`.ci/install-registry.sh`), optionally behind basic auth or a bearer-token server, a
recording proxy in front of it, and small models written straight into a store.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from pyollama.store.manifest import CONFIG_MEDIA_TYPE, MEDIA_MODEL, MEDIA_PARAMS, Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.registry import Progress, TransferOptions
from pyollama.store.store import Store

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yml"
REGISTRY_BIN = "/usr/bin/docker-registry"
START_TIMEOUT = 10.0


def _registry_binary() -> str:
    found = shutil.which("docker-registry") or (REGISTRY_BIN if os.path.exists(REGISTRY_BIN) else None)
    if found is None:
        pytest.fail("docker-registry is not installed: run .ci/install-registry.sh")
    return found


# ------------------------------------------------------------------------------------------------
# the registry process


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    root: Path  # its storage directory
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def name(self, repo: str = "testns/tiny", tag: str = "latest") -> ModelName:
        return ModelName.parse(f"{self.host}/{repo}:{tag}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_registry(workdir: Path, extra_env: dict[str, str] | None = None) -> Registry:
    """Start `docker-registry serve config.yml` on a free loopback port (the registry picks it:
    `http.addr: 127.0.0.1:0`) and wait until it answers /v2/."""
    binary = _registry_binary()
    root = workdir / "registry-storage"
    root.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "registry.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root),
        "REGISTRY_HTTP_SECRET": secrets.token_hex(16),
        **(extra_env or {}),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(CONFIG)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    host = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited with {proc.returncode}:\n{log_path.read_text()}")
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if match:
            host = match.group(1)
            try:
                requests.get(f"http://{host}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                pass
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail(f"docker-registry did not start in {START_TIMEOUT}s:\n{log_path.read_text()}")
    assert host is not None
    return Registry(host=host, root=root, proc=proc, log_path=log_path)


USER, PASSWORD = "alice", "correct horse"


def start_basic_registry(workdir: Path) -> Registry:
    """A registry behind HTTP basic auth (htpasswd, bcrypt) for USER/PASSWORD."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail("htpasswd is not installed: run .ci/install-registry.sh (apache2-utils)")
    line = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True).stdout
    path = workdir / "htpasswd"
    path.write_bytes(line)
    return start_registry(workdir, {"REGISTRY_AUTH_HTPASSWD_REALM": "pyollama-test",
                                    "REGISTRY_AUTH_HTPASSWD_PATH": str(path)})


# ------------------------------------------------------------------------------------------------
# a bearer-token server (Docker's token protocol) for the token-auth registry


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs the registry trusts (x5c chain = our self-signed certificate) to
    clients that send USER/PASSWORD as HTTP basic; answers 401 otherwise."""

    def __init__(self, workdir: Path, service: str, issuer: str) -> None:
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-days", "2", "-subj", "/CN=pyollama-test-token"],
            check=True, capture_output=True,
        )
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service = service
        self.issuer = issuer
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"query": query, "authorization": auth})
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": server.issue(query.get("scope", [])), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def issue(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": USER, "aud": self.service, "exp": now + 300, "nbf": now - 5,
                  "iat": now - 5, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_token_registry(workdir: Path) -> tuple[Registry, TokenServer]:
    """A registry that challenges with `Bearer realm=...,service=...,scope=...`."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (needed to sign test tokens)")
    tokens = TokenServer(workdir, service="pyollama-registry", issuer="pyollama-test-issuer")
    reg = start_registry(workdir, {
        "REGISTRY_AUTH_TOKEN_REALM": tokens.realm,
        "REGISTRY_AUTH_TOKEN_SERVICE": tokens.service,
        "REGISTRY_AUTH_TOKEN_ISSUER": tokens.issuer,
        "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": str(tokens.cert),
    })
    return reg, tokens


# ------------------------------------------------------------------------------------------------
# a recording proxy in front of the registry


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}
_BLOB_PATH = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")


@dataclass
class Exchange:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # response body bytes sent to the client
    received: int  # request body bytes received from the client


@dataclass
class ProxyRules:
    ignore_range: bool = False  # drop Range headers, so the registry answers 200 with everything
    corrupt_blobs: bool = False  # flip the first byte of every blob body
    cut_after: dict[str, int] = field(default_factory=dict)  # digest -> cut one response after N bytes
    delay_per_chunk: float = 0.0  # throttle blob bodies (seconds per chunk)
    chunk: int = 64 * 1024


class RecordingProxy:
    """A threaded HTTP proxy to the registry that records every exchange and can throttle,
    cut or corrupt blob downloads."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules = ProxyRules()
        self.log: list[Exchange] = []
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.max_blobs_in_flight = 0  # most blob bodies being sent at once, any digests
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def name(self, repo: str = "testns/tiny", tag: str = "latest") -> ModelName:
        return ModelName.parse(f"{self.host}/{repo}:{tag}")

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.max_in_flight.clear()
            self.max_blobs_in_flight = 0
        self.rules = ProxyRules()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no blob body is being sent (a killed client's streams end on a broken pipe)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not any(self.in_flight.values()):
                    return
            time.sleep(0.01)
        raise AssertionError(f"proxy still sending: {self.in_flight}")

    def blob_bytes(self, digest: str) -> int:
        """Body bytes of `digest` sent to clients by GETs."""
        with self.lock:
            return sum(e.sent for e in self.log if e.method == "GET" and e.path.endswith(f"/blobs/{digest}"))

    def blob_ranges(self, digest: str) -> list[str | None]:
        with self.lock:
            return [e.range for e in self.log if e.method == "GET" and e.path.endswith(f"/blobs/{digest}")]

    def uploaded_bytes(self) -> int:
        with self.lock:
            return sum(e.received for e in self.log if e.method in ("PATCH", "PUT", "POST") and "/blobs/" in e.path)

    def exchanges(self, method: str, fragment: str = "") -> list[Exchange]:
        with self.lock:
            return [e for e in self.log if e.method == method and fragment in e.path]

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        rules = self.rules
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        if rules.ignore_range:
            headers.pop("Range", None)
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        path = urlsplit(req.path).path
        match = _BLOB_PATH.match(path) if req.command == "GET" else None
        digest = match.group(2) if match else None
        try:
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            req.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    req.send_header(key, value)
            req.end_headers()
            sent = 0
            if req.command != "HEAD":
                sent = self._copy_body(req, resp, digest if resp.status in (200, 206) else None, rules)
            with self.lock:
                self.log.append(Exchange(req.command, path, req.headers.get("Range"), resp.status, sent, len(body)))
        finally:
            conn.close()

    def _copy_body(self, req: http.server.BaseHTTPRequestHandler, resp: http.client.HTTPResponse,
                   digest: str | None, rules: ProxyRules) -> int:
        sent = 0
        first = True
        if digest is not None:
            with self.lock:
                self.in_flight[digest] = self.in_flight.get(digest, 0) + 1
                self.max_in_flight[digest] = max(self.max_in_flight.get(digest, 0), self.in_flight[digest])
                self.max_blobs_in_flight = max(self.max_blobs_in_flight, sum(self.in_flight.values()))
        try:
            while True:
                data = resp.read(rules.chunk if digest else 64 * 1024)
                if not data:
                    return sent
                if digest is not None:
                    if rules.corrupt_blobs and first:
                        data = bytes([data[0] ^ 0xFF]) + data[1:]
                    first = False
                    limit = rules.cut_after.get(digest)
                    if limit is not None and sent + len(data) >= limit:
                        # One cut per digest: send up to the limit, then drop the connection.
                        del rules.cut_after[digest]
                        req.wfile.write(data[: max(limit - sent, 0)])
                        req.wfile.flush()
                        sent += max(limit - sent, 0)
                        req.close_connection = True
                        req.connection.shutdown(socket.SHUT_RDWR)
                        return sent
                    if rules.delay_per_chunk:
                        time.sleep(rules.delay_per_chunk)
                req.wfile.write(data)
                sent += len(data)
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True
            return sent
        finally:
            if digest is not None:
                with self.lock:
                    self.in_flight[digest] -= 1

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------------------
# stores and models


@dataclass
class TestModel:
    name: ModelName
    manifest: Manifest
    blobs: dict[str, bytes]  # digest -> content

    @property
    def big(self) -> Layer:
        return max(self.manifest.layers, key=lambda layer: layer.size)


def write_model(store: Store, name: ModelName, sizes: list[int], seed: int = 0) -> TestModel:
    """A model of random-bytes layers plus a config blob, written straight into `store`."""
    rng = random.Random(seed)
    blobs: dict[str, bytes] = {}
    layers = []
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        digest, _ = store.blobs.write_bytes(data)
        blobs[digest] = data
        layers.append(Layer(MEDIA_MODEL if i == 0 else MEDIA_PARAMS, digest, size))
    config = json.dumps({"model_format": "gguf", "model_family": "test", "seed": seed}).encode()
    config_digest, _ = store.blobs.write_bytes(config)
    blobs[config_digest] = config
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, config_digest, len(config)), layers=layers)
    store.write_manifest(name, manifest)
    return TestModel(name, manifest, blobs)


def small_options(**overrides: Any) -> TransferOptions:
    """Transfer options scaled to test blobs of a few MiB."""
    opts = TransferOptions(part_threshold=256 * 1024, max_parts=8, max_connections=4,
                           upload_chunk_size=512 * 1024, max_retries=2, retry_backoff=0.05,
                           progress_interval=0.02, state_interval=0.05, read_timeout=10.0)
    return dataclasses.replace(opts, **overrides)


def statuses(lines: list[Progress]) -> list[str]:
    """The status sequence with consecutive repeats (progress ticks) collapsed."""
    out: list[str] = []
    for line in lines:
        if not out or out[-1] != line.status:
            out.append(line.status)
    return out


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
