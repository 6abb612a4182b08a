"""A blob being downloaded: its locked `-partial` file, the `-partial-<N>` range states, and its hash.

Concurrent pulls of the same blob (threads or processes) are serialised by an advisory lock
on its partial file, so they never write the same file at once. The data is fsynced before
the resume states claim it; writeback is started while the download goes on
(sync_file_range on Linux), so that the final fsync finds little left to write.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pyollama.errors import RegistryError
from pyollama.store.registry.client import RegistryCanceledError
from pyollama.store.registry.transfer import TransferOptions
from pyollama.store.store import Store

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

_MiB = 1 << 20
# Socket reads and hash reads of at most this many bytes. One read1 hands over what the socket
# has (up to this; ~80 KB on loopback), one pwrite per chunk. Measured on loopback: 4 MiB reads
# cost more CPU than 1 MiB (each is a fresh allocation).
READ_CHUNK = 1 * _MiB
# Received buffers waiting for the hash thread; beyond this they are read back from disk later.
_MAX_QUEUED = 32 * _MiB
# Written bytes handed to the kernel's writeback (start_writeback) in steps of this size.
WRITEBACK_STEP = 8 * _MiB
PAGE = 4096


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing these bytes to disk now, without waiting (SYNC_FILE_RANGE_WRITE; a
    no-op off Linux). Durability still comes from the fsync before the commit; this only
    lets the disk work while the download goes on instead of all at that fsync, which took
    ~50 ms per 100 MB at the end of every blob."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors are ignored


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}


class PartialFile:
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
        self.parts: list[Part] = []
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

    def _split(self, opts: TransferOptions) -> list[Part]:
        if self.total <= opts.part_threshold:
            return [Part(0, 0, self.total)]
        size = max(opts.part_threshold, math.ceil(self.total / max(opts.max_parts, 1)))
        return [Part(n, off, min(size, self.total - off)) for n, off in enumerate(range(0, self.total, size))]

    def _load_parts(self) -> list[Part] | None:
        """Parts from `-partial-<N>` files if they describe this blob exactly, else None."""
        files = self._state_files()
        if not files:
            return None
        parts = []
        for path in files:
            try:
                obj = json.loads(path.read_text())
                part = Part(int(obj["N"]), int(obj["Offset"]), int(obj["Size"]), int(obj["Completed"]))
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
            self.parts = [Part(0, 0, self.total)]
        self.save_state()


class PrefixHasher:
    """sha256 of a partial file in file order, computed on its own thread while the download
    goes on, so the digest is ready (nearly) when the last byte is written.

    The connection writing at the hashed frontier hands over the buffers it has just written
    (`feed`), so a sequential download is hashed from memory as it arrives and never read
    back. Bytes nobody handed over (a resumed partial's, ranges that other connections wrote
    ahead of the frontier, buffers beyond the `_MAX_QUEUED` memory bound) are read back from
    the file once the contiguous prefix on disk reaches them. Either way each byte is hashed
    once, after it was written, so the digest is that of the file's bytes.
    """

    def __init__(self, partial: PartialFile) -> None:
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
                if self.queued < READ_CHUNK:
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
        buf = memoryview(bytearray(READ_CHUNK))
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
                    n = os.preadv(self.partial.fd, [buf[: min(READ_CHUNK, job - self.hashed)]], self.hashed)
                    if n <= 0:
                        raise RegistryError(f"{self.partial.path} ended at {self.hashed} bytes while hashing")
                    self.hasher.update(buf[:n])
                    self.hashed += n
                with self.cond:
                    # Buffers of what was just read back are stale; the next one to feed starts here.
                    self.fed_end = max(self.fed_end, self.hashed)
        except (OSError, RegistryError) as exc:  # reported by finish(); the downloads carry on
            self.error = exc
