"""A stored model, read the way Ollama's GetModel reads it: layers by media type.

`ModelRecord` is what the server needs for /api/show, /api/tags and for
loading: blob paths for weights, adapters and projectors, the small text/JSON
layers decoded, the config blob, the GGUF headers of the model and projector
blobs, and Ollama's `details` and `capabilities`. It is plain data: `read_record`
gets what it reads from (the blobs, a GGUF header reader) as arguments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyollama.errors import PyollamaError
from pyollama.gguf import FIM_ROLES, GGUFInfo, InvalidGGUFError
from pyollama.store.blobs import BlobStore
from pyollama.store.manifest import (
    MEDIA_ADAPTER,
    MEDIA_DRAFT,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Manifest,
)
from pyollama.store.names import ModelName
from pyollama.templates.prompt import template_capabilities

log = logging.getLogger("pyollama.store")

# Small layers are read whole; anything this large is not a template or a params map.
_MAX_TEXT_LAYER = 64 << 20



class ModelBlobError(PyollamaError):
    """A layer blob the manifest names is missing or unreadable: the store is damaged (500)."""

    status = 500


@dataclass
class ModelEntry:
    """One stored model as listed: its manifest and the file's identity."""

    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest file bytes: Ollama's model ID
    modified_at: datetime  # manifest mtime, aware, local time zone
    size: int


@dataclass
class ModelRecord:
    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest bytes
    modified_at: datetime
    size: int
    model_path: Path | None
    projector_paths: list[Path] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    draft_path: Path | None = None
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    license: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    parent_model: str = ""
    # GGUF headers of the model and projector blobs; None / left out where a blob is not a readable GGUF.
    model_gguf: GGUFInfo | None = field(default=None, repr=False, compare=False)
    projector_ggufs: list[GGUFInfo] = field(default_factory=list, repr=False, compare=False)

    def gguf_info(self) -> GGUFInfo | None:
        """The model blob's GGUF header, or None when there is no readable GGUF model layer."""
        return self.model_gguf

    def projector_infos(self) -> list[GGUFInfo]:
        return list(self.projector_ggufs)

    def details(self) -> dict[str, Any]:
        """Ollama's `details` object, in its JSON field order. The config blob says what it says;
        where it lacks the quantization level or the two (newer, omitempty) lengths, as for a model
        created from a plain GGUF, they come from the model's GGUF header."""
        cfg = self.config
        info = self.gguf_info()
        families = cfg.get("model_families")
        quantization = cfg.get("file_type", "") or ""
        if not quantization and info is not None and info.file_type is not None:
            quantization = info.file_type_name
        out: dict[str, Any] = {
            "parent_model": self.parent_model,
            "format": cfg.get("model_format", "") or "",
            "family": cfg.get("model_family", "") or "",
            "families": list(families) if isinstance(families, list) else None,
            "parameter_size": cfg.get("model_type", "") or "",
            "quantization_level": quantization,
        }
        for key in ("context_length", "embedding_length"):
            value = cfg.get(key)
            if not _positive_int(value) and info is not None:
                value = info.context_length if key == "context_length" else info.embedding_length
            if _positive_int(value):
                out[key] = value
        return out

    def capabilities(self) -> list[str]:
        """Ollama's Model.Capabilities: from GGUF metadata, template, projectors and config."""
        caps: list[str] = []

        def add(cap: str) -> None:
            if cap not in caps:
                caps.append(cap)

        info = self.gguf_info()
        if info is not None:
            add("embedding" if info.arch_value("pooling_type") is not None else "completion")
            if info.arch_value("vision.block_count") is not None:
                add("vision")
            if info.arch_value("audio.block_count") is not None:
                add("audio")
        elif self.model_path is not None and self.config.get("model_format") == "gguf":
            add("completion")
        if self.template is not None:
            for cap in template_capabilities(self.template):
                add(cap)
        elif info is not None and info.chat_template:
            # Without a Go template the GGUF's Jinja template is rendered (Ollama's native mode).
            chat = info.chat_template
            if "tools" in chat or "tool_call" in chat:
                add("tools")
            if "<think>" in chat and "</think>" in chat:
                add("thinking")
        if "completion" in caps and info is not None and all(role in info.fim_tokens for role in FIM_ROLES):
            # A template without `.Suffix` (or none) does not stop it: the engine then builds the
            # fill-in-the-middle prompt from these tokens, as llama-server's /infill does.
            add("insert")
        if self.projector_paths:
            add("vision")
            if any(p.metadata.get("clip.has_audio_encoder") for p in self.projector_infos()):
                add("audio")
        if self.config.get("model_family") in ("gptoss", "gpt-oss"):
            add("thinking")
        extra = self.config.get("capabilities")
        if isinstance(extra, list):
            for cap in extra:
                if isinstance(cap, str):
                    add(cap)
        return caps


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _read_layer(blobs: BlobStore, digest: str, name: ModelName) -> bytes:
    path = blobs.path(digest)
    try:
        if path.stat().st_size > _MAX_TEXT_LAYER:
            raise ModelBlobError(f"model '{name.display}': layer {digest} is too large")
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelBlobError(f"model '{name.display}': blob {digest} is missing") from None


def _read_json(blobs: BlobStore, digest: str, name: ModelName) -> Any:
    try:
        return json.loads(_read_layer(blobs, digest, name))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelBlobError(f"model '{name.display}': layer {digest} is not valid JSON: {exc}") from None


def _read_gguf(read_gguf: Callable[[Path], GGUFInfo], path: Path) -> GGUFInfo | None:
    if not path.is_file():
        return None
    try:
        return read_gguf(path)
    except (InvalidGGUFError, OSError):
        return None


def read_record(entry: ModelEntry, blobs: BlobStore, read_gguf: Callable[[Path], GGUFInfo]) -> ModelRecord:
    """Read one listed model's small layers and GGUF headers (`read_gguf`: the store's cached reader)."""
    found, manifest = entry.name, entry.manifest
    record = ModelRecord(
        name=found,
        manifest=manifest,
        digest=entry.digest,
        modified_at=entry.modified_at,
        size=entry.size,
        model_path=None,
    )
    try:
        config = _read_json(blobs, manifest.config.digest, found)
    except ModelBlobError as exc:
        # A model with a damaged config still runs; only its details are empty.
        log.warning("%s", exc)
        config = {}
    record.config = config if isinstance(config, dict) else {}

    for layer in manifest.layers:
        media = layer.media_type
        if media == MEDIA_MODEL:
            # Ollama expects one; with several, the last wins.
            record.model_path = blobs.path(layer.digest)
            record.parent_model = layer.from_ or ""
        elif media == MEDIA_PROJECTOR:
            record.projector_paths.append(blobs.path(layer.digest))
        elif media == MEDIA_ADAPTER:
            record.adapter_paths.append(blobs.path(layer.digest))
        elif media == MEDIA_DRAFT:
            record.draft_path = blobs.path(layer.digest)
        elif media in (MEDIA_TEMPLATE, MEDIA_PROMPT):
            record.template = _read_layer(blobs, layer.digest, found).decode("utf-8", errors="replace")
        elif media == MEDIA_SYSTEM:
            record.system = _read_layer(blobs, layer.digest, found).decode("utf-8", errors="replace")
        elif media == MEDIA_LICENSE:
            record.license.append(_read_layer(blobs, layer.digest, found).decode("utf-8", errors="replace"))
        elif media == MEDIA_PARAMS:
            params = _read_json(blobs, layer.digest, found)
            if not isinstance(params, dict):
                raise ModelBlobError(f"model '{found.display}': params layer is not a JSON object")
            record.params.update(params)
        elif media == MEDIA_MESSAGES:
            messages = _read_json(blobs, layer.digest, found)
            if not isinstance(messages, list):
                raise ModelBlobError(f"model '{found.display}': messages layer is not a JSON array")
            record.messages = [m for m in messages if isinstance(m, dict)]
        # Other media types (embed, tensor, json) are not used by a GGUF runner.
    if record.model_path is not None:
        record.model_gguf = _read_gguf(read_gguf, record.model_path)
    record.projector_ggufs = [
        info for path in record.projector_paths if (info := _read_gguf(read_gguf, path)) is not None
    ]
    return record
