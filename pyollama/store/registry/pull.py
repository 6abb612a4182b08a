"""Pulling a model: Ollama's `PullModel`, also from plain Docker/OCI registries.

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
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass

import requests
import urllib3

from pyollama.errors import BadRequestError, DigestMismatchError, RegistryError
from pyollama.store.blobs import fsync_dir
from pyollama.store.manifest import MANIFEST_MEDIA_TYPE, Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.progress import follow, run_with_progress
from pyollama.store.registry.auth import RegistryAuth
from pyollama.store.registry.client import (
    RegistryCanceledError,
    RegistryClient,
    RegistryConnectionError,
    RegistryNotFoundError,
    error_text,
)
from pyollama.store.registry.partial import (
    PAGE,
    READ_CHUNK,
    WRITEBACK_STEP,
    Part,
    PartialFile,
    PrefixHasher,
    start_writeback,
)
from pyollama.store.registry.transfer import (
    Progress,
    TransferOptions,
    layer_status,
    open_client,
    os_errors_as_registry_errors,
    unique_layers,
)
from pyollama.store.store import Store

log = logging.getLogger("pyollama.registry")

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_INDEX_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
_MANIFEST_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}"
# Distribution refuses manifests over 4 MiB; a larger answer is not a manifest.# Distribution refuses manifests over 4 MiB; a larger answer is not a manifest.
_MAX_MANIFEST_BYTES = 4 << 20


class _RangeIgnoredError(Exception):
    """The registry answered a ranged GET with the whole blob (200)."""


class _ShortReadError(Exception):
    """The body ended before the requested range did."""


class _Downloader:
    """Fetches the missing ranges of one blob into its locked partial file and hashes it;
    `digest` is the sha256 of the finished file."""

    def __init__(self, client: RegistryClient, partial: PartialFile, opts: TransferOptions) -> None:
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
        hasher = PrefixHasher(self.partial)
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

    def _fetch_parts(self, todo: deque[Part], stop: threading.Event, hasher: PrefixHasher) -> None:
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

    def _fetch_run(self, run: list[Part], stop: threading.Event, part_stop: threading.Event,
                   hasher: PrefixHasher) -> float:
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
                    raise RegistryError(f"{layer_status('pulling', self.partial.digest)}: {exc}") from None
                log.info("range %d of %s broke (%s); retrying", run[i].n, self.partial.digest, exc)
                delay = self.opts.retry_backoff * (2 ** (failures - 1)) if failures else 0.0
                if delay and stop.wait(delay):
                    break
        elapsed = time.monotonic() - began
        return (_completed(run) - first) / elapsed if elapsed > 0 else 0.0

    def _fetch_range(self, parts: list[Part], start: int, end: int, stop: threading.Event,
                     part_stop: threading.Event, hasher: PrefixHasher) -> None:
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
                if pos - unsent >= WRITEBACK_STEP:
                    # Whole pages only: the last one is not finished until the next buffer.
                    flushed = pos - pos % PAGE
                    start_writeback(fd, unsent, flushed - unsent)
                    unsent = flushed
                if pos > end:
                    return


def _claim_run(todo: deque[Part], whole_run: bool) -> list[Part]:
    """The next part of `todo`; with `whole_run`, also every following part that continues its
    missing bytes without a gap (untouched and adjacent), for one request. Under the todo lock."""
    run = [todo.popleft()]
    while whole_run and todo and todo[0].completed == 0 and todo[0].offset == run[-1].offset + run[-1].size:
        run.append(todo.popleft())
    return run


def _completed(run: list[Part]) -> int:
    """Called only from the thread fetching `run`, the only writer of its counters."""
    return sum(p.completed for p in run)


def _first_missing(run: list[Part]) -> int | None:
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
    while data := read1(READ_CHUNK, decode_content=decode):
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
        self.status = layer_status("pulling", layer.digest)
        self.partial = PartialFile(store, layer.digest, layer.size)
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
                    yield Progress(layer_status("pulling", layer.digest), layer.digest, layer.size, layer.size)
                    continue
                future = ahead.get(layer.digest)
                if future is not None:
                    yield from follow(future, stop, blob.report, opts.progress_interval, cancel=cancel,
                                      canceled=RegistryCanceledError, changed=Progress.to_json)
                else:
                    yield from run_with_progress(blob.work, blob.report, opts.progress_interval, cancel=cancel,
                                                 canceled=RegistryCanceledError, changed=Progress.to_json,
                                                 thread_name="pyollama-transfer")
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
    partial = PartialFile(store, layer.digest, layer.size)
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
    pyollama.store.registry.auth); `RegistryAuth()` is anonymous only.
    """
    with os_errors_as_registry_errors():
        yield from _pull(store, name, insecure, cancel, auth, options or TransferOptions())


def _pull(store: Store, name: ModelName, insecure: bool, cancel: threading.Event | None,
          auth: RegistryAuth | None, opts: TransferOptions) -> Iterator[Progress]:
    with closing(open_client(name, insecure, auth, opts, cancel)) as client:
        yield Progress("pulling manifest")
        raw, manifest = _fetch_manifest(client, name.tag)
        layers = unique_layers(manifest)
        with store.holding() as hold:
            for layer in layers:
                hold.add(layer.digest)  # a blob this pull finds present stays until it ends
            yield from _pull_layers(client, store, name, raw, manifest, layers, opts, cancel)


def _pull_layers(client: RegistryClient, store: Store, name: ModelName, raw: bytes, manifest: Manifest,
                 layers: list[Layer], opts: TransferOptions, cancel: threading.Event | None) -> Iterator[Progress]:
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
    try:
        removed = store.replace_manifest(name, raw, manifest, prune=opts.prune)
    except (ValueError, BadRequestError) as exc:
        raise RegistryError(f"writing manifest: {exc}") from None
    if removed:
        yield Progress("removing unused layers")
    yield Progress("success")
