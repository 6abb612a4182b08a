"""`POST /api/embed` and the legacy `POST /api/embeddings` (API.md §7, §8)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.server import get_state
from pyollama.server.bodies import EmbeddingsRequest, EmbedRequest, read_json
from pyollama.server.inference import embed_body, legacy_embedding
from pyollama.server.responses import json_response

bp = Blueprint("embed", __name__)


@bp.post("/api/embed")
def embed() -> Response:
    started = time.perf_counter_ns()
    req = EmbedRequest.from_json(read_json(request))
    return json_response(embed_body(get_state(), req, started))


@bp.post("/api/embeddings")
def embeddings() -> Response:
    started = time.perf_counter_ns()
    req = EmbeddingsRequest.from_json(read_json(request))
    return json_response(legacy_embedding(get_state(), req, started))
