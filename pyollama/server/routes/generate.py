"""`POST /api/generate` (API.md §2): a prompt completed, streamed or not.

The checks, the load and the completion are the service's (`inference.start_generate`);
this handler decodes the body and writes the answer.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.server import get_state
from pyollama.server.bodies import GenerateRequest, read_json
from pyollama.server.inference import start_generate
from pyollama.server.responses import json_response

bp = Blueprint("generate", __name__)


@bp.post("/api/generate")
def generate() -> Response:
    started = time.perf_counter_ns()
    req = GenerateRequest.from_json(read_json(request))
    run = start_generate(get_state(), req, started)
    return json_response(run) if isinstance(run, dict) else run.respond(req.stream)
