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
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyollama.errors import BadRequestError, NotFoundError
from pyollama.gguf import GGUFInfo, read_gguf_info
from pyollama.store.blobs import BlobStore, fsync_dir, parse_digest
from pyollama.store.manifest import CorruptManifestError, Manifest, manifest_digest
from pyollama.store.model import ModelEntry, ModelRecord, read_record
from pyollama.store.names import ModelName, is_valid_part

log = logging.getLogger("pyollama.store")

_PART_KINDS = ("host", "namespace", "model", "tag")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


@dataclass
class Store:
    """A models root (`OLLAMA_MODELS`). Thread-safe within one process: manifest writes,
    copies and deletes (with their blob garbage collection) run under one lock, so a
    delete never removes a blob a concurrent write just referenced."""

    root: Path
    blobs: BlobStore = field(init=False)
    lock: threading.RLock = field(init=False, repr=False, compare=False)
    # Parsed GGUF headers by (path, size, mtime): blobs are immutable, and /api/tags asks for
    # the capabilities of every model on each call. Bounded because vocabularies are large.
    _gguf_cache: OrderedDict[tuple[str, int, int], GGUFInfo] = field(init=False, repr=False, compare=False)
    _gguf_cache_size: int = field(default=16, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        self.blobs = BlobStore(self.root)
        self.lock = threading.RLock()
        self._gguf_cache = OrderedDict()

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

    def _iter_manifest_paths(self) -> Iterator[tuple[ModelName, Path]]:
        top = self.manifests_dir
        if not top.is_dir():
            return
        for path in sorted(top.glob("*/*/*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            parts = path.relative_to(top).parts
            if not all(is_valid_part(kind, part) for kind, part in zip(_PART_KINDS, parts)):
                continue
            yield ModelName(host=parts[0], namespace=parts[1], model=parts[2], tag=parts[3]), path

    def _iter_names(self) -> Iterator[ModelName]:
        for name, _ in self._iter_manifest_paths():
            yield name

    def list_models(self) -> list[ModelEntry]:
        """Every readable model, newest first (as /api/tags sorts); corrupt manifests are skipped."""
        entries = []
        for name, path in self._iter_manifest_paths():
            try:
                data = path.read_bytes()
                mtime = path.stat().st_mtime
                manifest = Manifest.from_bytes(data)
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
        """The list entry for one model (NotFoundError if absent)."""
        found = self._require(name)
        path = self.manifest_path(found)
        data = self.read_manifest_bytes(found)
        manifest = self.read_manifest(found)
        return ModelEntry(
            name=found,
            manifest=manifest,
            digest=manifest_digest(data),
            modified_at=datetime.fromtimestamp(path.stat().st_mtime).astimezone(),
            size=manifest.size(),
        )

    def referenced_digests(self) -> tuple[set[str], bool]:
        """(digests referenced by any manifest, whether every manifest could be read)."""
        used: set[str] = set()
        complete = True
        for _, path in self._iter_manifest_paths():
            try:
                used |= Manifest.from_bytes(path.read_bytes()).digests()
            except (OSError, ValueError) as exc:
                log.warning("unreadable manifest %s: %s", path, exc)
                complete = False
        return used, complete

    # -- copy / delete / garbage collection -----------------------------------------------------

    def copy(self, src: ModelName, dst: ModelName) -> None:
        """Copy the manifest byte for byte (same model ID); blobs are shared, not copied."""
        with self.lock:
            found = self.resolve(src)
            if found is None:
                raise NotFoundError(f'model "{src.display}" not found')
            target = self.canonical(dst)
            src_path, dst_path = self.manifest_path(found), self.manifest_path(target)
            if src_path == dst_path:
                return
            _atomic_write(dst_path, src_path.read_bytes())

    def delete(self, name: ModelName) -> None:
        """Remove the manifest, then the blobs no remaining manifest references."""
        with self.lock:
            found = self._require(name)
            path = self.manifest_path(found)
            try:
                candidates = Manifest.from_bytes(path.read_bytes()).digests()
            except ValueError:
                candidates = set()
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
            removed = sorted(d for d in candidates if d not in used)
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
            removed = []
            now = time.time()
            if self.blobs.dir.is_dir():
                for entry in self.blobs.dir.iterdir():
                    try:
                        if not entry.is_file() or now - entry.stat().st_mtime < grace_seconds:
                            continue
                    except FileNotFoundError:
                        continue
                    try:
                        digest = parse_digest(entry.name)
                    except BadRequestError:
                        digest = None
                    if digest is None or digest not in used:
                        entry.unlink(missing_ok=True)
                        removed.append(entry.name)
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
        """Everything needed to serve or show a model (see pyollama.store.model)."""
        return read_record(self.entry(name), self.blobs, self.gguf_info)
