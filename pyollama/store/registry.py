"""Pull and push models: Ollama's registry protocol, also against plain Docker/OCI registries.

`pull_model` and `push_model` are generators of `Progress` objects, the lines `/api/pull`
and `/api/push` stream; a failure is raised (a `RegistryError`) after the lines so far, and
the server turns it into the final `{"error": ...}` line.

Pull (Ollama's `PullModel`, reference §3.3):
- the manifest is fetched with both the Docker v2 and the OCI manifest media types accepted;
- each missing layer is downloaded into `blobs/sha256-<hex>-partial`: a layer larger than
  `TransferOptions.part_threshold` in up to `max_parts` byte ranges, fetched in order and
  written at their offsets. One connection starts; more (up to `max_connections`) join while
  each delivers less than `fast_connection_rate`, so a registry behind a per-connection limit
  (a CDN) gets parallel ranges. A connection that has proved fast while alone takes all the
  remaining ranges in one request, so a fast registry (a LAN or loopback one) is read as
  one sequential stream: two requests per layer. Each range's state lives beside it in
  `...-partial-<N>`, JSON `{"N":0,"Offset":0,"Size":...,"Completed":...}` as Ollama writes
  it, so an interrupted pull (ours or Ollama's) resumes from what is already on disk;
- small blobs (config, template, parameters) are fetched in the background, several at once,
  while the large ones download; the progress lines still come in layer order;
- blob GETs follow redirects (Ollama's registry answers 307 to object storage) and accept a
  plain 200 (a distribution registry serving blobs itself, which upstream Ollama cannot pull);
  a registry that ignores `Range` is read as one stream;
- every downloaded blob is hashed before it is renamed into the store; a mismatch deletes the
  partial and fails with `digest mismatch, file must be downloaded again`. The hash follows
  the download on its own thread, in file order: the buffers the connection at the hashed
  frontier has just written are handed over and hashed from memory; what nobody handed over
  (a resumed partial's bytes, ranges written ahead by other connections) is read back from
  the file when the contiguous prefix reaches it. Verification needs no second pass;
- the data is fsynced before the resume states claim it and before the rename; writeback is
  started while the download goes on (sync_file_range on Linux), so that fsync finds little
  left to write;
- the manifest is written last, atomically, byte for byte as the registry sent it.

Push (Ollama's `PushModel`, reference §3.4): per layer a HEAD skips blobs the repository has;
otherwise a cross-repository mount is tried (from the layer's `from`, or from another
repository on the same registry that holds the blob locally), then the standard upload:
POST, sequential PATCH chunks (resumed from the registry's upload status after a broken
connection), PUT with the digest. The manifest goes last.

Concurrent pulls of the same blob (threads or processes) are serialised by an advisory lock
on its partial file, so they never write the same file at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import requests
import urllib3

from pyollama.errors import BadRequestError, DigestMismatchError, NotFoundError, PyollamaError, RegistryError
from pyollama.store.blobs import digest_hex, fsync_dir
from pyollama.store.manifests import MANIFEST_MEDIA_TYPE, Layer, Manifest, Store
from pyollama.store.names import ModelName
from pyollama.store.registry_client import (
    RegistryAuth,
    RegistryCanceledError,
    RegistryClient,
    RegistryConnectionError,
    RegistryNotFoundError,
    environ_auth,
    error_text,
)

try:
    import fcntl
except ImportError:  # Windows: concurrent pulls of one blob are not serialised there
    fcntl = None  # type: ignore[assignment]


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), which Python's os module lacks; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], func)


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2

log = logging.getLogger("pyollama.registry")

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_INDEX_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
_MANIFEST_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}"
# Distribution refuses manifests over 4 MiB; a larger answer is not a manifest.
_MAX_MANIFEST_BYTES = 4 << 20
_MiB = 1 << 20
# Socket reads and hash reads of at most this many bytes. One read1 hands over what the socket
# has (up to this; ~80 KB on loopback), one pwrite per chunk. Measured on loopback: 4 MiB reads
# cost more CPU than 1 MiB (each is a fresh allocation).
_READ_CHUNK = 1 * _MiB
# Received buffers waiting for the hash thread; beyond this they are read back from disk later.
_MAX_QUEUED = 32 * _MiB
# Written bytes handed to the kernel's writeback (_start_writeback) in steps of this size.
_WRITEBACK_STEP = 8 * _MiB
_PAGE = 4096


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing these bytes to disk now, without waiting (SYNC_FILE_RANGE_WRITE; a
    no-op off Linux). Durability still comes from the fsync before the commit; this only
    lets the disk work while the download goes on instead of all at that fsync, which took
    ~50 ms per 100 MB at the end of every blob."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors are ignored


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
def _os_errors_as_registry_errors() -> Iterator[None]:
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


def _client(name: ModelName, insecure: bool, auth: RegistryAuth | None, opts: TransferOptions,
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


def _layer_status(verb: str, digest: str) -> str:
    return f"{verb} {digest_hex(digest)[:12]}"


def _unique_layers(manifest: Manifest) -> list[Layer]:
    """Layers then config (Ollama's order), each digest once."""
    seen: set[str] = set()
    out = []
    for layer in [*manifest.layers, manifest.config]:
        if layer.digest not in seen:
            seen.add(layer.digest)
            out.append(layer)
    return out


def _run_with_progress(
    work: Callable[[threading.Event], None],
    report: Callable[[], Progress | None],
    interval: float,
    cancel: threading.Event | None,
) -> Iterator[Progress]:
    """Run `work(stop)` on a thread and yield `report()` whenever it changed, every `interval`,
    until the work is done.

    If the consumer stops iterating (client gone) or `cancel` is set, `stop` is set and the
    thread is waited for, so no thread outlives the generator holding files open.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyollama-transfer") as pool:
        try:
            yield from _follow(pool.submit(work, stop), stop, report, interval, cancel)
        finally:
            stop.set()


def _follow(future: Future[None], stop: threading.Event, report: Callable[[], Progress | None],
            interval: float, cancel: threading.Event | None) -> Iterator[Progress]:
    """Yield `report()` whenever it changed, every `interval`, until `future` (work running
    with `stop`) is done; a set `cancel` stops the work and raises RegistryCanceledError."""
    last: dict[str, Any] | None = None
    while True:
        if wait([future], timeout=interval)[0]:
            # The caller yields the final completed==total line.
            future.result()
            return
        current = report()
        if current is not None and current.to_json() != last:
            last = current.to_json()
            yield current
        if cancel is not None and cancel.is_set():
            stop.set()
            wait([future])
            raise RegistryCanceledError()


# ------------------------------------------------------------------------------------------------
# pull


@dataclass
class _Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}


class _RangeIgnoredError(Exception):
    """The registry answered a ranged GET with the whole blob (200)."""


class _ShortReadError(Exception):
    """The body ended before the requested range did."""


class _PartialFile:
    """An open, locked `-partial` data file and its `-partial-<N>` range states.

    Owned by one pull; its download threads only pwrite into disjoint ranges and bump their
    own part's `completed` under `lock`.
    """

    def __init__(self, store: Store, digest: str, total: int) -> None:
        self.digest = digest
        self.total = total
        self.path = store.blobs.partial_path(digest)
        self.blob_path = store.blobs.path(digest)
        self.lock = threading.Lock()
        self.parts: list[_Part] = []
        self.saved: dict[int, int] = {}  # part number -> `completed` its state file holds
        self.fd = -1

    # -- locking ---------------------------------------------------------------------------------

    def open_locked(self, stop: threading.Event, create: bool = True) -> bool:
        """Open and lock the partial file; False if there is none (and `create` is False)."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        while True:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                return False
            if fcntl is not None:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        # Another pull is downloading or verifying this blob.
                        if stop.wait(0.05):
                            os.close(fd)
                            raise RegistryCanceledError() from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return True
            # The holder renamed (committed) or deleted the file we locked: look again.
            os.close(fd)
            if self.blob_path.is_file() or not create:
                return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also releases the flock
            self.fd = -1

    # -- state -----------------------------------------------------------------------------------

    def _part_path(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}-{n}")

    def _state_files(self, with_temps: bool = False) -> list[Path]:
        prefix = self.path.name + "-"
        out = []
        for path in self.path.parent.glob(prefix + "*"):
            suffix = path.name[len(prefix):]
            if suffix.isdigit() or (with_temps and suffix.endswith(".tmp") and suffix[:-4].isdigit()):
                out.append(path)
        return out

    def plan(self, opts: TransferOptions) -> None:
        """Load the resume state left by an earlier pull, or split the blob into fresh parts."""
        parts = self._load_parts()
        if parts is None:
            self.remove_state()
            os.ftruncate(self.fd, 0)
            parts = self._split(opts)
        else:
            # What the states on disk claim was synced by the pull that wrote them.
            self.saved = {p.n: p.completed for p in parts}
        os.ftruncate(self.fd, self.total)
        self.parts = parts
        # Fresh states claim nothing yet: the first save_state writes them all, from the
        # coordinating thread while bytes arrive (creating 16 files took ~13 ms under load).

    def _split(self, opts: TransferOptions) -> list[_Part]:
        if self.total <= opts.part_threshold:
            return [_Part(0, 0, self.total)]
        size = max(opts.part_threshold, math.ceil(self.total / max(opts.max_parts, 1)))
        return [_Part(n, off, min(size, self.total - off)) for n, off in enumerate(range(0, self.total, size))]

    def _load_parts(self) -> list[_Part] | None:
        """Parts from `-partial-<N>` files if they describe this blob exactly, else None."""
        files = self._state_files()
        if not files:
            return None
        parts = []
        for path in files:
            try:
                obj = json.loads(path.read_text())
                part = _Part(int(obj["N"]), int(obj["Offset"]), int(obj["Size"]), int(obj["Completed"]))
            except (OSError, ValueError, KeyError, TypeError):
                return None
            if path.name != f"{self.path.name}-{part.n}" or not 0 <= part.completed <= part.size:
                return None
            parts.append(part)
        parts.sort(key=lambda p: p.offset)
        offset = 0
        for part in parts:
            if part.offset != offset:
                return None
            offset += part.size
        # The data file must still hold the bytes the states claim.
        if offset != self.total or os.fstat(self.fd).st_size != self.total:
            return None
        return parts

    def completed(self) -> int:
        with self.lock:
            return sum(p.completed for p in self.parts)

    def prefix(self) -> int:
        """How many bytes from offset 0 are on disk without a gap (`parts` are in offset order)."""
        with self.lock:
            end = 0
            for part in self.parts:
                end = part.offset + part.completed
                if part.completed < part.size:
                    break
            return end

    def identity(self) -> tuple[int, ...]:
        """What changes when anyone writes or replaces the data file: a digest computed over
        the file is valid for it only while this stays the same."""
        st = os.fstat(self.fd)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def save_state(self) -> None:
        """Make the written bytes durable, then record them: a state never claims unsynced data.

        Only the states that changed are written, in place (one small write at offset 0, then
        the length). Replacing a file by rename makes ext4 allocate its block at once
        (auto_da_alloc), and freeing such blocks again (the next replace, the final unlink)
        takes milliseconds per file where the filesystem is mounted with `discard`: with 16
        parts that was tens of ms per save and ~50 ms at the end of every large blob. A torn
        or lost state costs at most a download again: _load_parts rejects states that do not
        parse or do not tile the blob, and the digest check guards the data.
        The fsync is skipped when no state claims more bytes than its file holds (fresh parts,
        nothing new since the last save): on this kind of disk every fsync costs a cache flush,
        ~4 ms even with nothing dirty, which was most of the time of a small blob's pull.
        Called only from the download's coordinating thread.
        """
        with self.lock:
            changed = [p.to_json() for p in self.parts if self.saved.get(p.n) != p.completed]
        if any(state["Completed"] > self.saved.get(state["N"], 0) for state in changed):
            os.fsync(self.fd)
        for state in changed:
            data = json.dumps(state, separators=(",", ":")).encode()
            fd = os.open(self._part_path(state["N"]), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
            self.saved[state["N"]] = state["Completed"]

    def remove_state(self) -> None:
        # Temps too: earlier versions saved by rename, and a pull killed meanwhile left one.
        for path in self._state_files(with_temps=True):
            path.unlink(missing_ok=True)
        self.saved.clear()

    def discard(self) -> None:
        self.remove_state()
        self.path.unlink(missing_ok=True)

    def reset_single(self) -> None:
        """Forget the ranges: one part, from byte 0 (for registries that ignore Range)."""
        self.remove_state()
        with self.lock:
            self.parts = [_Part(0, 0, self.total)]
        self.save_state()


class _PrefixHasher:
    """sha256 of a partial file in file order, computed on its own thread while the download
    goes on, so the digest is ready (nearly) when the last byte is written.

    The connection writing at the hashed frontier hands over the buffers it has just written
    (`feed`), so a sequential download is hashed from memory as it arrives and never read
    back. Bytes nobody handed over (a resumed partial's, ranges that other connections wrote
    ahead of the frontier, buffers beyond the `_MAX_QUEUED` memory bound) are read back from
    the file once the contiguous prefix on disk reaches them. Either way each byte is hashed
    once, after it was written, so the digest is that of the file's bytes.
    """

    def __init__(self, partial: _PartialFile) -> None:
        self.partial = partial
        self.hasher = hashlib.sha256()
        self.hashed = 0  # bytes hashed, from offset 0; only the hash thread advances it
        # Handed-over buffers not hashed yet, contiguous, ending at `fed_end`; under `cond`.
        self.queue: deque[tuple[int, memoryview]] = deque()
        self.queued = 0
        self.fed_end = 0
        self.cond = threading.Condition()
        self.finishing = False
        self.stopped = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="pyollama-hash", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """`data` was just written at `offset`: take it if it continues what was handed over
        so far (else it is read back from disk later); also wakes the thread for the prefix."""
        end = offset + len(data)
        with self.cond:
            if offset <= self.fed_end < end and self.queued < _MAX_QUEUED:
                view = memoryview(data)[self.fed_end - offset:]
                self.queue.append((self.fed_end, view))
                self.queued += len(view)
                self.fed_end = end
                if self.queued < _READ_CHUNK:
                    # Wake the thread per MiB, not per socket read (~80 KB on loopback);
                    # finish() wakes it for the rest.
                    return
            self.cond.notify()

    def finish(self) -> str:
        """`sha256:<hex>` of the whole file, once every part is complete."""
        with self.cond:
            self.finishing = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error
        if self.hashed != self.partial.total:
            raise RegistryError(f"hashed {self.hashed} of {self.partial.total} bytes of {self.partial.digest}")
        return "sha256:" + self.hasher.hexdigest()

    def stop(self) -> None:
        """Abandon the hash (the download failed or starts over); returns once the thread is gone."""
        with self.cond:
            self.stopped = True
            self.cond.notify()
        if self.thread.is_alive():
            self.thread.join()

    def _next(self) -> tuple[int, memoryview] | int | None:
        """A handed-over buffer, else how far the prefix on disk reaches, else None (done)."""
        with self.cond:
            while not self.stopped:
                if self.queue:
                    item = self.queue.popleft()
                    self.queued -= len(item[1])
                    return item
                target = self.partial.prefix()
                if target > self.hashed:
                    return target
                if self.finishing:
                    return None
                self.cond.wait()
            return None

    def _run(self) -> None:
        buf = memoryview(bytearray(_READ_CHUNK))
        try:
            while (job := self._next()) is not None:
                if isinstance(job, tuple):
                    offset, data = job
                    skip = self.hashed - offset  # > 0 where the disk path hashed past its start
                    if skip < 0:
                        raise RegistryError(f"hash of {self.partial.digest} skipped bytes {self.hashed}-{offset}")
                    self.hasher.update(data[skip:])
                    self.hashed = max(self.hashed, offset + len(data))
                    continue
                while self.hashed < job and not self.stopped:
                    n = os.preadv(self.partial.fd, [buf[: min(_READ_CHUNK, job - self.hashed)]], self.hashed)
                    if n <= 0:
                        raise RegistryError(f"{self.partial.path} ended at {self.hashed} bytes while hashing")
                    self.hasher.update(buf[:n])
                    self.hashed += n
                with self.cond:
                    # Buffers of what was just read back are stale; the next one to feed starts here.
                    self.fed_end = max(self.fed_end, self.hashed)
        except (OSError, RegistryError) as exc:  # reported by finish(); the downloads carry on
            self.error = exc


class _Downloader:
    """Fetches the missing ranges of one blob into its locked partial file and hashes it;
    `digest` is the sha256 of the finished file."""

    def __init__(self, client: RegistryClient, partial: _PartialFile, opts: TransferOptions) -> None:
        self.client = client
        self.partial = partial
        self.opts = opts
        self.url = client.url(f"blobs/{partial.digest}")
        self.digest = ""

    def run(self, stop: threading.Event) -> None:
        try:
            self._run_parts(stop)
        except _RangeIgnoredError:
            log.info("registry ignores Range for %s; downloading it as one stream", self.partial.digest)
            self.partial.reset_single()
            self._run_parts(stop)
        finally:
            self.partial.save_state()

    def _run_parts(self, stop: threading.Event) -> None:
        hasher = _PrefixHasher(self.partial)
        hasher.start()
        try:
            todo = deque(p for p in self.partial.parts if p.completed < p.size)
            if todo:
                self._fetch_parts(todo, stop, hasher)
                # The writeback left for this fsync runs while the hasher finishes its tail.
                self.partial.save_state()
            else:
                # Complete on disk already: its states may come from a pull that did not sync
                # (Ollama's), and the commit relies on this download's fsync.
                os.fsync(self.partial.fd)
            self.digest = hasher.finish()
        finally:
            hasher.stop()

    def _fetch_parts(self, todo: deque[_Part], stop: threading.Event, hasher: _PrefixHasher) -> None:
        """Fetch `todo` (in offset order) with one connection, adding more while they are slow."""
        opts = self.opts
        limit = max(1, min(opts.max_connections, len(todo)))
        part_stop = threading.Event()
        todo_lock = threading.Lock()
        running = 0  # workers started and not finished; under todo_lock

        def worker() -> None:
            nonlocal running
            rate = 0.0
            try:
                # Parts are taken in order, so the hashed prefix grows while the download goes on.
                while not (stop.is_set() or part_stop.is_set()):
                    with todo_lock:
                        if not todo:
                            return
                        # A connection that has the blob to itself and is fast (or can never get
                        # company) takes every following part in one request: each request
                        # costs a round trip plus the registry's work with no byte arriving,
                        # a third of a loopback pull's time with 16 ranges. Slow connections
                        # keep taking one part at a time, leaving the rest to those that join.
                        alone = limit == 1 or (running == 1 and rate >= opts.fast_connection_rate)
                        run = _claim_run(todo, alone)
                    rate = self._fetch_run(run, stop, part_stop, hasher)
            finally:
                with todo_lock:
                    running -= 1

        def add_worker() -> Future[None]:
            nonlocal running
            with todo_lock:
                running += 1
            return pool.submit(worker)

        tick = max(min(opts.ramp_interval, opts.state_interval), 0.01)
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="pyollama-pull") as pool:
            pending: set[Future[None]] = {add_worker()}
            try:
                now = time.monotonic()
                got = self.partial.completed()
                saved_at, saved_bytes = now, got
                window_at, window_bytes = now, got
                while pending:
                    done, pending = wait(pending, timeout=tick, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
                    if stop.is_set():
                        raise RegistryCanceledError()
                    now, got = time.monotonic(), self.partial.completed()
                    if pending and (now - saved_at >= opts.state_interval or got - saved_bytes >= opts.sync_bytes):
                        # Also starts the writeback early, so the final fsync finds little left.
                        self.partial.save_state()
                        now = time.monotonic()
                        saved_at, saved_bytes = now, got
                    if len(pending) < limit and now - window_at >= opts.ramp_interval:
                        rate = (got - window_bytes) / (now - window_at)
                        with todo_lock:
                            queued = len(todo)
                        slow = rate < opts.fast_connection_rate * len(pending)
                        # A connection that could not start before the download ends is waste.
                        if queued and slow and self.partial.total - got > rate * opts.ramp_interval:
                            for _ in range(min(len(pending), limit - len(pending), queued)):
                                pending.add(add_worker())
                        window_at, window_bytes = now, got
                if stop.is_set():
                    # The ranges returned early: the blob is not complete.
                    raise RegistryCanceledError()
            finally:
                # Unwinding for any reason: the other ranges stop at their next chunk.
                part_stop.set()

    def _fetch_run(self, run: list[_Part], stop: threading.Event, part_stop: threading.Event,
                   hasher: _PrefixHasher) -> float:
        """Fetch the missing bytes of `run` (consecutive parts, missing bytes without a gap),
        one request unless the connection breaks; returns the bytes per second achieved."""
        failures = 0
        began, first = time.monotonic(), _completed(run)
        while (i := _first_missing(run)) is not None:
            if stop.is_set() or part_stop.is_set():
                break
            start = run[i].offset + run[i].completed
            end = run[-1].offset + run[-1].size - 1
            before = _completed(run)
            try:
                self._fetch_range(run[i:], start, end, stop, part_stop, hasher)
                if _first_missing(run) is not None and not (stop.is_set() or part_stop.is_set()):
                    raise _ShortReadError()
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError, RegistryConnectionError, _ShortReadError) as exc:
                # A range that made progress starts its retry budget afresh (Ollama's stalls).
                failures = 0 if _completed(run) > before else failures + 1
                if failures > self.opts.max_retries:
                    raise RegistryError(f"{_layer_status('pulling', self.partial.digest)}: {exc}") from None
                log.info("range %d of %s broke (%s); retrying", run[i].n, self.partial.digest, exc)
                delay = self.opts.retry_backoff * (2 ** (failures - 1)) if failures else 0.0
                if delay and stop.wait(delay):
                    break
        elapsed = time.monotonic() - began
        return (_completed(run) - first) / elapsed if elapsed > 0 else 0.0

    def _fetch_range(self, parts: list[_Part], start: int, end: int, stop: threading.Event,
                     part_stop: threading.Event, hasher: _PrefixHasher) -> None:
        """One GET of bytes `start`-`end`, which begin in parts[0] and end with parts[-1]; each
        buffer is written at its offset, counted to its part and handed to the hasher."""
        if self.partial.total == 0:
            return
        # identity: a body to write as it comes (_iter_body).
        headers = {"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
        resp = self.client.request("GET", self.url, headers=headers, stream=True)
        with resp:
            if resp.status_code == 200:
                # Range ignored: usable only when this one request is the whole blob from 0.
                if not (start == 0 and end == self.partial.total - 1):
                    raise _RangeIgnoredError()
            elif resp.status_code == 206:
                content_range = resp.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {start}-"):
                    raise RegistryError(f"registry answered range {content_range!r} for bytes={start}-{end}")
            elif resp.status_code == 404:
                raise RegistryNotFoundError()
            else:
                raise RegistryError(error_text(resp))
            fd = self.partial.fd
            pos, i = start, 0
            unsent = start  # written bytes from here on are not handed to writeback yet
            for chunk in _iter_body(resp):
                if stop.is_set() or part_stop.is_set():
                    return
                took = memoryview(chunk)[: end + 1 - pos]
                offset, data = pos, took
                while data:
                    part = parts[i]
                    written = os.pwrite(fd, data[: part.offset + part.size - pos], pos)
                    with self.partial.lock:
                        part.completed += written
                    data, pos = data[written:], pos + written
                    if part.completed == part.size:
                        i += 1
                hasher.feed(offset, took)
                if pos - unsent >= _WRITEBACK_STEP:
                    # Whole pages only: the last one is not finished until the next buffer.
                    flushed = pos - pos % _PAGE
                    _start_writeback(fd, unsent, flushed - unsent)
                    unsent = flushed
                if pos > end:
                    return


def _claim_run(todo: deque[_Part], whole_run: bool) -> list[_Part]:
    """The next part of `todo`; with `whole_run`, also every following part that continues its
    missing bytes without a gap (untouched and adjacent), for one request. Under the todo lock."""
    run = [todo.popleft()]
    while whole_run and todo and todo[0].completed == 0 and todo[0].offset == run[-1].offset + run[-1].size:
        run.append(todo.popleft())
    return run


def _completed(run: list[_Part]) -> int:
    """Called only from the thread fetching `run`, the only writer of its counters."""
    return sum(p.completed for p in run)


def _first_missing(run: list[_Part]) -> int | None:
    """Index of the first part of `run` that is not complete (they fill in order)."""
    return next((i for i, p in enumerate(run) if p.completed < p.size), None)


def _iter_body(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. `read1` hands over every byte received before a connection
    breaks (a plain read of a large amount drops them with the IncompleteRead), so a resumed
    range starts exactly where the data ended."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 < 2.3: a broken connection loses at most one small chunk
        yield from resp.iter_content(64 * 1024)
        return
    # A body without a content coding is read as the socket delivers it: urllib3's decoding
    # path would copy every buffer once more (through a BytesIO), for nothing.
    decode = resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    while data := read1(_READ_CHUNK, decode_content=decode):
        yield data


@dataclass(frozen=True)
class _Hashed:
    """The digest computed while downloading a partial, and the file it is valid for."""

    digest: str
    identity: tuple[int, ...]


class _BlobPull:
    """Downloads one blob into its partial file, hashing it on the way (into `hashed`); not
    yet verified nor committed. `work` runs on a thread; `report` is its progress line."""

    def __init__(self, client: RegistryClient, store: Store, layer: Layer, opts: TransferOptions,
                 hashed: dict[str, _Hashed]) -> None:
        self.client = client
        self.store = store
        self.layer = layer
        self.opts = opts
        self.hashed = hashed
        self.status = _layer_status("pulling", layer.digest)
        self.partial = _PartialFile(store, layer.digest, layer.size)
        self.planned = threading.Event()

    def work(self, stop: threading.Event) -> None:
        layer, partial = self.layer, self.partial
        if not partial.open_locked(stop):
            return
        try:
            if self.store.blobs.exists(layer.digest):
                # Another pull finished it while we waited for the lock.
                return
            partial.plan(self.opts)
            self.planned.set()
            downloader = _Downloader(self.client, partial, self.opts)
            downloader.run(stop)
            # After run's final fsync: the identity of exactly the bytes that were hashed.
            self.hashed[layer.digest] = _Hashed(downloader.digest, partial.identity())
        finally:
            partial.close()

    def report(self) -> Progress | None:
        # Nothing to say until the resume state is loaded: a resumed pull starts from it.
        if not self.planned.is_set():
            return None
        return Progress(self.status, self.layer.digest, self.layer.size, self.partial.completed())

    def done(self) -> Progress:
        return Progress(self.status, self.layer.digest, self.layer.size, self.layer.size)


def _pull_blobs(client: RegistryClient, store: Store, layers: list[Layer], opts: TransferOptions,
                cancel: threading.Event | None, hashed: dict[str, _Hashed]) -> Generator[Progress, None, list[Layer]]:
    """Download the blobs of `layers` the store lacks (into `hashed`), yielding their progress
    lines in layer order; returns the layers it downloaded (to verify and commit).

    Blobs up to `opts.prefetch_size` (template, parameters, config, ...) are fetched in the
    background from the start, several at once: each costs a round trip and an fsync more
    than its bytes, which done one after another after the model's download added ~5 ms per
    blob. The others are downloaded one at a time, each with all the connections it wants.
    """
    pulls = {layer.digest: _BlobPull(client, store, layer, opts, hashed)
             for layer in layers if not store.blobs.exists(layer.digest)}
    small = [blob for blob in pulls.values() if blob.layer.size <= opts.prefetch_size]
    stop = threading.Event()
    workers = max(1, min(opts.prefetch_connections, len(small)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyollama-prefetch") as pool:
        try:
            ahead = {blob.layer.digest: pool.submit(blob.work, stop) for blob in small}
            for layer in layers:
                blob = pulls.get(layer.digest)
                if blob is None:
                    yield Progress(_layer_status("pulling", layer.digest), layer.digest, layer.size, layer.size)
                    continue
                future = ahead.get(layer.digest)
                if future is not None:
                    yield from _follow(future, stop, blob.report, opts.progress_interval, cancel)
                else:
                    yield from _run_with_progress(blob.work, blob.report, opts.progress_interval, cancel)
                yield blob.done()
        finally:
            # Failed, canceled or abandoned: the background downloads stop at their next chunk
            # and leave resumable partials; the pool waits for them.
            stop.set()
    return [blob.layer for blob in pulls.values()]


def _commit_blob(store: Store, layer: Layer, hashed: _Hashed | None) -> None:
    """Verify a downloaded partial and move it into the store (under its lock).

    The digest computed while downloading is used when the file is still the one that was
    hashed; if anything touched it since (another process, between our unlock and relock),
    it is read and hashed again.
    """
    partial = _PartialFile(store, layer.digest, layer.size)
    never = threading.Event()
    if not partial.open_locked(never, create=False):
        if store.blobs.exists(layer.digest):
            return
        # Deleted under us (a concurrent pull found it corrupt): nothing verified to commit.
        raise DigestMismatchError("digest mismatch, file must be downloaded again")
    try:
        if store.blobs.exists(layer.digest):
            partial.discard()
            return
        try:
            if hashed is not None and hashed.identity == partial.identity():
                # The download's last save_state synced these very bytes (same identity); _pull
                # syncs the blobs directory once, after all renames and before the manifest.
                store.blobs.commit_hashed_partial(layer.digest, hashed.digest, sync_data=False, sync_dir=False)
            else:
                store.blobs.commit_partial(layer.digest)
        except DigestMismatchError:
            # commit_partial deleted the data; the range states must not survive it.
            partial.discard()
            raise
        partial.remove_state()
    finally:
        partial.close()


def _fetch_manifest(client: RegistryClient, tag: str) -> tuple[bytes, Manifest]:
    try:
        resp = client.request("GET", client.url(f"manifests/{tag}"), headers={"Accept": _MANIFEST_ACCEPT},
                              stream=True)
    except RegistryCanceledError:
        raise
    except RegistryError as exc:
        raise type(exc)(f"pull model manifest: {exc}") from None
    with resp:
        if resp.status_code == 404:
            raise RegistryNotFoundError("pull model manifest: file does not exist")
        if resp.status_code >= 400:
            raise RegistryError(f"pull model manifest: {error_text(resp)}")
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > _MAX_MANIFEST_BYTES:
                raise RegistryError("pull model manifest: manifest too large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        announced = resp.headers.get("Docker-Content-Digest")
    if content_type in _INDEX_MEDIA_TYPES:
        raise RegistryError(f"pull model manifest: unsupported manifest media type {content_type}")
    if announced and announced.startswith("sha256:"):
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if actual != announced.lower():
            raise RegistryError(f"pull model manifest: digest mismatch, want {announced}, got {actual}")
    try:
        manifest = Manifest.from_bytes(raw)
    except ValueError as exc:
        raise RegistryError(f"pull model manifest: {exc}") from None
    if manifest.media_type in _INDEX_MEDIA_TYPES:
        raise RegistryError(f"pull model manifest: unsupported manifest media type {manifest.media_type}")
    return raw, manifest


def pull_model(
    store: Store,
    name: ModelName,
    *,
    insecure: bool = False,
    cancel: threading.Event | None = None,
    auth: RegistryAuth | None = None,
    options: TransferOptions | None = None,
) -> Iterator[Progress]:
    """Pull `name` into `store`, yielding Ollama's progress lines; raises RegistryError.

    `auth=None` reads credentials from the environment (module docstring of
    registry_client); `RegistryAuth()` is anonymous only.
    """
    with _os_errors_as_registry_errors():
        yield from _pull(store, name, insecure, cancel, auth, options or TransferOptions())


def _pull(store: Store, name: ModelName, insecure: bool, cancel: threading.Event | None,
          auth: RegistryAuth | None, opts: TransferOptions) -> Iterator[Progress]:
    with closing(_client(name, insecure, auth, opts, cancel)) as client:
        yield Progress("pulling manifest")
        raw, manifest = _fetch_manifest(client, name.tag)
        layers = _unique_layers(manifest)
        hashed: dict[str, _Hashed] = {}
        downloaded = yield from _pull_blobs(client, store, layers, opts, cancel, hashed)

        yield Progress("verifying sha256 digest")
        failed: DigestMismatchError | None = None
        try:
            for layer in downloaded:
                try:
                    _commit_blob(store, layer, hashed.get(layer.digest))
                except DigestMismatchError as exc:
                    # Keep checking the others so that no bad partial outlives this pull.
                    failed = exc
        finally:
            if downloaded:
                fsync_dir(store.blobs.dir)
        if failed is not None:
            raise RegistryError(str(failed)) from None

        yield Progress("writing manifest")
        target = store.canonical(name)
        old_digests: set[str] = set()
        if store.resolve(target) is not None:
            try:
                old_digests = store.read_manifest(target).digests()
            except PyollamaError:
                old_digests = set()
        try:
            store.write_manifest_bytes(target, raw, manifest)
        except (ValueError, BadRequestError) as exc:
            raise RegistryError(f"writing manifest: {exc}") from None
        unused = old_digests - manifest.digests()
        if unused and opts.prune:
            yield Progress("removing unused layers")
            store.remove_unused_blobs(unused)
        yield Progress("success")


# ------------------------------------------------------------------------------------------------
# push


class _FileSlice:
    """`length` bytes of a file from `offset`, as a request body; counts what was read."""

    def __init__(self, path: Path, offset: int, length: int, on_read: Callable[[int], None],
                 stop: threading.Event) -> None:
        # Closed by close(): requests reads the body after this constructor returns.
        self._file = open(path, "rb")  # noqa: SIM115
        self._file.seek(offset)
        self._left = length
        self._length = length
        self._on_read = on_read
        self._stop = stop

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise RegistryCanceledError()
        if size < 0 or size > self._left:
            size = self._left
        data = self._file.read(size)
        self._left -= len(data)
        self._on_read(len(data))
        return data

    def close(self) -> None:
        self._file.close()


class _Uploader:
    """Uploads one blob through the standard session flow; `completed` is for progress."""

    def __init__(self, client: RegistryClient, path: Path, layer: Layer, location: str,
                 opts: TransferOptions) -> None:
        self.client = client
        self.path = path
        self.layer = layer
        self.location = location
        self.opts = opts
        self.confirmed = 0  # bytes the registry acknowledged
        self.in_flight = 0  # bytes of the current chunk read so far
        self.lock = threading.Lock()

    def completed(self) -> int:
        with self.lock:
            return min(self.confirmed + self.in_flight, self.layer.size)

    def _count(self, n: int) -> None:
        with self.lock:
            self.in_flight += n

    def _next_location(self, resp: requests.Response) -> None:
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
        if loc:
            self.location = self.client.resolve(loc)

    def run(self, stop: threading.Event) -> None:
        total = self.layer.size
        chunk = max(self.opts.upload_chunk_size, 1)
        failures = 0
        while self.confirmed < total:
            start = self.confirmed
            end = min(start + chunk, total)
            bodies: list[_FileSlice] = []

            def body(start: int = start, end: int = end, bodies: list[_FileSlice] = bodies) -> _FileSlice:
                with self.lock:
                    self.in_flight = 0
                piece = _FileSlice(self.path, start, end - start, self._count, stop)
                bodies.append(piece)
                return piece

            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}
            try:
                resp = self.client.request("PATCH", self.location, headers=headers, body=body, retry=False)
            except RegistryConnectionError:
                failures += 1
                if failures > self.opts.max_retries:
                    raise
                if stop.wait(self.opts.retry_backoff * (2 ** (failures - 1))):
                    raise RegistryCanceledError() from None
                self._resync()
                continue
            finally:
                for piece in bodies:
                    piece.close()
            with resp:
                if resp.status_code == 416:
                    # The registry has a different amount than we think: ask it where we are.
                    self._resync()
                    continue
                if resp.status_code >= 400:
                    raise RegistryError(f"http status {resp.status_code}: {error_text(resp).split(': ', 1)[-1]}")
                self._next_location(resp)
            with self.lock:
                self.confirmed, self.in_flight = end, 0
            failures = 0
        self._commit()

    def _resync(self) -> None:
        """Ask the upload session how many bytes it holds (GET -> 204, `Range: 0-<last>`)."""
        resp = self.client.request("GET", self.location)
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(error_text(resp))
            self._next_location(resp)
            held = resp.headers.get("Range", "")
            last = held.rsplit("-", 1)[-1] if "-" in held else ""
        with self.lock:
            self.confirmed = int(last) + 1 if last.isdigit() else 0
            self.in_flight = 0

    def _commit(self) -> None:
        sep = "&" if "?" in self.location else "?"
        url = f"{self.location}{sep}{urlencode({'digest': self.layer.digest})}"
        resp = self.client.request("PUT", url, headers={"Content-Type": "application/octet-stream",
                                                        "Content-Length": "0"})
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(f"http status {resp.status_code}: {error_text(resp).split(': ', 1)[-1]}")
            announced = resp.headers.get("Docker-Content-Digest")
            if announced and announced != self.layer.digest:
                raise RegistryError(f"digest mismatch, want {self.layer.digest}, registry has {announced}")


def _start_upload(client: RegistryClient, digest: str, mount_from: list[str]) -> str | None:
    """Try a cross-repository mount; None when mounted, else the upload session URL."""
    base = client.url("blobs/uploads/")
    for source in mount_from:
        resp = client.request("POST", base + "?" + urlencode({"mount": digest, "from": source}), retry=True)
        with resp:
            if resp.status_code == 201:
                return None
            if resp.status_code == 202:
                loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
                if loc:
                    # Not mountable from there; the registry opened a normal session instead.
                    return client.resolve(loc)
            elif resp.status_code >= 400:
                raise RegistryError(error_text(resp))
    resp = client.request("POST", base, retry=True)
    with resp:
        if resp.status_code >= 400:
            raise RegistryError(error_text(resp))
        loc = resp.headers.get("Docker-Upload-Location") or resp.headers.get("Location")
    if resp.status_code != 202 or not loc:
        raise RegistryError(f"http status {resp.status_code}: registry did not open an upload session")
    return client.resolve(loc)


def _push_blob(client: RegistryClient, store: Store, layer: Layer, mount_from: list[str],
               opts: TransferOptions, cancel: threading.Event | None) -> Iterator[Progress]:
    status = _layer_status("pushing", layer.digest)
    done = Progress(status, layer.digest, layer.size, layer.size)
    resp = client.request("HEAD", client.url(f"blobs/{layer.digest}"))
    resp.close()
    if resp.status_code == 200:
        yield done
        return
    if resp.status_code != 404:
        raise RegistryError(f"{resp.status_code}: HEAD blob {layer.digest}")
    path = store.blobs.path(layer.digest)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RegistryError(f'blob "{layer.digest}" not found') from None
    if size != layer.size:
        raise RegistryError(f"blob {layer.digest} is {size} bytes, the manifest says {layer.size}")
    location = _start_upload(client, layer.digest, mount_from)
    if location is None:
        yield done
        return
    uploader = _Uploader(client, path, layer, location, opts)

    def report() -> Progress:
        return Progress(status, layer.digest, layer.size, uploader.completed())

    try:
        yield from _run_with_progress(uploader.run, report, opts.progress_interval, cancel)
    except BaseException:
        # Best effort: free the registry's session; the error being raised is what matters.
        try:
            client.request("DELETE", uploader.location, retry=False).close()
        except PyollamaError:
            pass
        raise
    yield done


def _mount_sources(store: Store, name: ModelName) -> dict[str, list[str]]:
    """digest -> other repositories on the same registry whose local manifests hold it."""
    out: dict[str, list[str]] = {}
    for entry in store.list_models():
        if entry.name.host.lower() != name.host.lower() or entry.name.repository == name.repository:
            continue
        for digest in entry.manifest.digests():
            repos = out.setdefault(digest, [])
            if entry.name.repository not in repos:
                repos.append(entry.name.repository)
    return out


def push_model(
    store: Store,
    name: ModelName,
    *,
    insecure: bool = False,
    cancel: threading.Event | None = None,
    auth: RegistryAuth | None = None,
    options: TransferOptions | None = None,
) -> Iterator[Progress]:
    """Push the local model `name` to its registry, yielding Ollama's progress lines."""
    with _os_errors_as_registry_errors():
        yield from _push(store, name, insecure, cancel, auth, options or TransferOptions())


def _push(store: Store, name: ModelName, insecure: bool, cancel: threading.Event | None,
          auth: RegistryAuth | None, opts: TransferOptions) -> Iterator[Progress]:
    with closing(_client(name, insecure, auth, opts, cancel)) as client:
        yield Progress("retrieving manifest")
        try:
            found = store.resolve(name)
            if found is None:
                raise NotFoundError(f"model '{name.display}' not found")
            raw = store.read_manifest_bytes(found)
            manifest = Manifest.from_bytes(raw)
        except (PyollamaError, ValueError, OSError) as exc:
            yield Progress("couldn't retrieve manifest")
            raise RegistryError(str(exc)) from None
        local_sources = _mount_sources(store, name)
        for layer in _unique_layers(manifest):
            sources = []
            if layer.from_:
                try:
                    sources.append(ModelName.parse(layer.from_).repository)
                except BadRequestError:
                    pass
            sources += [repo for repo in local_sources.get(layer.digest, []) if repo not in sources]
            # One mount attempt: each failed one leaves an upload session open at the registry.
            yield from _push_blob(client, store, layer, sources[:1], opts, cancel)

        yield Progress("pushing manifest")
        resp = client.request("PUT", client.url(f"manifests/{name.tag}"),
                              headers={"Content-Type": manifest.media_type or MANIFEST_MEDIA_TYPE},
                              body=lambda: raw)
        with resp:
            if resp.status_code >= 400:
                raise RegistryError(error_text(resp))
        yield Progress("success")

