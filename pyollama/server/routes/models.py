"""Local models: `/api/tags`, `/api/show`, `/api/copy`, `/api/delete`, `/api/ps`."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from flask import Blueprint, Response, request

from pyollama.config import go_quote
from pyollama.errors import BadRequestError, NotFoundError, PyollamaError
from pyollama.golang.time import format_rfc3339 as rfc3339
from pyollama.options import option_note
from pyollama.server import get_state
from pyollama.server.bodies import COPY_SPEC, NAME_SPEC, SHOW_SPEC, decode_struct, model_field, read_json
from pyollama.server.responses import empty_response, json_response
from pyollama.store.model import ModelRecord
from pyollama.store.modelfile import format_parameters, render_modelfile
from pyollama.store.names import ModelName

log = logging.getLogger("pyollama.server")

bp = Blueprint("models", __name__)

# /api/show leaves out arrays longer than this unless `verbose` (token lists, merges).
_SHOW_ARRAY_LIMIT = 5
_DEFAULT_TEMPLATE = "{{ .Prompt }}"


def _info_value(value: Any, verbose: bool) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if not verbose and len(value) > _SHOW_ARRAY_LIMIT:
            return []
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Inf; Go would fail the whole response
    return value


def model_info(record: ModelRecord, verbose: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(`model_info`, `tensors`) from the GGUF header, as /api/show reports them."""
    info = record.gguf_info()
    if info is None:
        return {}, []
    out: dict[str, Any] = {}
    for key, value in info.metadata.items():
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        out[key] = _info_value(value, verbose)
    if info.parameter_count and "general.parameter_count" not in out:
        out["general.parameter_count"] = info.parameter_count
    out = dict(sorted(out.items()))  # Go marshals map keys sorted
    tensors = [{"name": name, "type": kind, "shape": list(shape)} for name, kind, shape in info.tensors]
    return out, tensors


def _projector_info(record: ModelRecord, verbose: bool) -> dict[str, Any] | None:
    infos = record.projector_infos()
    if not infos:
        return None
    return dict(sorted((k, _info_value(v, verbose)) for k, v in infos[0].metadata.items()))


def model_template(record: ModelRecord) -> str:
    """The Go template, else the GGUF's Jinja template (native mode), else Ollama's default."""
    if record.template is not None:
        return record.template
    info = record.gguf_info()
    if info is not None and info.chat_template:
        return info.chat_template
    return _DEFAULT_TEMPLATE


# -- routes -----------------------------------------------------------------------------------


@bp.route("/api/tags", methods=["GET", "HEAD"])
def tags() -> Response:
    store = get_state().store
    models = []
    for entry in store.list_models():
        item: dict[str, Any] = {
            "name": entry.name.display,
            "model": entry.name.display,
            "modified_at": rfc3339(entry.modified_at),
            "size": entry.size,
            "digest": entry.digest,
        }
        try:
            record = store.load_record(entry.name)
            item["details"] = record.details()
            capabilities = record.capabilities()
        except PyollamaError as exc:  # one damaged model must not hide the others
            log.warning("model %s: %s", entry.name.display, exc)
            item["details"] = {"parent_model": "", "format": "", "family": "", "families": None,
                               "parameter_size": "", "quantization_level": ""}
            capabilities = []
        if capabilities:
            item["capabilities"] = capabilities
        models.append(item)
    return json_response({"models": models})


@bp.post("/api/show")
def show() -> Response:
    state = get_state()
    fields = decode_struct(read_json(request), SHOW_SPEC, "ShowRequest")
    raw = model_field(fields)
    if not raw:
        raise BadRequestError("model is required")
    name = ModelName.parse(raw)
    found = state.store.resolve(name)
    if found is None:
        raise NotFoundError(f"model '{name.display}' not found")
    record = state.store.load_record(found)
    verbose = bool(fields.get("verbose", False))
    system = fields.get("system") or record.system or ""
    template = model_template(record)
    modelfile_params = {**record.params, **fields.get("options", {})}
    body: dict[str, Any] = {}
    if record.license:
        body["license"] = "\n".join(record.license)
    # Ollama's modelfile always has a TEMPLATE line, and shows the request's system and options.
    shown = dataclasses.replace(record, template=template, system=system, params=modelfile_params)
    body["modelfile"] = render_modelfile(shown)
    parameters = format_parameters(record.params)
    if parameters:
        body["parameters"] = parameters
    # pyollama's own: what becomes of the shown options that Ollama and pyollama treat differently
    notes = {name: note for name in modelfile_params if (note := option_note(name)) is not None}
    if notes:
        body["option_notes"] = notes
    body["template"] = template
    if system:
        body["system"] = system
    for key in ("renderer", "parser", "requires"):
        value = record.config.get(key)
        if isinstance(value, str) and value:
            body[key] = value
    body["details"] = record.details()
    if record.messages:
        body["messages"] = [{"role": m.get("role", ""), "content": m.get("content", "")} for m in record.messages]
    info, tensors = model_info(record, verbose)
    body["model_info"] = info
    projector = _projector_info(record, verbose)
    if projector:
        body["projector_info"] = projector
    if tensors:
        body["tensors"] = tensors
    capabilities = record.capabilities()
    if capabilities:
        body["capabilities"] = capabilities
    body["modified_at"] = rfc3339(record.modified_at)
    return json_response(body)


@bp.post("/api/copy")
def copy() -> Response:
    state = get_state()
    store = state.store
    fields = decode_struct(read_json(request), COPY_SPEC, "CopyRequest")
    source, destination = fields.get("source", ""), fields.get("destination", "")
    try:
        src = ModelName.parse(source)
    except BadRequestError:
        raise BadRequestError(f"source {go_quote(source)} is invalid") from None
    try:
        dst = ModelName.parse(destination)
    except BadRequestError:
        raise BadRequestError(f"destination {go_quote(destination)} is invalid") from None
    try:
        store.copy(src, dst, prune=not state.config.noprune)
    except NotFoundError:
        raise NotFoundError(f"model {go_quote(source)} not found") from None
    return empty_response()


@bp.delete("/api/delete")
def delete() -> Response:
    store = get_state().store
    fields = decode_struct(read_json(request), NAME_SPEC, "DeleteRequest")
    raw = model_field(fields)
    if not raw:
        raise BadRequestError("model is required")
    try:
        name = ModelName.parse(raw)
    except BadRequestError:
        raise BadRequestError(f"name {go_quote(raw)} is invalid") from None
    if store.resolve(name) is None:
        raise NotFoundError(f"model '{raw}' not found")
    try:
        store.delete(name)
    except NotFoundError:  # deleted concurrently
        raise NotFoundError(f"model '{raw}' not found") from None
    return empty_response()


@bp.get("/api/ps")
def ps() -> Response:
    scheduler = get_state().started_scheduler()
    models = []
    loaded_models = scheduler.loaded() if scheduler is not None else []
    for loaded in sorted(loaded_models, key=lambda m: m.expires_at, reverse=True):
        models.append(
            {
                "name": loaded.name,
                "model": loaded.name,
                "size": loaded.size,
                "digest": loaded.record.digest,
                "details": loaded.record.details(),
                "expires_at": rfc3339(loaded.expires_at),
                "size_vram": loaded.size_vram,
                "context_length": loaded.context_length,
                # pyollama's own: False when the weights stay in the GGUF's layout on the CPU
                # (PYOLLAMA_REPACK=0, or after a crash in the model's first decode)
                "repack": loaded.repack,
                # pyollama's own: the generation context's attention path, "on"/"off" as set by
                # OLLAMA_FLASH_ATTENTION or measured on this CPU for the model, "auto" on a GPU
                "flash_attention": loaded.flash_attention,
            }
        )
    return json_response({"models": models})
