"""The `Store` over a models root: lookup, atomic manifest writes, copy/delete, garbage collection.

Layout is Ollama's: `manifests/<host>/<namespace>/<model>/<tag>` (JSON, no
extension) and `blobs/sha256-<hex>`. Pulled manifests are stored byte for byte
(`write_manifest_bytes`), because the model ID is the sha256 of the manifest file.
The store also caches parsed GGUF headers of its (immutable) blobs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyollama.errors import BadRequestError, NotFoundError
from pyollama.gguf import GGUFInfo, read_gguf_info
from pyollama.store.blobs import BlobStore, fsync_dir, parse_digest
from pyollama.store.leftovers import hold
from pyollama.store.manifest import CorruptManifestError, Manifest, manifest_digest
from pyollama.store.model import ModelBlobError, ModelEntry, ModelRecord, read_record
from pyollama.store.names import ModelName, is_valid_part

log = logging.getLogger("pyollama.store")

_PART_KINDS = ("host", "namespace", "model", "tag")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        hold(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _matching_entries(directory: Path, part: str, want_dirs: bool) -> list[str]:
    """Entry names in `directory` equal to `part` ignoring case, the exact spelling first."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    folded = part.casefold()
    out = [
        e.name
        for e in entries
        if e.name.casefold() == folded and (e.is_dir() if want_dirs else e.is_file()) and not e.is_symlink()
    ]
    out.sort(key=lambda n: n != part)
    return out


def _digests_of(data: bytes) -> set[str]:
    """The digests manifest bytes reference; none when they do not parse."""
    try:
        return Manifest.from_bytes(data).digests()
    except ValueError:
        return set()


def _read_with_mtime(path: Path) -> tuple[bytes, float]:
    """A file's bytes and the mtime of that same file (one open: a replace in between cannot
    pair one version's bytes with another's time)."""
    with path.open("rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime


def _entries(directory: Path, files: bool) -> list[str]:
    """The names of the subdirectories (or regular files, not dotfiles) of `directory`;
    none when it is gone."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        try:
            if e.is_symlink() or e.name.startswith("."):
                continue
            if e.is_file() if files else e.is_dir():
                out.append(e.name)
        except FileNotFoundError:
            continue
    return out


class BlobHold:
    """The blobs an operation in progress will reference (a create, a pull): until it ends, no
    garbage collection removes them, as a delete of another model that shares one would."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: Counter[str] = Counter()

    def add(self, digest: str) -> bool:
        """Hold `digest`; whether the blob exists now (if it does, it stays until release)."""
        with self._store.lock:
            self._store._held[digest] += 1
            self._held[digest] += 1
            return self._store.blobs.exists(digest)

    def release(self) -> None:
        """Let go; a blob whose removal waited for this hold is removed now if still unused."""
        store = self._store
        with store.lock:
            store._held.subtract(self._held)
            freed = {d for d, n in store._held.items() if n <= 0}
            for digest in freed:
                del store._held[digest]
            self._held.clear()
            waiting = freed & store._deferred
            store._deferred -= waiting
            if waiting:
                store.remove_unused_blobs(waiting)


@dataclass
class Store:
    """A models root (`OLLAMA_MODELS`). Thread-safe within one process: manifest writes,
    copies and deletes (with their blob garbage collection) run under one lock, so a
    delete never removes a blob a concurrent write just referenced; a create or pull holds
    the blobs it will reference (`holding`) from the moment it knows them, and a blob whose
    removal waited for a hold is removed when the hold ends, if still unused. Reads tolerate
    manifests and directories that vanish while they walk."""

    root: Path
    blobs: BlobStore = field(init=False)
    lock: threading.RLock = field(init=False, repr=False, compare=False)
    # Parsed GGUF headers by (path, size, mtime): blobs are immutable, and /api/tags asks for
    # the capabilities of every model on each call. Bounded because vocabularies are large.
    _gguf_cache: OrderedDict[tuple[str, int, int], GGUFInfo] = field(init=False, repr=False, compare=False)
    _gguf_cache_size: int = field(default=16, repr=False, compare=False)
    _held: Counter[str] = field(init=False, repr=False, compare=False)  # by BlobHolds
    _deferred: set[str] = field(init=False, repr=False, compare=False)  # unused but held

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        self.blobs = BlobStore(self.root)
        self.lock = threading.RLock()
        self._gguf_cache = OrderedDict()
        self._held = Counter()
        self._deferred = set()

    @contextmanager
    def holding(self) -> Iterator[BlobHold]:
        """A BlobHold released when the block ends."""
        hold = BlobHold(self)
        try:
            yield hold
        finally:
            hold.release()

    def gguf_info(self, path: Path) -> GGUFInfo:
        """The parsed header of a GGUF blob, cached (InvalidGGUFError if it is not one)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self.lock:
            cached = self._gguf_cache.get(key)
            if cached is not None:
                self._gguf_cache.move_to_end(key)
                return cached
        info = read_gguf_info(path)
        with self.lock:
            self._gguf_cache[key] = info
            while len(self._gguf_cache) > self._gguf_cache_size:
                self._gguf_cache.popitem(last=False)
        return info

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests_dir.joinpath(*name.manifest_parts)

    # -- lookup ---------------------------------------------------------------------------------

    def resolve(self, name: ModelName) -> ModelName | None:
        """The stored name equal to `name` ignoring case (exact spelling preferred), or None."""
        candidates = [self.manifests_dir]
        for depth, part in enumerate(name.manifest_parts):
            is_tag = depth == 3
            nxt: list[Path] = []
            for directory in candidates:
                nxt.extend(directory / entry for entry in _matching_entries(directory, part, not is_tag))
            candidates = nxt
            if not candidates:
                return None
        rel = candidates[0].relative_to(self.manifests_dir).parts
        return ModelName(host=rel[0], namespace=rel[1], model=rel[2], tag=rel[3], scheme=name.scheme)

    def canonical(self, name: ModelName) -> ModelName:
        """Ollama's getExistingName: each part takes the on-disk spelling of an existing
        manifest that matches it case-insensitively, so `Llama3.2:v2` is written into the
        existing `llama3.2/` directory."""
        found = self.resolve(name)
        if found is not None:
            return found
        parts = list(name.manifest_parts)
        for entry_name in self._iter_names():
            entry = entry_name.manifest_parts
            for i in range(4):
                # Only the leading parts that all match fold into the existing spelling:
                # a tag dir is shared only under the same model dir.
                if all(entry[j].casefold() == parts[j].casefold() for j in range(i + 1)):
                    parts[i] = entry[i]
        return ModelName(host=parts[0], namespace=parts[1], model=parts[2], tag=parts[3], scheme=name.scheme)

    def _require(self, name: ModelName) -> ModelName:
        found = self.resolve(name)
        if found is None:
            raise NotFoundError(f"model '{name.display}' not found")
        return found

    def exists(self, name: ModelName) -> bool:
        return self.resolve(name) is not None

    # -- manifests ------------------------------------------------------------------------------

    def read_manifest_bytes(self, name: ModelName) -> bytes:
        path = self.manifest_path(self._require(name))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"model '{name.display}' not found") from None

    def read_manifest(self, name: ModelName) -> Manifest:
        data = self.read_manifest_bytes(name)
        try:
            return Manifest.from_bytes(data)
        except ValueError as exc:
            # Named so the user knows to delete or re-pull it.
            raise CorruptManifestError(f"model '{name.display}' has a corrupt manifest: {exc}") from None

    def _check_blobs(self, manifest: Manifest) -> None:
        missing = [layer.digest for layer in manifest.all_layers() if not self.blobs.exists(layer.digest)]
        if missing:
            raise ValueError(f"manifest references missing blobs: {', '.join(missing)}")

    def write_manifest(self, name: ModelName, manifest: Manifest) -> None:
        """Atomically write a locally built manifest; every referenced blob must exist."""
        self.write_manifest_bytes(name, manifest.to_bytes(), manifest)

    def write_manifest_bytes(self, name: ModelName, data: bytes, manifest: Manifest | None = None) -> None:
        """Atomically write manifest bytes unchanged (pull keeps the registry's bytes so the
        model ID matches the registry digest); the bytes must parse and their blobs exist.
        The name is canonicalised first, so `Llama3.2:v2` lands beside an existing `llama3.2`."""
        if not name.is_valid():
            raise BadRequestError("invalid model name")
        parsed = manifest if manifest is not None else Manifest.from_bytes(data)
        with self.lock:
            self._check_blobs(parsed)
            _atomic_write(self.manifest_path(self.canonical(name)), data)

    def replace_manifest(
        self, name: ModelName, data: bytes, manifest: Manifest | None = None, *, prune: bool = True
    ) -> list[str]:
        """Write the manifest of `name` and, with `prune`, remove the blobs only the manifest it
        replaced used, as one step: concurrent writers of one name leave exactly the last
        one's blobs, and no others. Returns the removed digests."""
        parsed = manifest if manifest is not None else Manifest.from_bytes(data)
        with self.lock:
            old = self._digests_at(self.manifest_path(self.canonical(name)))
            self.write_manifest_bytes(name, data, parsed)
            unused = old - parsed.digests()
            return self.remove_unused_blobs(unused) if unused and prune else []

    def _digests_at(self, path: Path) -> set[str]:
        """The digests the manifest at `path` references; none when absent or unreadable."""
        try:
            return _digests_of(path.read_bytes())
        except OSError:
            return set()

    def _iter_manifest_paths(self) -> Iterator[tuple[ModelName, Path]]:
        """Every manifest file, sorted by name. Directories and files may vanish while this
        walks (a delete in another thread or process): what is gone is not listed."""
        paths: list[tuple[str, ...]] = [()]
        for depth, kind in enumerate(_PART_KINDS):
            found: list[tuple[str, ...]] = []
            for parts in paths:
                for name in _entries(self.manifests_dir.joinpath(*parts), files=depth == 3):
                    if is_valid_part(kind, name):
                        found.append((*parts, name))
            paths = found
        for parts in sorted(paths):
            yield ModelName(host=parts[0], namespace=parts[1], model=parts[2], tag=parts[3]), self.manifests_dir.joinpath(*parts)

    def _iter_names(self) -> Iterator[ModelName]:
        for name, _ in self._iter_manifest_paths():
            yield name

    def list_models(self) -> list[ModelEntry]:
        """Every readable model, newest first (as /api/tags sorts); corrupt manifests are skipped."""
        entries = []
        for name, path in self._iter_manifest_paths():
            try:
                data, mtime = _read_with_mtime(path)
                manifest = Manifest.from_bytes(data)
            except FileNotFoundError:
                continue  # deleted since the walk
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable manifest %s: %s", path, exc)
                continue
            entries.append(
                ModelEntry(
                    name=name,
                    manifest=manifest,
                    digest=manifest_digest(data),
                    modified_at=datetime.fromtimestamp(mtime).astimezone(),
                    size=manifest.size(),
                )
            )
        entries.sort(key=lambda e: e.modified_at, reverse=True)
        return entries

    def entry(self, name: ModelName) -> ModelEntry:
        """The list entry for one model (NotFoundError if absent, or deleted while read)."""
        found = self._require(name)
        path = self.manifest_path(found)
        try:
            data, mtime = _read_with_mtime(path)
        except FileNotFoundError:
            raise NotFoundError(f"model '{name.display}' not found") from None
        try:
            manifest = Manifest.from_bytes(data)
        except ValueError as exc:
            raise CorruptManifestError(f"model '{name.display}' has a corrupt manifest: {exc}") from None
        return ModelEntry(
            name=found,
            manifest=manifest,
            digest=manifest_digest(data),
            modified_at=datetime.fromtimestamp(mtime).astimezone(),
            size=manifest.size(),
        )

    def referenced_digests(self) -> tuple[set[str], bool]:
        """(digests referenced by any manifest, whether every manifest could be read)."""
        used: set[str] = set()
        complete = True
        for _, path in self._iter_manifest_paths():
            try:
                used |= Manifest.from_bytes(path.read_bytes()).digests()
            except FileNotFoundError:
                continue  # deleted since the walk: it references nothing now
            except (OSError, ValueError) as exc:
                log.warning("unreadable manifest %s: %s", path, exc)
                complete = False
        return used, complete

    # -- copy / delete / garbage collection -----------------------------------------------------

    def copy(self, src: ModelName, dst: ModelName, *, prune: bool = True) -> None:
        """Copy the manifest byte for byte (same model ID); blobs are shared, not copied. With
        `prune`, blobs only a replaced destination used are removed."""
        with self.lock:
            found = self.resolve(src)
            if found is None:
                raise NotFoundError(f'model "{src.display}" not found')
            target = self.canonical(dst)
            src_path, dst_path = self.manifest_path(found), self.manifest_path(target)
            if src_path == dst_path:
                return
            data = src_path.read_bytes()
            old = self._digests_at(dst_path)
            _atomic_write(dst_path, data)
            unused = old - _digests_of(data)
            if unused and prune:
                self.remove_unused_blobs(unused)

    def delete(self, name: ModelName) -> None:
        """Remove the manifest, then the blobs no remaining manifest references."""
        with self.lock:
            found = self._require(name)
            path = self.manifest_path(found)
            candidates = self._digests_at(path)
            path.unlink()
            self._prune_dirs(path.parent)
            self.remove_unused_blobs(candidates)

    def remove_unused_blobs(self, candidates: set[str]) -> list[str]:
        """Delete those of `candidates` that no manifest references; returns the removed digests.

        If any manifest cannot be read nothing is removed: its references are unknown, and
        a leaked blob is cheaper than a broken model (Ollama deletes in that case)."""
        with self.lock:
            used, complete = self.referenced_digests()
            if not complete:
                log.warning("corrupt manifests detected, skipping blob removal")
                return []
            unused = {d for d in candidates if d not in used}
            self._deferred |= unused & self._held.keys()
            removed = sorted(unused - self._held.keys())
            for digest in removed:
                self.blobs.remove(digest)
            return removed

    def prune(self, grace_seconds: float = 3600.0) -> list[str]:
        """Ollama's startup sweep: delete unreferenced blobs and stale temp/partial files older
        than `grace_seconds` (so concurrent creates and resumable pulls are spared)."""
        with self.lock:
            used, complete = self.referenced_digests()
            if not complete:
                log.warning("corrupt manifests detected, skipping prune operation")
                return []
            removed, kept = [], []
            now = time.time()
            if self.blobs.dir.is_dir():
                for entry in self.blobs.dir.iterdir():
                    try:
                        if not entry.is_file():
                            continue
                        young = now - entry.stat().st_mtime < grace_seconds
                    except FileNotFoundError:
                        continue
                    try:
                        digest = parse_digest(entry.name)
                    except BadRequestError:
                        digest = None
                    if digest is not None and (digest in used or digest in self._held):
                        continue
                    if young:
                        kept.append(entry.name)
                        continue
                    entry.unlink(missing_ok=True)
                    removed.append(entry.name)
            if kept:
                log.info(
                    "keeping %d unused blob files younger than %.0f s (an upload a create may still use, "
                    "a resumable download): %s", len(kept), grace_seconds, ", ".join(sorted(kept)),
                )
            self._prune_dirs(None)
            return sorted(removed)

    def _prune_dirs(self, start: Path | None) -> None:
        """Remove empty directories under manifests/ (from `start` upward, or all of them)."""
        top = self.manifests_dir
        if start is not None:
            current = start
            while current != top and top in current.parents:
                try:
                    current.rmdir()
                except OSError:
                    return
                current = current.parent
            return
        if not top.is_dir():
            return
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -len(t[0])):
            if Path(dirpath) != top:
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    # -- records --------------------------------------------------------------------------------

    def load_record(self, name: ModelName) -> ModelRecord:
        """Everything needed to serve or show a model (see pyollama.store.model).

        A model deleted or replaced while its layers are read (a delete removes the blobs only
        it used) is read again, or is not found: a missing blob is a damaged store only when
        the manifest that names it is still there."""
        for _ in range(3):
            entry = self.entry(name)
            try:
                return read_record(entry, self.blobs, self.gguf_info)
            except ModelBlobError:
                try:
                    now = self.entry(name)
                except NotFoundError:
                    raise NotFoundError(f"model '{name.display}' not found") from None
                if now.digest == entry.digest:
                    raise
        raise NotFoundError(f"model '{name.display}' not found")
