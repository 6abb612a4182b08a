"""Content-addressed blobs under `<models>/blobs/sha256-<hex>`, Ollama's layout.

Every blob is hashed while it is written and lands under its name only
through `os.replace` after an fsync, so a crash or a digest mismatch never
leaves a half-written blob where a reader could find it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from pyollama.errors import BadRequestError, DigestMismatchError, NotFoundError
from pyollama.store.leftovers import hold

_DIGEST_RE = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_COPY_CHUNK = 1 << 20


def parse_digest(raw: str) -> str:
    """Canonical `sha256:<lowercase hex>` for Ollama's `^sha256[:-][0-9a-fA-F]{64}$`."""
    match = _DIGEST_RE.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise BadRequestError("invalid digest format")
    return "sha256:" + match.group(1).lower()


def digest_hex(digest: str) -> str:
    """The 64 hex digits of a digest in either accepted form."""
    return parse_digest(digest)[len("sha256:") :]


def read_chunks(stream: BinaryIO, chunk_size: int = _COPY_CHUNK) -> Iterator[bytes]:
    """Yield a binary stream in chunks until EOF."""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        yield chunk


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    """(`sha256:<hex>`, size) of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in read_chunks(f):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


class BlobStore:
    """The `blobs/` directory of a models root. Safe for concurrent writers of the same blob:
    each writes its own temp file and the last `os.replace` wins with identical bytes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = self.root / "blobs"

    def path(self, digest: str) -> Path:
        return self.dir / ("sha256-" + digest_hex(digest))

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f'blob "{parse_digest(digest)}" not found') from None

    def partial_path(self, digest: str) -> Path:
        return self.dir / ("sha256-" + digest_hex(digest) + "-partial")

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, chunks: Iterable[bytes], expected: str | None = None) -> tuple[str, int]:
        """Stream `chunks` into a new blob; returns (digest, size).

        With `expected`, a different actual digest deletes the temp file and
        raises DigestMismatchError. The comparison is string-exact, as in
        Ollama's POST /api/blobs: `sha256-<hex>` or upper-case hex mismatch.
        """
        if expected is not None:
            parse_digest(expected)
        self._ensure_dir()
        # Ollama names its temp files "sha256-<random>" too; its startup sweep removes stale ones.
        fd, tmp_name = tempfile.mkstemp(prefix="sha256-", suffix=".tmp", dir=self.dir)
        tmp = Path(tmp_name)
        try:
            hold(fd)  # until closed: a start-up sweep removes it only if this process died
            hasher = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    hasher.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = "sha256:" + hasher.hexdigest()
            if expected is not None and digest != expected:
                raise DigestMismatchError(f'digest mismatch, expected "{expected}", got "{digest}"')
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path(digest))
            fsync_dir(self.dir)
            return digest, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_bytes(self, data: bytes) -> tuple[str, int]:
        """A small blob (config, params, template) from bytes; reuses an existing blob."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest, len(data)
        return self.write([data], expected=digest)

    def add_file(self, path: Path) -> tuple[str, int]:
        """Copy a local file in as a blob (hashing as it copies); reuses an existing blob."""
        digest, size = hash_file(Path(path))
        if self.exists(digest):
            return digest, size
        with open(path, "rb") as f:
            # Re-hash while copying: the file may have changed between the two reads.
            return self.write(read_chunks(f), expected=digest)

    def commit_partial(self, digest: str) -> None:
        """Verify a finished `-partial` download (reading it again) and rename it into place."""
        canonical = parse_digest(digest)
        actual, _ = hash_file(self.partial_path(canonical))
        self.commit_hashed_partial(canonical, actual)

    def commit_hashed_partial(self, digest: str, actual: str, *, sync_data: bool = True,
                              sync_dir: bool = True) -> None:
        """Rename a finished `-partial` download into place, given `actual`: the
        `sha256:<hex>` the caller computed over exactly the partial's bytes while writing them,
        so the file is not read a second time. A mismatch deletes the partial.

        `sync_data=False` is for a caller that fsynced the partial after its last write.
        `sync_dir=False` leaves the rename's durability to the caller, which commits several
        blobs and then calls `fsync_dir(self.dir)` once (before anything refers to them)."""
        canonical = parse_digest(digest)
        partial = self.partial_path(canonical)
        if actual != canonical:
            partial.unlink(missing_ok=True)
            raise DigestMismatchError("digest mismatch, file must be downloaded again")
        if sync_data:
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, self.path(canonical))
        if sync_dir:
            fsync_dir(self.dir)

    def remove(self, digest: str) -> None:
        """Delete a blob; a missing blob is not an error (Ollama only logs it)."""
        self.path(digest).unlink(missing_ok=True)

    def list_digests(self) -> list[str]:
        """Digests of all complete blobs (temp and partial files excluded)."""
        if not self.dir.is_dir():
            return []
        out = []
        for entry in self.dir.iterdir():
            match = _DIGEST_RE.fullmatch(entry.name)
            if match is not None and entry.is_file():
                out.append("sha256:" + match.group(1).lower())
        return sorted(out)

    def copy_to(self, digest: str, dest: BinaryIO) -> None:
        """Stream a blob into a binary file object."""
        with open(self.path(digest), "rb") as f:
            shutil.copyfileobj(f, dest, _COPY_CHUNK)
