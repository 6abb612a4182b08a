"""Model names, parsed and validated like Ollama's `types/model/name.go`.

A name is `[scheme://][host/][namespace/]model[:tag]`; missing parts take
Ollama's defaults. On disk a name is the manifest path
`manifests/<host>/<namespace>/<model>/<tag>`, case preserved; lookups are
case-insensitive (see `Store.resolve`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyollama.errors import BadRequestError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

# Ollama's isValidPart, per kind: first char, following chars, max length (ASCII only).
_PART_PATTERNS: dict[str, re.Pattern[str]] = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}"),
}


def is_valid_part(kind: str, value: str) -> bool:
    """True when `value` is a valid name part of `kind` (host, namespace, model, tag)."""
    return _PART_PATTERNS[kind].fullmatch(value) is not None


def _split_bare(raw: str) -> tuple[str, str, str, str, str]:
    """Ollama's ParseNameBare: (scheme, host, namespace, model, tag); '' for absent parts.

    A separator with nothing on one side yields an invalid part, like Ollama's
    "!MISSING!" marker, so that `mm:` or `//mm` are rejected rather than defaulted.
    """
    missing = "!MISSING!"
    scheme = host = namespace = tag = ""
    rest = raw
    # The tag is only split off when the last ':' comes after the last '/', which
    # keeps a host's ':port' in the host.
    colon = rest.rfind(":")
    if colon >= 0 and colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if tag == "":
            tag = missing
    slash = rest.rfind("/")
    if slash < 0:
        return scheme, host, namespace, rest, tag
    rest, model = rest[:slash], rest[slash + 1 :]
    if model == "":
        model = missing
    slash = rest.rfind("/")
    if slash < 0:
        namespace = rest if rest != "" else missing
        return scheme, host, namespace, model, tag
    host, namespace = rest[:slash], rest[slash + 1 :]
    if namespace == "":
        namespace = missing
    if "://" in host:
        scheme, host = host.split("://", 1)
    if host == "":
        host = missing
    return scheme, host, namespace, model, tag


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name; build it with `ModelName.parse`."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME

    @classmethod
    def parse(cls, raw: str) -> ModelName:
        """Parse `raw` with Ollama's defaults; BadRequestError("invalid model name") if invalid."""
        if not isinstance(raw, str) or raw == "":
            raise BadRequestError("invalid model name")
        scheme, host, namespace, model, tag = _split_bare(raw)
        name = cls(
            host=host or DEFAULT_HOST,
            namespace=namespace or DEFAULT_NAMESPACE,
            model=model,
            tag=tag or DEFAULT_TAG,
            scheme=scheme or DEFAULT_SCHEME,
        )
        if not name.is_valid():
            raise BadRequestError("invalid model name")
        return name

    @classmethod
    def from_parts(cls, host: str, namespace: str, model: str, tag: str) -> ModelName:
        """Build from path parts (e.g. a manifest path); BadRequestError if any part is invalid."""
        name = cls(host=host, namespace=namespace, model=model, tag=tag)
        if not name.is_valid():
            raise BadRequestError("invalid model name")
        return name

    def is_valid(self) -> bool:
        return (
            is_valid_part("host", self.host)
            and is_valid_part("namespace", self.namespace)
            and is_valid_part("model", self.model)
            and is_valid_part("tag", self.tag)
            and self.scheme in ("http", "https")
        )

    @property
    def display(self) -> str:
        """Ollama's DisplayShortest: drops default host and namespace, always keeps the tag."""
        if self.host != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        """`namespace/model`, the registry repository."""
        return f"{self.namespace}/{self.model}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def manifest_parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def equal_fold(self, other: ModelName) -> bool:
        """Case-insensitive equality of all four parts (Ollama's Name.EqualFold)."""
        return all(a.casefold() == b.casefold() for a, b in zip(self.manifest_parts, other.manifest_parts))

    def __str__(self) -> str:
        return self.full
