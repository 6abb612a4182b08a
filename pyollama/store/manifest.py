"""Manifests (Docker image manifest v2, schema 2): media types and the manifest codec.

Locally written manifests are compact JSON with a trailing newline, as Go's
json.Encoder writes them (pyollama.golang.json.encode); pulled ones are stored byte for byte, because the
model ID is the sha256 of the manifest file (`manifest_digest`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pyollama.errors import BadRequestError, PyollamaError
from pyollama.golang import json as gojson
from pyollama.store.blobs import parse_digest

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
        return gojson.encode(obj, sort_keys=False)

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


def manifest_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
