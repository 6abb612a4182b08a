"""OpenAI's Responses API (API.md §17, Ollama's ResponsesMiddleware): `POST /v1/responses`.

The body becomes an Ollama chat request (openai_responses_bodies.py), runs the service behind
/api/chat (inference.py), and the reply goes back as a `response` object or as the Responses
API's named SSE events (openai_responses_shapes.py). Stateless: nothing is stored, so
`previous_response_id` is never found. Errors leave in OpenAI's shape (responses.py).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.server import get_state
from pyollama.server.bodies import read_json
from pyollama.server.inference import start_chat
from pyollama.server.openai_responses_bodies import parse_responses
from pyollama.server.openai_responses_shapes import ResponsesEvents, new_item_id, whole_response
from pyollama.server.responses import JSON, json_response
from pyollama.server.streaming import stream_response

bp = Blueprint("responses", __name__)


@bp.post("/v1/responses")
def create_response() -> Response:
    started = time.perf_counter_ns()
    created = int(time.time())
    call = parse_responses(read_json(request))
    response_id = new_item_id("resp")
    run = start_chat(get_state(), call.chat, started)
    if isinstance(run, dict):  # answered at once: a load request (no input)
        if call.chat.stream:
            return stream_response(iter([run]), ResponsesEvents(call, response_id, created).wire())
        return json_response(whole_response(call, response_id, created, run), content_type=JSON)
    if call.chat.stream:
        return run.stream(ResponsesEvents(call, response_id, created).wire())
    return json_response(whole_response(call, response_id, created, run.collect()), content_type=JSON)


__all__ = ["bp"]
