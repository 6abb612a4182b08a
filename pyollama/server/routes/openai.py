"""OpenAI-compatible endpoints (API.md §17): `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, `/v1/models`, `/v1/models/<model>`.

Each handler decodes the OpenAI body into the Ollama request (openai_bodies.py), runs the
very service behind /api/chat, /api/generate or /api/embed (inference.py), and writes the
answer back in OpenAI's shape (openai_shapes.py): one JSON object, or Server-Sent Events
(`data: {...}\\n\\n` frames ending with `data: [DONE]`, streaming.py). Errors, wherever they
arise under /v1, leave in OpenAI's shape (responses.py).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.errors import NotFoundError
from pyollama.server import get_state
from pyollama.server.bodies import read_json
from pyollama.server.inference import embed_body, start_chat, start_generate
from pyollama.server.openai_bodies import parse_chat_completion, parse_completion, parse_embedding
from pyollama.server.openai_shapes import (
    ChatChunks,
    CompletionChunks,
    chat_completion,
    completion,
    embedding_list,
    model_object,
    new_id,
)
from pyollama.server.responses import JSON, json_response
from pyollama.server.streaming import sse_wire
from pyollama.store.names import ModelName

bp = Blueprint("openai", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    started = time.perf_counter_ns()
    created = int(time.time())
    req = parse_chat_completion(read_json(request))
    completion_id = new_id("chatcmpl")
    run = start_chat(get_state(), req.chat, started)
    if isinstance(run, dict):  # answered at once (load, `_debug_render_only`)
        return json_response(chat_completion(completion_id, created, run), content_type=JSON)
    if req.chat.stream:
        return run.stream(sse_wire(ChatChunks(completion_id, created, req.include_usage).event))
    final = run.collect()
    return json_response(chat_completion(completion_id, int(time.time()), final), content_type=JSON)


@bp.post("/v1/completions")
def completions() -> Response:
    started = time.perf_counter_ns()
    created = int(time.time())
    req = parse_completion(read_json(request))
    completion_id = new_id("cmpl")
    run = start_generate(get_state(), req.generate, started)
    if isinstance(run, dict):
        return json_response(completion(completion_id, created, run), content_type=JSON)
    if req.generate.stream:
        return run.stream(sse_wire(CompletionChunks(completion_id, created, req.include_usage).event))
    final = run.collect()
    return json_response(completion(completion_id, int(time.time()), final), content_type=JSON)


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    started = time.perf_counter_ns()
    req = parse_embedding(read_json(request))
    body = embed_body(get_state(), req.embed, started)
    return json_response(embedding_list(req.embed.model, body, req.encoding_format), content_type=JSON)


@bp.get("/v1/models")
def list_models() -> Response:
    data = [
        model_object(entry.name.display, int(entry.modified_at.timestamp()), entry.name.namespace)
        for entry in get_state().store.list_models()
    ]
    # Ollama answers `null` when there are no models (a nil Go slice).
    return json_response({"object": "list", "data": data or None}, content_type=JSON)


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    """Ollama runs /api/show for the name and answers with the name as given."""
    state = get_state()
    name = ModelName.parse(model)
    found = state.store.resolve(name)
    if found is None:
        raise NotFoundError(f"model '{name.display}' not found")
    record = state.store.load_record(found)
    return json_response(
        model_object(model, int(record.modified_at.timestamp()), name.namespace), content_type=JSON
    )


__all__ = ["bp"]
