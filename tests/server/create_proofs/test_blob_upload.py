"""`POST /api/blobs` against the real server process: big uploads in flat memory, bad and cut uploads.

The bodies are generated one MiB at a time and streamed by `requests` (chunked transfer
encoding for a generator, or Content-Length for a sized reader), so the test client never holds
them either. Memory is read from /proc/<pid>/status of the `pyollama serve` process.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from create_proofs_helpers import (
    MIB,
    RssSampler,
    Served,
    file_digest,
    pattern_chunks,
    pattern_digest,
    proc_status_kib,
    reset_peak_rss,
)

BIG_MIB = 300
# The server's peak resident memory may grow by at most this much while it takes a 300 MiB body.
MAX_GROWTH_MIB = 64


class SizedReader:
    """A file-like body of known length: `requests` sends it with Content-Length, read by read."""

    def __init__(self, n_mib: int, seed: int) -> None:
        self._chunks = pattern_chunks(n_mib, seed)
        self._chunk = b""
        self._offset = 0
        self._size = n_mib * MIB

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        """At most `size` bytes (at most one MiB chunk's worth); b"" at the end."""
        if self._offset >= len(self._chunk):
            self._chunk, self._offset = next(self._chunks, b""), 0
        end = len(self._chunk) if size < 0 else min(len(self._chunk), self._offset + size)
        out = self._chunk[self._offset : end]
        self._offset = end
        return out


def blob_file(served: Served, digest: str) -> Path:
    return served.models / "blobs" / ("sha256-" + digest.removeprefix("sha256:"))


def stray_files(served: Served) -> list[str]:
    """Anything in blobs/ that is not a finished blob: temp files of writes still (or left) open."""
    blobs = served.models / "blobs"
    return sorted(p.name for p in blobs.iterdir() if p.name.endswith((".tmp", "-partial")))


def head_status(served: Served, digest: str) -> int:
    return requests.head(f"{served.url}/api/blobs/{digest}", timeout=30).status_code


def _upload_and_watch(served: Served, digest: str, body: object) -> tuple[int, int, int]:
    """(status, sampled peak growth KiB, VmHWM growth KiB) of one upload."""
    assert reset_peak_rss(served.pid), "cannot reset the server's peak RSS (/proc/<pid>/clear_refs)"
    baseline = proc_status_kib(served.pid, "VmRSS")
    # The reset took: the peak now starts from the current resident size.
    assert proc_status_kib(served.pid, "VmHWM") <= baseline + 1024
    with RssSampler(served.pid) as sampler:
        response = requests.post(f"{served.url}/api/blobs/{digest}", data=body, timeout=600)
    peak = proc_status_kib(served.pid, "VmHWM")
    return response.status_code, sampler.peak_kib - baseline, peak - baseline


def test_blob_upload_of_300_mib_chunked_keeps_server_memory_flat(served: Served) -> None:
    digest = pattern_digest(BIG_MIB, seed=1)
    status, sampled_kib, peak_kib = _upload_and_watch(served, digest, pattern_chunks(BIG_MIB, seed=1))
    assert status == 201
    assert sampled_kib < MAX_GROWTH_MIB * 1024, f"sampled RSS grew {sampled_kib // 1024} MiB"
    assert peak_kib < MAX_GROWTH_MIB * 1024, f"peak RSS grew {peak_kib // 1024} MiB"
    stored = blob_file(served, digest)
    assert stored.stat().st_size == BIG_MIB * MIB
    assert file_digest(stored) == digest
    assert head_status(served, digest) == 200 and stray_files(served) == []
    stored.unlink()  # 300 MiB of test data: not kept for the rest of the session


def test_blob_upload_of_300_mib_with_content_length_keeps_server_memory_flat(served: Served) -> None:
    digest = pattern_digest(BIG_MIB, seed=2)
    status, sampled_kib, peak_kib = _upload_and_watch(served, digest, SizedReader(BIG_MIB, seed=2))
    assert status == 201
    assert max(sampled_kib, peak_kib) < MAX_GROWTH_MIB * 1024, f"RSS grew {max(sampled_kib, peak_kib) // 1024} MiB"
    stored = blob_file(served, digest)
    assert file_digest(stored) == digest
    stored.unlink()


def test_blob_upload_with_wrong_digest_is_400_and_keeps_nothing(served: Served) -> None:
    announced = pattern_digest(8, seed=3)
    actual = pattern_digest(8, seed=4)
    before = sorted(p.name for p in (served.models / "blobs").iterdir())
    response = requests.post(f"{served.url}/api/blobs/{announced}", data=pattern_chunks(8, seed=4), timeout=60)
    assert response.status_code == 400
    assert response.json() == {"error": f'digest mismatch, expected "{announced}", got "{actual}"'}
    assert sorted(p.name for p in (served.models / "blobs").iterdir()) == before
    assert head_status(served, announced) == 404 and head_status(served, actual) == 404


def _send_then_hang_up(served: Served, digest: str, headers: list[str], parts: Iterator[bytes]) -> None:
    """Open a raw connection, send the request line, headers and `parts`, then close it:
    a client that dies mid-upload. Returns without reading a response (none can come)."""
    with socket.create_connection((served.host, served.port), timeout=30) as sock:
        head = [f"POST /api/blobs/{digest} HTTP/1.1", f"Host: {served.host}:{served.port}", *headers, "", ""]
        sock.sendall("\r\n".join(head).encode("ascii"))
        for part in parts:
            sock.sendall(part)


def _wait_until_idle(served: Served) -> None:
    """The server has dropped the cut connection: no temp file is being written for it."""
    deadline = time.monotonic() + 30
    while stray_files(served) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_blob_upload_cut_short_keeps_nothing_and_a_full_upload_then_succeeds(served: Served) -> None:
    n_mib = 16
    digest = pattern_digest(n_mib, seed=5)
    half = (chunk for i, chunk in enumerate(pattern_chunks(n_mib, seed=5)) if i < n_mib // 2)
    _send_then_hang_up(served, digest, [f"Content-Length: {n_mib * MIB}"], half)
    _wait_until_idle(served)
    assert head_status(served, digest) == 404
    assert not blob_file(served, digest).exists() and stray_files(served) == []

    # Nothing of the cut upload is trusted: the whole body is taken again and verified.
    response = requests.post(f"{served.url}/api/blobs/{digest}", data=pattern_chunks(n_mib, seed=5), timeout=60)
    assert response.status_code == 201
    assert file_digest(blob_file(served, digest)) == digest


def test_blob_upload_chunked_cut_before_last_chunk_keeps_nothing(served: Served) -> None:
    n_mib = 8
    digest = pattern_digest(n_mib, seed=6)
    # Chunked framing without the terminating zero-size chunk: the body never ended.
    framed = (f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in pattern_chunks(n_mib, seed=6))
    _send_then_hang_up(served, digest, ["Transfer-Encoding: chunked"], framed)
    _wait_until_idle(served)
    assert head_status(served, digest) == 404
    assert not blob_file(served, digest).exists() and stray_files(served) == []
