"""OpenAI-compatible endpoints (API.md §17): `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, `/v1/models`, `/v1/models/<model>`.

Each handler translates the OpenAI body into the Ollama request (openai_compat.py), runs the
very code behind /api/chat, /api/generate or /api/embed (`start_chat`, `start_generate`,
`embed_body`), and translates the answer back: one JSON object, or Server-Sent Events
(`data: {...}\\n\\n` frames ending with `data: [DONE]`). Errors, wherever they arise, leave in
OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Streams are primed like the NDJSON ones: an error before the first token keeps its HTTP status;
a later one becomes a final `data: {"error": ...}` frame (which the `openai` client raises),
with no `[DONE]` after it. When the client goes away the body is closed, which cancels the
completion and releases the runner.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from pyollama.errors import NotFoundError, PyollamaError
from pyollama.server import get_state
from pyollama.server.errors import json_response
from pyollama.server.openai_compat import (
    DONE_FRAME,
    ChatChunks,
    CompletionChunks,
    chat_completion,
    completion,
    embedding_list,
    error_body,
    model_object,
    new_id,
    parse_chat_completion,
    parse_completion,
    parse_embedding,
    sse_frame,
)
from pyollama.server.requests import read_json
from pyollama.server.routes.chat import start_chat
from pyollama.server.routes.embed import embed_body
from pyollama.server.routes.generate import InferenceRun, start_generate
from pyollama.server.streaming import prime
from pyollama.store.names import ModelName

log = logging.getLogger("pyollama.server")

bp = Blueprint("openai", __name__)

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def openai_error(status: int, message: str) -> Response:
    return json_response(error_body(status, message), status, content_type=JSON)


@bp.errorhandler(PyollamaError)
def _pyollama_error(exc: PyollamaError) -> Response:
    if exc.status >= 500:
        log.error("request failed: %s", exc.message)
    return openai_error(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return openai_error(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return openai_error(500, str(exc) or type(exc).__name__)


def _sse_body(
    first: Mapping[str, Any], events: Iterator[dict[str, Any]], translate: Callable[[Mapping[str, Any]], list[Any]]
) -> Iterator[bytes]:
    try:
        for event in itertools.chain([first], events):
            for chunk in translate(event):
                yield sse_frame(chunk)
        yield DONE_FRAME
    except PyollamaError as exc:
        yield sse_frame(error_body(exc.status, exc.message))
    except Exception as exc:  # a crash mid-stream still ends the stream with an error frame
        log.exception("stream failed")
        yield sse_frame(error_body(500, str(exc) or type(exc).__name__))
    finally:
        events.close()  # type: ignore[attr-defined]  # cancels an unfinished completion


def _event_stream(run: InferenceRun, translate: Callable[[Mapping[str, Any]], list[Any]]) -> Response:
    first, ok = prime(run.events, [run.release])  # errors before any output keep their status
    if not ok:
        run.release()
        return Response(DONE_FRAME, status=200, content_type=EVENT_STREAM)
    response = Response(_sse_body(first, run.events, translate), status=200, content_type=EVENT_STREAM)
    response.call_on_close(run.release)
    return response


def _answered(response: Response) -> dict[str, Any]:
    """The Ollama object of a request answered at once (load, `_debug_render_only`)."""
    body = response.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    started = time.perf_counter_ns()
    created = int(time.time())
    req = parse_chat_completion(read_json(request))
    completion_id = new_id("chatcmpl")
    run = start_chat(get_state(), req.chat, started)
    if isinstance(run, Response):
        return json_response(chat_completion(completion_id, created, _answered(run)), content_type=JSON)
    if req.chat.stream:
        return _event_stream(run, ChatChunks(completion_id, created, req.include_usage).event)
    final = run.collect()
    return json_response(chat_completion(completion_id, int(time.time()), final), content_type=JSON)


@bp.post("/v1/completions")
def completions() -> Response:
    started = time.perf_counter_ns()
    created = int(time.time())
    req = parse_completion(read_json(request))
    completion_id = new_id("cmpl")
    run = start_generate(get_state(), req.generate, started)
    if isinstance(run, Response):
        return json_response(completion(completion_id, created, _answered(run)), content_type=JSON)
    if req.generate.stream:
        return _event_stream(run, CompletionChunks(completion_id, created, req.include_usage).event)
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


__all__ = ["bp", "openai_error"]
