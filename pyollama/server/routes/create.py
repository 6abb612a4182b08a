"""`POST /api/create` (API.md §9.2, §9.3): make a model from another model, a GGUF or safetensors.

The request is checked in Ollama's order (body, `files` paths and digests,
draft fields, adapter digests, the name) before anything streams; the work is
`pyollama.store.create.create_model`, whose progress objects stream as NDJSON
or, with `stream:false`, collapse into the last one. A `from` model that is
not in the store is pulled first, its progress streamed in line, as Ollama does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from pyollama.errors import BadRequestError
from pyollama.server import ServerState, get_state
from pyollama.server.bodies import (
    ANY,
    BOOL,
    MAP,
    MESSAGES,
    STRING,
    FieldType,
    Message,
    decode_struct,
    read_json,
)
from pyollama.server.streaming import progress_response
from pyollama.store.create import CreateRequest, Pull, check_file_map, check_info, create_model
from pyollama.store.create.draft import ERR_DRAFT_QUANTIZE_NO_DRAFT
from pyollama.store.names import ModelName

bp = Blueprint("create", __name__)


def _check_string_map(value: Any, path: str, struct: str) -> dict[str, str]:
    """Go's map[string]string: an object whose values are all strings."""
    fields: dict[str, Any] = MAP.check(value, path, struct)
    return {key: STRING.check(item, path, struct) for key, item in fields.items()}


STRING_MAP = FieldType("map[string]string", _check_string_map)

CREATE_SPEC: dict[str, FieldType] = {
    "model": STRING,
    "name": STRING,
    "from": STRING,
    "files": STRING_MAP,
    "adapters": STRING_MAP,
    "template": STRING,
    "license": ANY,
    "system": STRING,
    "parameters": MAP,
    "messages": MESSAGES,
    "quantize": STRING,
    "quantization": STRING,
    "stream": BOOL,
    "renderer": STRING,
    "parser": STRING,
    "requires": STRING,
    "remote_host": STRING,
    "info": MAP,
    "draft_files": STRING_MAP,
    "draft_quantize": STRING,
}


def _licenses(value: Any) -> list[str]:
    """`license` is a string or a list of strings (Ollama re-decodes it into []string)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                kind = {bool: "bool", dict: "object", list: "array"}.get(type(item), "number")
                raise BadRequestError(f"json: cannot unmarshal {kind} into Go value of type string")
        return list(value)
    raise BadRequestError("license must be a string or a list of strings")


def _message(fields: dict[str, Any]) -> dict[str, Any]:
    """A message as Ollama's messages layer stores it (api.Message, omitempty fields left out)."""
    out = Message.from_fields(fields).to_template()
    if "images" in out:  # stored as base64 text, in the same place
        out["images"] = [base64.b64encode(image).decode("ascii") for image in out["images"]]
    return out


def _check_parameters(parameters: dict[str, Any]) -> None:
    """Wrongly typed options would make every later request fail (Ollama stores them unchecked
    and answers 500 at inference); refuse them now with the same text, as a 400."""
    from pyollama.engine.options import parse_options

    parse_options(parameters)


def _puller(state: ServerState) -> Pull:
    def pull(name: ModelName) -> Iterator[dict[str, Any]]:
        from pyollama.store.registry import TransferOptions, pull_model

        options = TransferOptions(prune=not state.config.noprune)
        for progress in pull_model(state.store, name, options=options):
            yield progress.to_json()

    return pull


@bp.post("/api/create")
def create() -> Response:
    state = get_state()
    fields = decode_struct(read_json(request), CREATE_SPEC, "CreateRequest")
    files = check_file_map(fields["files"]) if "files" in fields else None
    draft_files = check_file_map(fields["draft_files"]) if "draft_files" in fields else None
    if fields.get("draft_quantize") and not draft_files:
        raise BadRequestError(ERR_DRAFT_QUANTIZE_NO_DRAFT)
    adapters = check_file_map(fields["adapters"]) if "adapters" in fields else None
    name = ModelName.parse(fields.get("model") or fields.get("name") or "")
    if fields.get("remote_host"):
        raise BadRequestError("this server cannot run this remote model")
    parameters = fields.get("parameters", {})
    _check_parameters(parameters)
    info = fields.get("info", {})
    check_info(info)
    create_request = CreateRequest(
        model=name.full,
        from_=fields.get("from") or None,
        files=files,
        adapters=adapters,
        draft_files=draft_files,
        template=fields.get("template") or None,
        system=fields.get("system") or None,
        license=_licenses(fields.get("license")),
        parameters=parameters,
        messages=[_message(m) for m in fields.get("messages", []) if m is not None],
        quantize=fields.get("quantize") or fields.get("quantization") or None,
        draft_quantize=fields.get("draft_quantize") or None,
        renderer=fields.get("renderer") or None,
        parser=fields.get("parser") or None,
        requires=fields.get("requires") or None,
        info=info,
    )
    events = create_model(state.store, create_request, prune=not state.config.noprune, pull=_puller(state))
    return progress_response(events, fields.get("stream", True))
