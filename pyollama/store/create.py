"""Making models: Ollama's /api/create pipeline over the store, with no Flask in sight.

`create_model(store, request)` is a generator of Ollama's progress objects
(`{"status": "parsing GGUF"}`, `{"status": "quantizing F16 model to Q4_K_M",
"digest": ..., "total": ..., "completed": ...}`, `using existing layer
sha256:...`, `writing manifest`, `success`). It runs in two phases:

1. Prepare: everything that can be checked cheaply (names, digests, GGUF
   headers, split sets, the template, the quantization type and whether the
   source can be quantized) is checked before the first object is yielded,
   so a bad request gets its 400 as the HTTP status even when streaming.
   Pulling a missing `from` model is the one exception: its progress streams.
2. Work: splits are merged, safetensors converted, weights quantized, small
   layers written, the config blob built; the layer lines are yielded after
   all layers are prepared, in manifest order, then the manifest is written.

Writes are atomic: large outputs are written in a work directory under the
models root and renamed into `blobs/` once hashed; small layers go through
`BlobStore.write_bytes`. Until the manifest is written nothing refers to the
new blobs, and a failure (or the client going away) removes the blobs this
create added, so an interrupted create leaves neither a manifest nor a half blob.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from pyollama.errors import BadRequestError, NotFoundError, PyollamaError
from pyollama.llama.gguf import GGUF_MAGIC, GGUFInfo, InvalidGGUFError, file_type_name
from pyollama.store.blobs import fsync_dir, hash_file, parse_digest
from pyollama.store.manifests import (
    CONFIG_MEDIA_TYPE,
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    CorruptManifestError,
    Layer,
    Manifest,
    Store,
    go_json_bytes,
)
from pyollama.store.names import ModelName

log = logging.getLogger("pyollama.store.create")

# Ollama's error texts (server/create.go).
ERR_NOT_GGUF = "supplied file was not in GGUF format"
ERR_FILE_PATH = "file path must be relative"
ERR_NO_SOURCE = "neither 'from' or 'files' was specified"
ERR_NO_FILES = "no files provided to convert"
ERR_ONE_ADAPTER = "only one adapter is currently supported"
ERR_UNKNOWN_TYPE = "unknown type"
# Ollama answers this one with 500; it is the client's request that cannot be met, so 400 here.
ERR_QUANTIZE_SOURCE = "quantization is only supported for F16, BF16 and F32 models"

# The digest Ollama puts on quantization progress lines (no layer exists yet).
PROGRESS_DIGEST = "0000000000000000000"
QUANTIZABLE_SOURCES = ("F16", "BF16", "F32")
# llama.cpp refuses these without an importance matrix, which create has no way to supply.
_NEEDS_IMATRIX = frozenset({"Q2_K_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"})
_QUANTIZE_ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}
_PROGRESS_INTERVAL = 0.25

_SPLIT_RE = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")
# Files a model directory carries beside its GGUF (the CLI uploads *.json too); not GGUF themselves.
_COMPANION_SUFFIXES = (".json", ".jinja", ".txt", ".md", ".model")
_WORKDIR_PREFIX = "pyollama-create-"
_WORKDIR_GRACE_SECONDS = 3600.0

Pull = Callable[[ModelName], Iterator[dict[str, Any]]]


@dataclass
class CreateRequest:
    """`POST /api/create`, decoded (API.md §9.2). Empty strings mean "not given", as in Ollama."""

    model: str
    from_: str | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    quantize: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


# -- request checks (also used by the route, in Ollama's order) ---------------------------------


def valid_file_path(name: str) -> bool:
    """Go's fs.ValidPath, minus "." itself (nothing can be written there), and without
    backslashes or NULs, which would name something else on disk than the client meant."""
    if not name or name == "." or "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def check_file_map(files: Mapping[str, str]) -> dict[str, str]:
    """Check a `files`/`adapters` map: relative paths, well-formed digests; canonical digests out."""
    for name, digest in files.items():
        if not valid_file_path(name):
            raise BadRequestError(ERR_FILE_PATH)
        if not digest:
            raise BadRequestError("invalid digest format")
    return {name: parse_digest(digest) for name, digest in files.items()}


def supported_quantize_types() -> tuple[str, ...]:
    """The types `quantize` accepts: llama.cpp's list, less those needing an importance matrix."""
    try:
        from pyollama.llama import QUANTIZE_TYPES
    except ImportError as exc:
        raise PyollamaError(f"quantization is unavailable: {exc}") from None
    return tuple(t for t in QUANTIZE_TYPES if t not in _NEEDS_IMATRIX)


def normalize_quantize(raw: str) -> str:
    """Upper-cased, aliases resolved (`q4_K` -> `Q4_K_M`); 400 for a type llama.cpp cannot make."""
    wanted = raw.strip().upper()
    wanted = _QUANTIZE_ALIASES.get(wanted, wanted)
    supported = supported_quantize_types()
    if wanted not in supported:
        listed = ", ".join(supported)
        raise BadRequestError(
            f"unsupported quantization type {raw.strip().upper()} - supported types are {listed}"
        )
    return wanted


def check_template(template: str) -> None:
    """Parse a Go template with pyollama's renderer; `template error: ...` (400) if it does not parse."""
    # Imported here: templates is a sibling layer, needed only when a template is given.
    from pyollama.templates.gotemplate import Template

    try:
        Template.parse(template)
    except (PyollamaError, ValueError, SyntaxError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        if not message.startswith("template error"):
            message = f"template error: {message}"
        raise BadRequestError(message) from None


# -- GGUF byte layout (split merging, truncation checks) ----------------------------------------

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


@dataclass
class _Tensor:
    info: bytes  # the tensor-info record without its data offset
    offset: int
    n_bytes: int


@dataclass
class _Layout:
    """Where everything sits in a (little-endian) GGUF file."""

    version: int
    kv: list[tuple[str, bytes]]  # (key, raw bytes of the whole entry)
    tensors: list[_Tensor]
    alignment: int
    data_start: int
    file_size: int


class _Reader:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise InvalidGGUFError(ERR_NOT_GGUF)
        self.pos += n
        return start

    def u32(self) -> int:
        value: int = struct.unpack_from("<I", self.buf, self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack_from("<Q", self.buf, self.take(8))[0]
        return value

    def string(self) -> str:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype == _GGUF_STRING:
            self.take(self.u64())
        elif vtype == _GGUF_ARRAY:
            itype, count = self.u32(), self.u64()
            size = _SCALAR_SIZES.get(itype)
            if size is not None:
                self.take(size * count)
            elif itype in (_GGUF_STRING, _GGUF_ARRAY):
                if count > len(self.buf) - self.pos:
                    raise InvalidGGUFError(ERR_NOT_GGUF)
                for _ in range(count):
                    self.skip_value(itype)
            else:
                raise InvalidGGUFError(ERR_NOT_GGUF)
        elif vtype in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[vtype])
        else:
            raise InvalidGGUFError(ERR_NOT_GGUF)


def _tensor_bytes(type_id: int, dims: Sequence[int]) -> int:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    except (ValueError, KeyError):
        raise InvalidGGUFError(f"{ERR_NOT_GGUF}: unknown tensor type {type_id}") from None
    n = 1
    for d in dims:
        n *= d
    if not dims or dims[0] % block:
        raise InvalidGGUFError(f"{ERR_NOT_GGUF}: tensor rows do not fit its type")
    return n // block * type_size


def read_layout(path: Path, alignment: int = 32) -> _Layout:
    """Walk a GGUF header without decoding values; checks that every tensor's data is in the file."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidGGUFError(ERR_NOT_GGUF)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            r = _Reader(buf)
            r.take(4)
            version = r.u32()
            if version not in (2, 3):
                raise InvalidGGUFError(f"{ERR_NOT_GGUF}: unsupported GGUF version or byte order")
            n_tensors, n_kv = r.u64(), r.u64()
            if n_tensors > len(buf) or n_kv > len(buf):
                raise InvalidGGUFError(ERR_NOT_GGUF)
            kv = []
            for _ in range(n_kv):
                start = r.pos
                key = r.string()
                r.skip_value(r.u32())
                kv.append((key, bytes(buf[start : r.pos])))
            tensors = []
            for _ in range(n_tensors):
                start = r.pos
                r.string()
                n_dims = r.u32()
                if n_dims > 8:
                    raise InvalidGGUFError(ERR_NOT_GGUF)
                dims = struct.unpack_from(f"<{n_dims}Q", buf, r.take(8 * n_dims))
                type_id = r.u32()
                info = bytes(buf[start : r.pos])
                tensors.append(_Tensor(info=info, offset=r.u64(), n_bytes=_tensor_bytes(type_id, dims)))
            data_start = _align(r.pos, alignment)
            file_size = len(buf)
    for tensor in tensors:
        if tensor.offset % alignment or data_start + tensor.offset + tensor.n_bytes > file_size:
            raise InvalidGGUFError("supplied GGUF file is truncated or its tensor data is corrupt")
    return _Layout(version, kv, tensors, alignment, data_start, file_size)


def _align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


def _copy_exactly(src: BinaryIO, dst: BinaryIO, n_bytes: int) -> None:
    while n_bytes:
        chunk = src.read(min(n_bytes, 1 << 22))
        if not chunk:
            raise InvalidGGUFError("supplied GGUF file is truncated or its tensor data is corrupt")
        dst.write(chunk)
        n_bytes -= len(chunk)


def _gguf_alignment(info: GGUFInfo) -> int:
    value = info.metadata.get("general.alignment", 32)
    if not isinstance(value, int) or value <= 0 or value % 8:
        raise InvalidGGUFError(f"{ERR_NOT_GGUF}: bad general.alignment")
    return value


def merge_splits(parts: Sequence[tuple[Path, _Layout]], out: Path) -> None:
    """Write one GGUF from split parts: the first part's metadata without the `split.*` keys
    (llama.cpp would otherwise look for sibling files), every part's tensors in order."""
    first = parts[0][1]
    alignment = first.alignment
    kv = [raw for key, raw in first.kv if not key.startswith("split.")]
    tensors = [t for _, layout in parts for t in layout.tensors]
    offsets, end = [], 0
    for tensor in tensors:
        offsets.append(_align(end, alignment))
        end = offsets[-1] + tensor.n_bytes
    done: list[_Tensor] = []
    with open(out, "wb") as f:
        f.write(GGUF_MAGIC + struct.pack("<IQQ", first.version, len(tensors), len(kv)))
        f.writelines(kv)
        for tensor, offset in zip(tensors, offsets):
            f.write(tensor.info + struct.pack("<Q", offset))
        f.write(b"\0" * (-f.tell() % alignment))
        base = f.tell()
        for path, layout in parts:
            with open(path, "rb") as src:
                for tensor in layout.tensors:
                    f.write(b"\0" * (base + offsets[len(done)] - f.tell()))
                    src.seek(layout.data_start + tensor.offset)
                    _copy_exactly(src, f, tensor.n_bytes)
                    done.append(tensor)
        f.write(b"\0" * (-(f.tell() - base) % alignment))
        f.flush()
        os.fsync(f.fileno())


# -- the pieces of a model under construction --------------------------------------------------


@dataclass
class _Planned:
    """A manifest layer and the line create reports for it (Ollama's Layer.Status)."""

    layer: Layer
    status: str
    info: GGUFInfo | None = None  # the GGUF header, for model, projector and adapter layers


@dataclass
class _GGUFFile:
    name: str
    digest: str
    path: Path
    info: GGUFInfo
    media_type: str
    layout: _Layout


@dataclass
class _SplitSet:
    name: str  # the common prefix, for messages
    parts: list[_GGUFFile]


def source_file_type(info: GGUFInfo) -> str:
    """The file type of a GGUF: `general.file_type`, else read off its weight matrices
    (files written by hand often lack the key)."""
    if info.file_type is not None:
        return file_type_name(info.file_type)
    kinds = {type_name for _, type_name, dims in info.tensors if len(dims) >= 2}
    for name in ("BF16", "F16", "F32"):
        if name in kinds and kinds <= {name, "F32"}:
            return name
    return "unknown"


def _media_type(info: GGUFInfo) -> str:
    """Ollama's ggufLayers: adapter, projector (mmproj/clip or vision-only), else model."""
    kind = info.general_type
    if kind == "adapter":
        return MEDIA_ADAPTER
    if kind in ("projector", "mmproj") or info.architecture == "clip":
        return MEDIA_PROJECTOR
    if not info.arch_value("block_count") and info.arch_value("vision.block_count"):
        return MEDIA_PROJECTOR
    return MEDIA_MODEL


def _status(existed: bool, digest: str) -> str:
    return f"{'using existing' if existed else 'creating new'} layer {digest}"


def _progress(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, **extra}


class _CreateJob:
    """One create: prepare (checks, no output), then work (yields progress)."""

    def __init__(
        self, store: Store, request: CreateRequest, *, prune: bool, pull: Pull | None, source_dir: Path | None
    ) -> None:
        self.store = store
        self.request = request
        self.prune = prune
        self.pull = pull
        self.source_dir = source_dir
        self.created: list[str] = []  # blobs this create added; removed again if it fails
        self.committed = False
        self.workdir: Path | None = None

    # -- driver ---------------------------------------------------------------------------------

    def run(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._run()
        except BaseException:
            # GeneratorExit included: a client that went away leaves no trace.
            if not self.committed:
                self._discard_created()
            raise
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _discard_created(self) -> None:
        if not self.created:
            return
        try:
            self.store.remove_unused_blobs(set(self.created))
        except OSError as exc:
            log.warning("could not remove the blobs of a failed create: %s", exc)

    def _run(self) -> Iterator[dict[str, Any]]:
        req = self.request
        store = self.store
        remove_stale_workdirs(store)
        target = store.canonical(ModelName.parse(req.model))
        want = normalize_quantize(req.quantize) if req.quantize else None
        if req.template:
            check_template(req.template)

        # Prepare: the base layers, checked but not yet written.
        base_config: dict[str, Any] = {}
        gguf_files: list[_GGUFFile] = []
        splits: list[_SplitSet] = []
        safetensors: dict[str, str] | None = None
        base: list[_Planned] = []
        if self.source_dir is not None:
            safetensors = {}
        elif req.from_:
            base_name = ModelName.parse(req.from_)
            found = store.resolve(base_name)
            if found is None:
                if self.pull is None:
                    raise NotFoundError(f"model '{base_name.display}' not found")
                yield from self.pull(base_name)
                found = store.resolve(base_name)
                if found is None:
                    raise NotFoundError(f"model '{base_name.display}' not found")
            base, base_config = self._from_model(found)
        elif req.files is not None:
            files = check_file_map(req.files)
            kind = self._detect_type(files)
            if kind == "safetensors":
                safetensors = files
                self._check_safetensors(files)
            else:
                gguf_files, splits = self._gguf_files(files)
        else:
            raise BadRequestError(ERR_NO_SOURCE)
        adapters = self._adapters(req.adapters) if req.adapters is not None else []

        model_info = self._model_info(base, gguf_files, splits)
        if model_info is not None and adapters:
            for adapter in adapters:
                arch = adapter.info.architecture if adapter.info is not None else ""
                if arch and model_info.architecture and arch != model_info.architecture:
                    raise BadRequestError(
                        f'adapter architecture "{arch}" does not match model architecture '
                        f'"{model_info.architecture}"'
                    )
        if model_info is not None:
            source_type = source_file_type(model_info)
        else:
            # Conversion writes F16; a base without a GGUF model layer has nothing to quantize.
            source_type = "F16" if safetensors is not None else "unknown"
        if want is not None and source_type != want and source_type not in QUANTIZABLE_SOURCES:
            raise BadRequestError(ERR_QUANTIZE_SOURCE)

        # Work: the large outputs first, each reported as it happens.
        planned: list[_Planned] = list(base)
        for entry in gguf_files:
            yield _progress("parsing GGUF")
            planned.append(
                _Planned(
                    Layer(entry.media_type, entry.digest, entry.path.stat().st_size),
                    _status(True, entry.digest),
                    entry.info,
                )
            )
        for split in splits:
            for _ in split.parts:
                yield _progress("parsing GGUF")
            planned.append(self._merge(split))
        if safetensors is not None:
            yield _progress("converting model")
            planned.append(self._convert(safetensors))
        # Model layers first (Ollama keeps file order; a stable order keeps digests stable).
        planned.sort(key=lambda p: p.layer.media_type != MEDIA_MODEL)
        planned.extend(adapters)

        if want is not None:
            for i, item in enumerate(planned):
                if item.layer.media_type == MEDIA_MODEL and item.info is not None:
                    current = source_file_type(item.info)
                    if current != want:
                        planned[i] = yield from self._quantize(item, current, want)

        planned = self._metadata_layers(planned)
        config = self._config(planned, base_config)
        config_digest, config_size, _ = self._write_small(go_json_bytes(config))
        manifest = Manifest(
            config=Layer(CONFIG_MEDIA_TYPE, config_digest, config_size), layers=[p.layer for p in planned]
        )
        for item in planned:
            yield _progress(item.status)

        yield _progress("writing manifest")
        old_digests = self._old_digests(target)
        store.write_manifest(target, manifest)
        self.committed = True
        unused = old_digests - manifest.digests()
        if unused and self.prune:
            store.remove_unused_blobs(unused)
        yield _progress("success")

    # -- base layers ----------------------------------------------------------------------------

    def _from_model(self, name: ModelName) -> tuple[list[_Planned], dict[str, Any]]:
        """Every layer of an existing model, marked as coming from it (Ollama's parseFromModel)."""
        store = self.store
        manifest = store.read_manifest(name)
        planned = []
        for layer in manifest.layers:
            if not store.blobs.exists(layer.digest):
                raise CorruptManifestError(f"model '{name.display}': blob {layer.digest} is missing")
            info = None
            if layer.media_type in (MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER):
                try:
                    info = store.gguf_info(store.blobs.path(layer.digest))
                except InvalidGGUFError:
                    info = None  # not GGUF (e.g. a safetensors tensor model): kept as is
            copied = Layer(layer.media_type, layer.digest, layer.size, from_=name.display, name=layer.name)
            planned.append(_Planned(copied, _status(True, layer.digest), info))
        config: dict[str, Any] = {}
        try:
            raw = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
            config = raw if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            log.warning("model %s has no readable config; building a new one", name.display)
        return planned, config

    def _detect_type(self, files: Mapping[str, str]) -> str:
        """Ollama's detectModelTypeFromFiles, made deterministic."""
        if not files:
            raise BadRequestError(ERR_NO_FILES)
        names = sorted(files)
        if any(n.endswith(".safetensors") for n in names):
            return "safetensors"
        if any(n.endswith(".gguf") for n in names):
            return "gguf"
        for n in names:
            if _has_gguf_magic(self._blob_path(files[n])):
                return "gguf"
        raise BadRequestError(ERR_UNKNOWN_TYPE)

    def _blob_path(self, digest: str) -> Path:
        path = self.store.blobs.path(digest)
        if not path.is_file():
            raise NotFoundError(f'blob "{digest}" not found')
        return path

    def _read_gguf(self, name: str, digest: str) -> _GGUFFile:
        # InvalidGGUFError is a 400 with Ollama's "supplied file was not in GGUF format".
        path = self._blob_path(digest)
        info = self.store.gguf_info(path)
        layout = read_layout(path, _gguf_alignment(info))
        return _GGUFFile(name, digest, path, info, _media_type(info), layout)

    def _gguf_files(self, files: Mapping[str, str]) -> tuple[list[_GGUFFile], list[_SplitSet]]:
        singles: list[_GGUFFile] = []
        groups: dict[str, list[tuple[int, int, _GGUFFile]]] = {}
        for name in sorted(files):
            digest = files[name]
            companion = not name.endswith(".gguf") and name.endswith(_COMPANION_SUFFIXES)
            if companion and not _has_gguf_magic(self._blob_path(digest)):
                continue  # a config or tokenizer file uploaded beside the GGUF
            entry = self._read_gguf(name, digest)
            match = _SPLIT_RE.match(name.rsplit("/", 1)[-1])
            count = entry.info.metadata.get("split.count", 0)
            if match and isinstance(count, int) and count > 1:
                index, total = int(match.group(2)), int(match.group(3))
                groups.setdefault(match.group(1), []).append((index, total, entry))
            else:
                singles.append(entry)
        splits = [self._check_split(prefix, parts) for prefix, parts in sorted(groups.items())]
        models = [e for e in singles if e.media_type == MEDIA_MODEL] + [s.parts[0] for s in splits]
        if len(models) > 1:
            raise BadRequestError("more than one model file was supplied; give one model (or one split set)")
        if not models:
            raise BadRequestError("no model file was supplied, only projectors or adapters")
        return singles, splits

    def _check_split(self, prefix: str, parts: list[tuple[int, int, _GGUFFile]]) -> _SplitSet:
        parts.sort(key=lambda p: p[0])
        total = parts[0][1]
        label = f'split GGUF "{prefix}"'
        if any(t != total for _, t, _ in parts):
            raise BadRequestError(f"{label}: parts disagree on the number of splits")
        indexes = [i for i, _, _ in parts]
        if indexes != list(range(1, total + 1)):
            missing = ", ".join(f"{m:05d}" for m in sorted(set(range(1, total + 1)) - set(indexes)))
            problem = f"missing part {missing}" if missing else f"got parts {', '.join(map(str, indexes))}"
            raise BadRequestError(f"{label}: expected {total} parts, {problem}")
        for index, _, entry in parts:
            meta = entry.info.metadata
            if meta.get("split.count") != total or meta.get("split.no") != index - 1:
                said = f"part {meta.get('split.no')} of {meta.get('split.count')}"
                raise BadRequestError(f"{label}: {entry.name} says it is {said}")
        if parts[0][2].media_type != MEDIA_MODEL:
            raise BadRequestError(f"{label}: only model files can be split")
        return _SplitSet(prefix, [entry for _, _, entry in parts])

    def _check_safetensors(self, files: Mapping[str, str]) -> None:
        """What can be told before converting: the config names an architecture we convert."""
        from pyollama.store.convert import SUPPORTED_ARCHITECTURES

        for digest in files.values():
            self._blob_path(digest)
        if "config.json" not in files:
            raise BadRequestError("config.json not found")
        try:
            config = json.loads(self._blob_path(files["config.json"]).read_bytes())
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequestError(f"config.json: {exc}") from None
        architectures = config.get("architectures") if isinstance(config, dict) else None
        first = architectures[0] if isinstance(architectures, list) and architectures else None
        # Anything else wrong with config.json is the converter's to report, in its words.
        if isinstance(first, str) and first not in SUPPORTED_ARCHITECTURES:
            raise BadRequestError(f'unsupported architecture "{first}"')

    def _adapters(self, adapters: Mapping[str, str]) -> list[_Planned]:
        files = check_file_map(adapters)
        if not files:
            raise BadRequestError(ERR_NO_FILES)
        if any(name.endswith(".safetensors") for name in files):
            raise BadRequestError(
                "safetensors adapters are not supported; convert the adapter to GGUF "
                "(llama.cpp's convert_lora_to_gguf.py) and give that file"
            )
        if len(files) > 1:
            raise BadRequestError(ERR_ONE_ADAPTER)
        out = []
        for name, digest in files.items():
            entry = self._read_gguf(name, digest)
            if entry.media_type != MEDIA_ADAPTER:
                raise BadRequestError(f'{name} is not a LoRA adapter (its general.type is not "adapter")')
            out.append(
                _Planned(
                    Layer(MEDIA_ADAPTER, digest, entry.path.stat().st_size), _status(True, digest), entry.info
                )
            )
        return out

    def _model_info(
        self, base: list[_Planned], gguf_files: list[_GGUFFile], splits: list[_SplitSet]
    ) -> GGUFInfo | None:
        for item in base:
            if item.layer.media_type == MEDIA_MODEL and item.info is not None:
                return item.info
        for entry in gguf_files:
            if entry.media_type == MEDIA_MODEL:
                return entry.info
        for split in splits:
            # Tensors of every part count; the first part's metadata describes the model.
            info = split.parts[0].info
            tensors = [t for part in split.parts for t in part.info.tensors]
            count = sum(part.info.parameter_count for part in split.parts)
            return GGUFInfo(
                path=info.path,
                version=info.version,
                metadata=info.metadata,
                tensors=tensors,
                parameter_count=count,
            )
        return None

    # -- large outputs --------------------------------------------------------------------------

    def _work(self) -> Path:
        if self.workdir is None:
            self.store.root.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=self.store.root))
        return self.workdir

    def _adopt(self, path: Path, media_type: str) -> _Planned:
        """Move a finished file from the work dir into blobs/ under its digest."""
        digest, size = hash_file(path)
        target = self.store.blobs.path(digest)
        existed = target.is_file()
        if not existed:
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(path, 0o644)
            self.store.blobs.dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            fsync_dir(self.store.blobs.dir)
            self.created.append(digest)
        info = self.store.gguf_info(target)
        return _Planned(Layer(media_type, digest, size), _status(existed, digest), info)

    def _merge(self, split: _SplitSet) -> _Planned:
        out = self._work() / "merged.gguf"
        merge_splits([(p.path, p.layout) for p in split.parts], out)
        return self._adopt(out, MEDIA_MODEL)

    def _convert(self, files: Mapping[str, str]) -> _Planned:
        from pyollama.store.convert import convert_safetensors_dir

        work = self._work()
        if self.source_dir is not None:
            src = self.source_dir
        else:
            src = work / "src"
            for name, digest in files.items():
                _materialize(self.store.blobs.path(digest), src / name)
        out = work / "model.gguf"
        convert_safetensors_dir(src, out, out_type="F16")
        return self._adopt(out, MEDIA_MODEL)

    def _quantize(self, item: _Planned, current: str, want: str) -> Generator[dict[str, Any], None, _Planned]:
        """Quantize a model layer on a worker thread, reporting the tensors done meanwhile (as the
        share of the source's bytes, the unit Ollama's progress bars show)."""
        from pyollama.llama import quantize

        src = self.store.blobs.path(item.layer.digest)
        out = self._work() / f"quantized-{want}.gguf"
        total = item.layer.size
        status = f"quantizing {current} model to {want}"
        failure: list[BaseException] = []
        done = [0.0]  # share of tensors quantized, written by the worker thread

        def on_tensor(i: int, n: int) -> None:
            done[0] = i / max(1, n)

        def work() -> None:
            try:
                quantize(src, out, want, progress=on_tensor)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the generator's thread
                failure.append(exc)

        thread = threading.Thread(target=work, name="pyollama-quantize", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(_PROGRESS_INTERVAL)
                yield _progress(status, digest=PROGRESS_DIGEST, total=total, completed=int(total * done[0]))
        finally:
            # llama_model_quantize cannot be interrupted: wait so the work dir can be removed.
            thread.join()
        if failure:
            exc = failure[0]
            if isinstance(exc, PyollamaError):
                raise exc
            raise PyollamaError(f"quantization to {want} failed: {exc}")
        yield _progress(status, digest=PROGRESS_DIGEST, total=total, completed=total)
        yield _progress("verifying conversion")
        quantized = self._adopt(out, MEDIA_MODEL)
        got = source_file_type(quantized.info) if quantized.info is not None else "unknown"
        if got != want:
            raise PyollamaError(f"quantization to {want} produced a {got} model")
        return quantized

    # -- metadata layers and config -------------------------------------------------------------

    def _write_small(self, data: bytes) -> tuple[str, int, bool]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        existed = self.store.blobs.exists(digest)
        if not existed:
            self.store.blobs.write_bytes(data)
            self.created.append(digest)
        return digest, len(data), existed

    def _small_layer(self, media_type: str, data: bytes) -> _Planned:
        digest, size, existed = self._write_small(data)
        return _Planned(Layer(media_type, digest, size), _status(existed, digest))

    def _metadata_layers(self, planned: list[_Planned]) -> list[_Planned]:
        """Ollama's setTemplate/setSystem/setLicense/setParameters/setMessages, in that order."""
        req = self.request

        def without(*media: str) -> list[_Planned]:
            return [p for p in planned if p.layer.media_type not in media]

        if req.template:
            planned = without(MEDIA_TEMPLATE, MEDIA_PROMPT) + [
                self._small_layer(MEDIA_TEMPLATE, req.template.encode("utf-8"))
            ]
        if req.system:
            planned = without(MEDIA_SYSTEM) + [self._small_layer(MEDIA_SYSTEM, req.system.encode("utf-8"))]
        for text in req.license:
            if text:
                planned.append(self._small_layer(MEDIA_LICENSE, text.encode("utf-8")))
        params = dict(req.parameters)
        for item in planned:
            if item.layer.media_type == MEDIA_PARAMS:
                for key, value in self._read_params(item.layer.digest).items():
                    params.setdefault(key, value)
        if params:
            planned = without(MEDIA_PARAMS) + [
                self._small_layer(MEDIA_PARAMS, go_json_bytes(params, sort_keys=True))
            ]
        if req.messages:
            planned = without(MEDIA_MESSAGES) + [
                self._small_layer(MEDIA_MESSAGES, go_json_bytes(req.messages))
            ]
        return planned

    def _read_params(self, digest: str) -> dict[str, Any]:
        try:
            value = json.loads(self.store.blobs.path(digest).read_bytes())
        except (OSError, ValueError) as exc:
            raise CorruptManifestError(f"params layer {digest} is unreadable: {exc}") from None
        if not isinstance(value, dict):
            raise CorruptManifestError(f"params layer {digest} is not a JSON object")
        return value

    def _config(self, planned: list[_Planned], base: Mapping[str, Any]) -> dict[str, Any]:
        req = self.request
        model = next((p.info for p in planned if p.layer.media_type == MEDIA_MODEL and p.info), None)
        families: list[str] = []
        for item in planned:
            if item.info is not None and item.layer.media_type in (MEDIA_MODEL, MEDIA_PROJECTOR):
                arch = item.info.architecture
                if arch and arch not in families:
                    families.append(arch)
        if model is not None:
            family = model.architecture
            model_type = model.parameter_size
            file_type = source_file_type(model)
        else:
            family = str(base.get("model_family", ""))
            model_type = str(base.get("model_type", ""))
            file_type = str(base.get("file_type", ""))
            inherited = base.get("model_families")
            families = (
                [f for f in inherited if isinstance(f, str)] if isinstance(inherited, list) else families
            )
        config: dict[str, Any] = {
            "model_format": base.get("model_format") or "gguf",
            "model_family": family,
            "model_families": families or None,
            "model_type": model_type,
            "file_type": file_type,
        }
        for key in ("renderer", "parser", "requires"):
            value = getattr(req, key) or base.get(key)
            if value:
                config[key] = value
        capabilities = base.get("capabilities")
        if isinstance(capabilities, list) and capabilities:
            config["capabilities"] = capabilities
        _apply_info(config, req.info)
        config["architecture"] = "amd64"
        config["os"] = "linux"
        config["rootfs"] = {"type": "layers", "diff_ids": [p.layer.digest for p in planned]}
        return config

    def _old_digests(self, target: ModelName) -> set[str]:
        if self.store.resolve(target) is None:
            return set()
        try:
            return self.store.read_manifest(target).digests()
        except PyollamaError:
            return set()


# Ollama's `info` overrides: request key -> (config key, kind).
_INFO_FIELDS: dict[str, tuple[str, str]] = {
    "capabilities": ("capabilities", "strings"),
    "model_family": ("model_family", "string"),
    "base_name": ("base_name", "string"),
    "quantization_level": ("file_type", "string"),
    "parameter_size": ("model_type", "string"),
    "context_length": ("context_length", "count"),
    "embedding_length": ("embedding_length", "count"),
}


def check_info(info: Mapping[str, Any]) -> None:
    """Ollama's checks of the `info` overrides (400 with its texts)."""
    for key, value in info.items():
        spec = _INFO_FIELDS.get(key)
        if spec is None:
            continue
        kind = spec[1]
        if kind == "string" and not isinstance(value, str):
            raise BadRequestError(f'info field "{key}" must be a string')
        if kind == "strings" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise BadRequestError(f'info field "{key}" must be a list of strings')
        if kind == "count":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise BadRequestError(f'info field "{key}" must be a number')
            if value < 0 or value != int(value):
                raise BadRequestError(f'info field "{key}" must be a non-negative integer')


def _apply_info(config: dict[str, Any], info: Mapping[str, Any]) -> None:
    check_info(info)
    for key, value in info.items():
        spec = _INFO_FIELDS.get(key)
        if spec is not None and value not in ("", None, []):
            config[spec[0]] = int(value) if spec[1] == "count" else value


def _has_gguf_magic(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def _materialize(blob: Path, dest: Path) -> None:
    """Give a blob its upload name for the converter: a hard link, else a copy (another filesystem)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(blob, dest)
    except OSError:
        shutil.copyfile(blob, dest)


def remove_stale_workdirs(store: Store, grace_seconds: float = _WORKDIR_GRACE_SECONDS) -> None:
    """Remove work directories left by a create that was killed (older than the grace period,
    so a create still running in another process keeps its own)."""
    try:
        entries = list(store.root.glob(_WORKDIR_PREFIX + "*"))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > grace_seconds:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def create_model(
    store: Store,
    request: CreateRequest,
    *,
    prune: bool = True,
    pull: Pull | None = None,
    source_dir: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Create (or replace) `request.model`, yielding Ollama's progress objects; ends with `success`.

    `pull(name)` fetches a `from` model that is not in the store, yielding its own progress
    (without it a missing `from` model is a 404). `prune` removes the blobs only the replaced
    manifest used (OLLAMA_NOPRUNE unset). `source_dir` converts a local safetensors directory
    instead of uploaded `files` (bundled models). Errors are PyollamaError subclasses with
    their HTTP status; everything checkable is checked before the first object.
    """
    job = _CreateJob(store, request, prune=prune, pull=pull, source_dir=source_dir)
    return job.run()


__all__ = [
    "QUANTIZABLE_SOURCES",
    "CreateRequest",
    "check_file_map",
    "check_info",
    "check_template",
    "create_model",
    "merge_splits",
    "normalize_quantize",
    "read_layout",
    "remove_stale_workdirs",
    "source_file_type",
    "supported_quantize_types",
    "valid_file_path",
]
