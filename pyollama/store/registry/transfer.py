"""What pulls and pushes share: their progress lines, their tunables, and opening a client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyollama.errors import RegistryError
from pyollama.store.blobs import digest_hex
from pyollama.store.manifest import Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.registry.auth import RegistryAuth, environ_auth
from pyollama.store.registry.client import RegistryClient

_MiB = 1 << 20


@dataclass
class Progress:
    """One streamed line of /api/pull or /api/push (Ollama's api.ProgressResponse)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Ollama's omitempty: empty digest and zero total/completed are left out."""
        out: dict[str, Any] = {"status": self.status}
        if self.digest:
            out["digest"] = self.digest
        if self.total:
            out["total"] = self.total
        if self.completed:
            out["completed"] = self.completed
        return out


@dataclass
class TransferOptions:
    """Tunables of pulls and pushes; the defaults suit real registries, tests shrink them."""

    # Range size and connection count are separate choices. Ranges are small (a 16 MiB floor,
    # at most 16 per layer as in Ollama) so that the connections that join late still find work
    # and the resume state is fine-grained; connections start at one and double every
    # `ramp_interval` while each delivers less than `fast_connection_rate`. Parallel ranges beat
    # per-connection limits (TCP window x RTT, CDN throttles: typically 10-60 MB/s per
    # connection), where Ollama's 16 parallel parts help; against a registry that already
    # delivers >= 1 Gbit/s on one connection (LAN, loopback) more connections only compete for
    # the CPU that writes and hashes, and ranges finishing out of order leave the hash to read
    # them back. There, the lone connection, once its first range showed it fast, fetches all
    # the others in one request: each request costs a round trip and the registry's work on it
    # (4-8 ms from docker-registry on loopback) during which no byte arrives, and 16 ranges of
    # a 250 MB blob took 1.7-1.8x as long as one GET.
    part_threshold: int = 16 * _MiB  # layers larger than this are split into ranges
    max_parts: int = 16  # a layer is split into at most this many ranges (Ollama: 16)
    max_connections: int = 8  # at most this many ranges of one layer in flight at once
    fast_connection_rate: float = 128 * _MiB  # bytes/s per connection above which none are added
    ramp_interval: float = 0.1  # seconds between connection-count decisions
    sync_bytes: int = 64 * _MiB  # fsync (and save the resume state) after this many new bytes
    upload_chunk_size: int = 64 * _MiB  # bytes per PATCH
    max_retries: int = 6  # failed attempts of one range or chunk without progress
    retry_backoff: float = 1.0  # seconds before the first retry, doubled each time
    progress_interval: float = 0.08  # at most one progress line per layer this often
    state_interval: float = 0.5  # the `-partial-N` resume state is saved at least this often
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # a range with no bytes for this long is retried
    prune: bool = True  # remove blobs only the replaced manifest used (OLLAMA_NOPRUNE unset)
    prefetch_size: int = 1 * _MiB  # blobs up to this size are fetched in the background (_pull_blobs)
    prefetch_connections: int = 4  # at most this many of them at once


@contextmanager
def os_errors_as_registry_errors() -> Iterator[None]:
    """Disk errors (ENOSPC, permissions) and stray transport errors (requests' are OSErrors)
    reach the client as RegistryError lines like every other failure."""
    try:
        yield
    except OSError as exc:
        raise RegistryError(str(exc) or type(exc).__name__) from exc


def registry_base_url(name: ModelName, insecure: bool) -> str:
    """`scheme://host`; `insecure` switches to plain http, as Ollama's makeRequest does."""
    if name.scheme == "http" and not insecure:
        raise RegistryError("insecure protocol http")
    return f"{'http' if insecure else name.scheme}://{name.host}"


def open_client(name: ModelName, insecure: bool, auth: RegistryAuth | None, opts: TransferOptions,
            cancel: threading.Event | None) -> RegistryClient:
    return RegistryClient(
        registry_base_url(name, insecure),
        name.repository,
        auth if auth is not None else environ_auth(),
        connect_timeout=opts.connect_timeout,
        read_timeout=opts.read_timeout,
        max_retries=opts.max_retries,
        retry_backoff=opts.retry_backoff,
        pool_size=max(opts.max_connections, 2),
        cancel=cancel,
    )


def layer_status(verb: str, digest: str) -> str:
    return f"{verb} {digest_hex(digest)[:12]}"


def unique_layers(manifest: Manifest) -> list[Layer]:
    """Layers then config (Ollama's order), each digest once."""
    seen: set[str] = set()
    out = []
    for layer in [*manifest.layers, manifest.config]:
        if layer.digest not in seen:
            seen.add(layer.digest)
            out.append(layer)
    return out
