"""Where a create's base layers come from: an existing model, uploaded GGUF files (single or
split sets), uploaded safetensors, adapters. Everything here reads and checks; nothing writes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyollama.errors import BadRequestError, NotFoundError
from pyollama.gguf import GGUFInfo, GGUFLayout, InvalidGGUFError, has_gguf_magic, read_layout
from pyollama.store.create.request import ERR_NO_FILES, ERR_ONE_ADAPTER, ERR_UNKNOWN_TYPE, check_file_map
from pyollama.store.manifest import (
    MEDIA_ADAPTER,
    MEDIA_DRAFT,
    MEDIA_MODEL,
    MEDIA_PROJECTOR,
    CorruptManifestError,
    Layer,
)
from pyollama.store.names import ModelName
from pyollama.store.store import Store

log = logging.getLogger("pyollama.store.create")

_SPLIT_RE = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")
# Files a model directory carries beside its GGUF (the CLI uploads *.json too); not GGUF themselves.
_COMPANION_SUFFIXES = (".json", ".jinja", ".txt", ".md", ".model")


@dataclass
class Planned:
    """A manifest layer and the line create reports for it (Ollama's Layer.Status)."""

    layer: Layer
    status: str
    info: GGUFInfo | None = None  # the GGUF header, for model, projector, adapter and draft layers


@dataclass
class GGUFFile:
    name: str
    digest: str
    path: Path
    info: GGUFInfo
    media_type: str
    layout: GGUFLayout


@dataclass
class SplitSet:
    name: str  # the common prefix, for messages
    parts: list[GGUFFile]


def media_type(info: GGUFInfo) -> str:
    """Ollama's ggufLayers: adapter, projector (mmproj/clip or vision-only), else model."""
    kind = info.general_type
    if kind == "adapter":
        return MEDIA_ADAPTER
    if kind in ("projector", "mmproj") or info.architecture == "clip":
        return MEDIA_PROJECTOR
    if not info.arch_value("block_count") and info.arch_value("vision.block_count"):
        return MEDIA_PROJECTOR
    return MEDIA_MODEL


def layer_status(existed: bool, digest: str) -> str:
    return f"{'using existing' if existed else 'creating new'} layer {digest}"


def from_model(store: Store, name: ModelName) -> tuple[list[Planned], dict[str, Any]]:
    """Every layer of an existing model, marked as coming from it (Ollama's parseFromModel)."""
    manifest = store.read_manifest(name)
    planned = []
    for layer in manifest.layers:
        if not store.blobs.exists(layer.digest):
            raise CorruptManifestError(f"model '{name.display}': blob {layer.digest} is missing")
        info = None
        if layer.media_type in (MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER, MEDIA_DRAFT):
            try:
                info = store.gguf_info(store.blobs.path(layer.digest))
            except InvalidGGUFError:
                info = None  # not GGUF (e.g. a safetensors tensor model): kept as is
        copied = Layer(layer.media_type, layer.digest, layer.size, from_=name.display, name=layer.name)
        planned.append(Planned(copied, layer_status(True, layer.digest), info))
    config: dict[str, Any] = {}
    try:
        raw = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
        config = raw if isinstance(raw, dict) else {}
    except (OSError, ValueError):
        log.warning("model %s has no readable config; building a new one", name.display)
    return planned, config


def detect_type(store: Store, files: Mapping[str, str]) -> str:
    """Ollama's detectModelTypeFromFiles, made deterministic."""
    if not files:
        raise BadRequestError(ERR_NO_FILES)
    names = sorted(files)
    if any(n.endswith(".safetensors") for n in names):
        return "safetensors"
    if any(n.endswith(".gguf") for n in names):
        return "gguf"
    for n in names:
        if has_gguf_magic(blob_path(store, files[n])):
            return "gguf"
    raise BadRequestError(ERR_UNKNOWN_TYPE)


def check_loadable(path: Path, name: str) -> None:
    """Load the model file as serving would (memory-mapped, weights not read): a file that
    parses as GGUF but lacks what its architecture needs (hyperparameters, tensors), or names
    an architecture llama.cpp does not know, is refused now instead of at the first request."""
    from pyollama.llama import Model

    try:
        model = Model(str(path), use_mmap=True, repack=False)
    except RuntimeError as exc:
        reason = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
        raise BadRequestError(f"{name}: llama.cpp cannot load this model: {reason}") from None
    del model


def blob_path(store: Store, digest: str) -> Path:
    path = store.blobs.path(digest)
    if not path.is_file():
        raise NotFoundError(f'blob "{digest}" not found')
    return path


def read_gguf_file(store: Store, name: str, digest: str) -> GGUFFile:
    # InvalidGGUFError is a 400 with Ollama's "supplied file was not in GGUF format".
    path = blob_path(store, digest)
    info = store.gguf_info(path)
    layout = read_layout(path, info.alignment)
    return GGUFFile(name, digest, path, info, media_type(info), layout)


def gguf_files(store: Store, files: Mapping[str, str]) -> tuple[list[GGUFFile], list[SplitSet]]:
    singles: list[GGUFFile] = []
    groups: dict[str, list[tuple[int, int, GGUFFile]]] = {}
    for name in sorted(files):
        digest = files[name]
        companion = not name.endswith(".gguf") and name.endswith(_COMPANION_SUFFIXES)
        if companion and not has_gguf_magic(blob_path(store, digest)):
            continue  # a config or tokenizer file uploaded beside the GGUF
        entry = read_gguf_file(store, name, digest)
        match = _SPLIT_RE.match(name.rsplit("/", 1)[-1])
        count = entry.info.metadata.get("split.count", 0)
        if match and isinstance(count, int) and count > 1:
            index, total = int(match.group(2)), int(match.group(3))
            groups.setdefault(match.group(1), []).append((index, total, entry))
        else:
            singles.append(entry)
    splits = [check_split(prefix, parts) for prefix, parts in sorted(groups.items())]
    models = [e for e in singles if e.media_type == MEDIA_MODEL] + [s.parts[0] for s in splits]
    if len(models) > 1:
        raise BadRequestError("more than one model file was supplied; give one model (or one split set)")
    if not models:
        raise BadRequestError("no model file was supplied, only projectors or adapters")
    return singles, splits


def check_split(prefix: str, parts: list[tuple[int, int, GGUFFile]]) -> SplitSet:
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
    return SplitSet(prefix, [entry for _, _, entry in parts])


def check_safetensors(store: Store, files: Mapping[str, str]) -> None:
    """What can be told before converting: the config names an architecture we convert."""
    from pyollama.store.convert import SUPPORTED_ARCHITECTURES

    for digest in files.values():
        blob_path(store, digest)
    if "config.json" not in files:
        raise BadRequestError("config.json not found")
    try:
        config = json.loads(blob_path(store, files["config.json"]).read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"config.json: {exc}") from None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    first = architectures[0] if isinstance(architectures, list) and architectures else None
    # Anything else wrong with config.json is the converter's to report, in its words.
    if isinstance(first, str) and first not in SUPPORTED_ARCHITECTURES:
        raise BadRequestError(f'unsupported architecture "{first}"')


def adapters(store: Store, files_by_name: Mapping[str, str]) -> list[Planned]:
    files = check_file_map(files_by_name)
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
        entry = read_gguf_file(store, name, digest)
        if entry.media_type != MEDIA_ADAPTER:
            raise BadRequestError(f'{name} is not a LoRA adapter (its general.type is not "adapter")')
        out.append(
            Planned(
                Layer(MEDIA_ADAPTER, digest, entry.path.stat().st_size), layer_status(True, digest), entry.info
            )
        )
    return out


def model_info(
    base: list[Planned], singles: list[GGUFFile], splits: list[SplitSet]
) -> GGUFInfo | None:
    for item in base:
        if item.layer.media_type == MEDIA_MODEL and item.info is not None:
            return item.info
    for entry in singles:
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
