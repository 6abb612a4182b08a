"""A create request (`POST /api/create`, decoded) and its checks, in Ollama's words and order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyollama.errors import BadRequestError, PyollamaError
from pyollama.store.blobs import parse_digest
from pyollama.store.names import ModelName

# Ollama's error texts (server/create.go).
ERR_FILE_PATH = "file path must be relative"
ERR_NO_SOURCE = "neither 'from' or 'files' was specified"
ERR_NO_FILES = "no files provided to convert"
ERR_ONE_ADAPTER = "only one adapter is currently supported"
ERR_UNKNOWN_TYPE = "unknown type"
# Ollama answers this one with 500; it is the client's request that cannot be met, so 400 here.
ERR_QUANTIZE_SOURCE = "quantization is only supported for F16, BF16 and F32 models"

# Fetches a `from` model that is not in the store, yielding its progress objects.
Pull = Callable[[ModelName], Iterator[dict[str, Any]]]


@dataclass
class CreateRequest:
    """`POST /api/create`, decoded (API.md §9.2). Empty strings mean "not given", as in Ollama."""

    model: str
    from_: str | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    draft_files: dict[str, str] | None = None  # the DRAFT model for speculative decoding
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    quantize: str | None = None
    draft_quantize: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def valid_file_path(name: str) -> bool:
    """Go's fs.ValidPath, minus "." itself (nothing can be written there), and without
    backslashes or NULs, which would name something else on disk than the client meant."""
    if not name or name == "." or "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def check_file_map(files: Mapping[str, str]) -> dict[str, str]:
    """Check a `files`, `adapters` or `draft_files` map: relative paths, well-formed digests;
    canonical digests out."""
    for name, digest in files.items():
        if not valid_file_path(name):
            raise BadRequestError(ERR_FILE_PATH)
        if not digest:
            raise BadRequestError("invalid digest format")
    return {name: parse_digest(digest) for name, digest in files.items()}


def check_template(template: str) -> None:
    """Parse a Go template with pyollama's renderer; `template error: ...` (400) if it does not parse."""
    # Imported here: templates is a sibling layer, needed only when a template is given.
    from pyollama.templates.gotext import Template

    try:
        Template.parse(template)
    except (PyollamaError, ValueError, SyntaxError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        if not message.startswith("template error"):
            message = f"template error: {message}"
        raise BadRequestError(message) from None


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


def apply_info(config: dict[str, Any], info: Mapping[str, Any]) -> None:
    check_info(info)
    for key, value in info.items():
        spec = _INFO_FIELDS.get(key)
        if spec is not None and value not in ("", None, []):
            config[spec[0]] = int(value) if spec[1] == "count" else value
