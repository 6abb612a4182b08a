"""llama.cpp's RPC backend: lend this machine's backend to others, and use theirs.

A worker (`pyollama rpc-server`, `serve_rpc`) serves one local device over TCP to one
client at a time. A client registers workers as devices once per process with
`add_rpc_servers` before it loads models; llama.cpp then places offloaded layers on
them first (`n_gpu_layers` counts them like GPUs), split by their free memory, and
keeps the rest on the local backend.

The protocol has no authentication and no encryption: anyone who reaches a worker's
port can make it allocate memory and compute, and read the tensors it holds. Workers bind
127.0.0.1 unless told otherwise; expose them only on a trusted network.

ggml's RPC client aborts the whole process when a worker cannot be reached or dies
mid-call. `add_rpc_servers` therefore checks each worker with the protocol's HELLO
handshake before ggml sees it, so a missing worker is a typed error; a worker that
dies later still takes the process using it down (run such models in a child process
to survive it).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyollama import _native
from pyollama.errors import BadRequestError, ModelLoadError
from pyollama.llama.system import init_backends

log = logging.getLogger("pyollama.rpc")

DEFAULT_RPC_PORT = 50052  # llama.cpp's rpc-server default
# Wire constants of ggml-rpc.cpp that are stable across protocol versions: HELLO is always
# command 14 and carries the transport capability block.
_RPC_CMD_HELLO = 14
_RPC_CONN_CAPS_SIZE = 24
_HELLO_RSP_SIZE = 4 + _RPC_CONN_CAPS_SIZE


class RpcError(ModelLoadError):
    """An RPC worker is unreachable, busy, or speaks another protocol version (500)."""


@dataclass(frozen=True)
class RpcEndpoint:
    """A worker address: an IPv4 address or host name and a TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> RpcEndpoint:
        """`host:port`; the port defaults to 50052 when left out."""
        raw = text.strip()
        host, sep, port_text = raw.rpartition(":")
        if not sep:
            host, port_text = raw, str(DEFAULT_RPC_PORT)
        if not host or ":" in host or any(c.isspace() for c in host):
            raise BadRequestError(f"invalid RPC server {text!r}: expected host:port with an IPv4 address or name")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise BadRequestError(f"invalid RPC server {text!r}: port must be 1-65535")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def has_rpc() -> bool:
    """Whether this build carries ggml's RPC backend (-DGGML_RPC=on, the default)."""
    return bool(getattr(_native, "has_rpc", False))


def protocol_version() -> tuple[int, int, int]:
    """The RPC protocol version this build speaks; workers must share its major version."""
    _require_rpc()
    major, minor, patch = _native.rpc_proto_version
    return int(major), int(minor), int(patch)


def parse_endpoints(servers: str | Iterable[str]) -> list[RpcEndpoint]:
    """`"h1:p1,h2:p2"` (PYOLLAMA_RPC_SERVERS, `--rpc`) or a list of `host:port`; duplicates dropped."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out: list[RpcEndpoint] = []
    for item in items:
        if not item.strip():
            continue
        endpoint = RpcEndpoint.parse(item)
        if endpoint not in out:
            out.append(endpoint)
    return out


def probe(endpoint: RpcEndpoint | str, timeout: float = 5.0) -> tuple[int, int, int]:
    """The worker's protocol version, from a HELLO handshake on a connection of our own.

    Raises RpcError when it cannot be reached, does not answer within `timeout` (a worker
    serves one client at a time, so a busy one does not answer), or is not an RPC worker.
    """
    ep = endpoint if isinstance(endpoint, RpcEndpoint) else RpcEndpoint.parse(endpoint)
    request = struct.pack("<BQ", _RPC_CMD_HELLO, _RPC_CONN_CAPS_SIZE) + bytes(_RPC_CONN_CAPS_SIZE)
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(request)
            header = _recv_exactly(sock, 8)
            (size,) = struct.unpack("<Q", header)
            if size != _HELLO_RSP_SIZE:
                raise RpcError(f"RPC server {ep} sent a malformed HELLO answer ({size} bytes)")
            body = _recv_exactly(sock, size)
    except TimeoutError:
        raise RpcError(
            f"RPC server {ep} did not answer within {timeout:g}s (is it serving another client?)"
        ) from None
    except OSError as exc:
        raise RpcError(f"could not connect to RPC server {ep}: {exc.strerror or exc}") from None
    version = (body[0], body[1], body[2])
    return version


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError(104, "connection closed by the RPC server")
        buf.extend(chunk)
    return bytes(buf)


def registered_rpc_devices() -> dict[str, str]:
    """Device name -> endpoint for every worker registered in this process (no network)."""
    if not has_rpc():
        return {}
    init_backends()
    return {name: endpoint for name, endpoint in _native.rpc_registered()}


def add_rpc_servers(servers: str | Sequence[str], timeout: float = 5.0) -> list[str]:
    """Register RPC workers as devices for every model this process loads afterwards.

    Each new worker is checked first (reachable, idle, same protocol major version), so a
    bad one raises RpcError instead of ggml aborting the process. Workers added before are
    left as they are. Returns the device names (`RPC0`, ...) of all the given workers.
    """
    _require_rpc()
    endpoints = parse_endpoints(servers)
    if not endpoints:
        raise BadRequestError("no RPC servers given")
    ours = protocol_version()
    known = {endpoint: name for name, endpoint in registered_rpc_devices().items()}
    names: list[str] = []
    for ep in endpoints:
        if str(ep) in known:
            names.append(known[str(ep)])
            continue
        theirs = probe(ep, timeout)
        if theirs[0] != ours[0] or theirs[1] > ours[1]:
            raise RpcError(
                f"RPC server {ep} speaks protocol {'.'.join(map(str, theirs))}, "
                f"this build speaks {'.'.join(map(str, ours))}: run the same pyollama version on both"
            )
        try:
            added = list(_native.rpc_add_server(str(ep)))
        except RuntimeError as exc:
            raise RpcError(str(exc)) from None
        log.info("RPC server %s added as %s", ep, ", ".join(added))
        names.extend(added)
    return names


def serve_rpc(
    host: str = "127.0.0.1",
    port: int = DEFAULT_RPC_PORT,
    devices: Sequence[str] = (),
    n_threads: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Serve a local device (default: the first accelerator, else the CPU) until interrupted.

    Blocks; Ctrl-C returns. Raises RpcError when the port cannot be bound. `cache_dir`
    lets the worker keep large tensors on disk by hash, so reloading a model it has seen
    sends hashes instead of weights.
    """
    _require_rpc()
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise BadRequestError(f"RPC server host must be an IPv4 address, got {host!r}") from None
    endpoint = RpcEndpoint(host, port)
    if not 1 <= port <= 65535:
        raise BadRequestError(f"RPC server port must be 1-65535, got {port}")
    _check_bindable(endpoint)
    if not address.is_loopback:
        log.warning(
            "RPC server on %s: the RPC protocol has no authentication; anyone who can reach this "
            "port can use this machine's backend. Never expose it to an untrusted network.",
            endpoint,
        )
    threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _native.rpc_start_server(str(endpoint), list(devices), threads, os.fspath(cache_dir or ""))
        except (RuntimeError, ValueError) as exc:
            failure.append(exc)

    init_backends()
    # The server loop never returns to Python, so it runs on a daemon thread and this thread
    # stays interruptible (Ctrl-C, SIGTERM through the default handler).
    worker = threading.Thread(target=run, name=f"rpc-server-{endpoint}", daemon=True)
    worker.start()
    log.info("RPC server starting on %s (%d threads)", endpoint, threads)
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        return
    if failure:
        exc = failure[0]
        if isinstance(exc, ValueError):
            raise BadRequestError(str(exc)) from None
        raise RpcError(str(exc)) from None


def _check_bindable(endpoint: RpcEndpoint) -> None:
    """A clear error for a taken port, before ggml tries (it only prints a line and returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((endpoint.host, endpoint.port))
        except OSError as exc:
            raise RpcError(f"cannot listen on {endpoint}: {exc.strerror or exc}") from None


def _require_rpc() -> None:
    if not has_rpc():
        raise RpcError("this pyollama build has no RPC backend (rebuild with CMAKE_ARGS=-DGGML_RPC=on)")
