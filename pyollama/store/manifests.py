"""Manifests (Docker image manifest v2, schema 2) and the `Store` over a models root.

Layout is Ollama's: `manifests/<host>/<namespace>/<model>/<tag>` (JSON, no
extension) and `blobs/sha256-<hex>`. Locally written manifests are compact
JSON with a trailing newline, as Go's json.Encoder writes them; pulled ones
are stored byte for byte (`write_manifest_bytes`), because the model ID is
the sha256 of the manifest file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyollama.errors import BadRequestError, NotFoundError, PyollamaError
from pyollama.llama.gguf import GGUFInfo, read_gguf_info
from pyollama.store.blobs import BlobStore, fsync_dir, parse_digest
from pyollama.store.names import ModelName, is_valid_part

if TYPE_CHECKING:
    from pyollama.store.model import ModelRecord

log = logging.getLogger("pyollama.store")

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_PROMPT = "application/vnd.ollama.image.prompt"  # legacy name of the template layer
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_DRAFT = "application/vnd.ollama.image.draft"
MEDIA_EMBED = "application/vnd.ollama.image.embed"  # deprecated, ignored on load

_PART_KINDS = ("host", "namespace", "model", "tag")


class InvalidManifestError(ValueError):
    """Bytes that do not form a usable manifest."""


class CorruptManifestError(PyollamaError):
    """A stored manifest that cannot be parsed: the store's fault, not the client's (500)."""

    status = 500


@dataclass
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str | None = None
    # Safetensors "tensor models" name each layer; kept so such manifests round-trip.
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Layer:
        if not isinstance(obj, dict):
            raise InvalidManifestError("layer is not an object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size", 0)
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise InvalidManifestError("layer needs string mediaType and digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifestError("layer size must be a non-negative integer")
        try:
            digest = parse_digest(digest)
        except BadRequestError as exc:
            raise InvalidManifestError(str(exc)) from None
        from_, name = obj.get("from"), obj.get("name")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            from_=from_ if isinstance(from_, str) and from_ else None,
            name=name if isinstance(name, str) and name else None,
        )


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer]
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE

    def to_bytes(self) -> bytes:
        """Compact JSON plus newline, field order as Ollama's manifest.WriteManifest."""
        obj = {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return go_json_bytes(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse manifest JSON; ValueError on anything that is not a usable manifest."""
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidManifestError(f"manifest is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidManifestError("manifest is not a JSON object")
        layers = obj.get("layers") or []
        if not isinstance(layers, list):
            raise InvalidManifestError("manifest layers must be a list")
        schema_version = obj.get("schemaVersion", 2)
        media_type = obj.get("mediaType", MANIFEST_MEDIA_TYPE)
        return cls(
            config=Layer.from_json(obj.get("config")),
            layers=[Layer.from_json(layer) for layer in layers],
            schema_version=schema_version if isinstance(schema_version, int) else 2,
            media_type=media_type if isinstance(media_type, str) else MANIFEST_MEDIA_TYPE,
        )

    def all_layers(self) -> list[Layer]:
        return [self.config, *self.layers]

    def size(self) -> int:
        """Ollama's Manifest.Size: all layers plus the config."""
        return sum(layer.size for layer in self.all_layers())

    def digests(self) -> set[str]:
        return {layer.digest for layer in self.all_layers()}


def _go_json_float(value: float) -> str:
    """encoding/json's float64 form: 'f' notation unless tiny or huge, shortest digits."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"unsupported value: {value}")
    if value == 0:
        return "0" if math.copysign(1.0, value) > 0 else "-0"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = repr(value)  # shortest digits, 'e' form; Go writes e-7, not e-07
        mantissa, _, exp = text.partition("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}e{sign}{int(exp.lstrip('+-'))}"
    return format(Decimal(repr(value)), "f")


def _go_json_string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    # Go's json.Encoder escapes HTML characters and the JS line separators by default.
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _go_json(value: Any, sort_keys: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_json(v, sort_keys) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else list(value.items())
        return "{" + ",".join(f"{_go_json_string(str(k))}:{_go_json(v, sort_keys)}" for k, v in items) + "}"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def go_json_bytes(value: Any, sort_keys: bool = False) -> bytes:
    """JSON exactly as Go's json.NewEncoder(w).Encode writes it: compact, HTML-escaped, trailing
    newline. Maps (params) are key-sorted in Go, structs (config, manifest) keep field order: pass
    `sort_keys` accordingly. Byte-identical output gives blobs the digests Ollama would give."""
    return (_go_json(value, sort_keys) + "\n").encode()


@dataclass
class ModelEntry:
    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest file bytes: Ollama's model ID
    modified_at: datetime  # manifest mtime, aware, local time zone
    size: int


def manifest_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
        # Imported here because model.py builds on this module.
        from pyollama.store.model import load_record

        return load_record(self, name)
