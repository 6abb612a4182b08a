"""`POST /api/embed` and the legacy `POST /api/embeddings` (API.md §7, §8)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flask import Blueprint, Response, request

from pyollama.errors import BadRequestError, NotFoundError
from pyollama.server import ServerState, get_state
from pyollama.server.errors import json_response
from pyollama.server.metrics import note_prompt_tokens
from pyollama.server.requests import EmbeddingsRequest, EmbedRequest, read_json
from pyollama.server.routes.generate import acquire_runner, build_options, find_model
from pyollama.store.names import ModelName

bp = Blueprint("embed", __name__)


def normalize(vectors: list[list[float]], dimensions: int) -> list[list[float]]:
    """L2-normalise each vector; `0 < dimensions < len` truncates first (then normalises)."""
    out = []
    for vector in vectors:
        arr = np.asarray(vector, dtype=np.float64)
        if 0 < dimensions < arr.size:
            arr = arr[:dimensions]
        if not np.all(np.isfinite(arr)):
            raise BadRequestError("embedding contains NaN or Inf values")
        norm = float(np.linalg.norm(arr))
        if norm > 0:
            arr = arr / norm
        out.append(arr.astype(np.float32).tolist())
    return out


@bp.post("/api/embed")
def embed() -> Response:
    started = time.perf_counter_ns()
    req = EmbedRequest.from_json(read_json(request))
    return json_response(embed_body(get_state(), req, started))


def embed_body(state: ServerState, req: EmbedRequest, started: int) -> dict[str, Any]:
    """/api/embed's answer for a decoded request (shared with the OpenAI layer)."""
    inputs = req.inputs()
    if req.model == "":
        raise NotFoundError("model '' not found")
    name = ModelName.parse(req.model)
    record = find_model(state, name, f'model "{req.model}" not found, try pulling it first')
    runner_options, _ = build_options(state, record, req.options)
    lease = acquire_runner(state, record, runner_options, req.keep_alive, started)
    try:
        if not inputs:
            return {"model": req.model, "embeddings": []}
        result = lease.runner.embed(inputs, truncate=req.truncate)
    finally:
        lease.release()
    note_prompt_tokens(result.prompt_eval_count)
    body: dict[str, Any] = {"model": req.model, "embeddings": normalize(result.embeddings, req.dimensions)}
    timings = {
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": lease.load_ns,
        "prompt_eval_count": result.prompt_eval_count,
    }
    body.update({key: value for key, value in timings.items() if value})
    return body


@bp.post("/api/embeddings")
def embeddings() -> Response:
    started = time.perf_counter_ns()
    state = get_state()
    req = EmbeddingsRequest.from_json(read_json(request))
    if req.model == "":
        raise BadRequestError("model is required")
    name = ModelName.parse(req.model)
    record = find_model(state, name, f'model "{req.model}" not found, try pulling it first')
    runner_options, _ = build_options(state, record, req.options)
    lease = acquire_runner(state, record, runner_options, req.keep_alive, started)
    try:
        if req.prompt == "":
            return json_response({"embedding": []})
        result = lease.runner.embed([req.prompt])
    finally:
        lease.release()
    note_prompt_tokens(result.prompt_eval_count)
    # The legacy endpoint returns the runner's vector as it is, not normalised.
    return json_response({"embedding": [float(x) for x in result.embeddings[0]]})
