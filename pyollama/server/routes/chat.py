"""`POST /api/chat` (API.md §3): conversations, tools and thinking, streamed or not.

The checks, the load and the completion are the service's (`inference.start_chat`);
this handler decodes the body and writes the answer.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.server import get_state
from pyollama.server.bodies import ChatRequest, read_json
from pyollama.server.inference import start_chat
from pyollama.server.responses import json_response

bp = Blueprint("chat", __name__)


@bp.post("/api/chat")
def chat() -> Response:
    started = time.perf_counter_ns()
    req = ChatRequest.from_json(read_json(request))
    run = start_chat(get_state(), req, started)
    return json_response(run) if isinstance(run, dict) else run.respond(req.stream)
