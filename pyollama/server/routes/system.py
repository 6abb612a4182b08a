"""`/` and `/api/version`: liveness and version.

`/api/version` answers Ollama's shape, `{"version": ...}`. With `?verbose=1`
(pyollama's extension) it adds `"system"`: `pyollama.system_info()`, the
backends and devices this build of llama.cpp carries.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

import pyollama
from pyollama.server.responses import json_response

log = logging.getLogger("pyollama.server")

bp = Blueprint("system", __name__)

_TRUE = ("1", "t", "true", "yes", "on")


@bp.route("/", methods=["GET", "HEAD"])
def root() -> Response:
    return Response("Ollama is running", status=200, content_type="text/plain; charset=utf-8")


def _system_info() -> dict[str, Any]:
    try:
        return pyollama.system_info()
    except ImportError as exc:  # a tree without the native build still answers
        log.warning("system_info unavailable: %s", exc)
        return {"error": f"native module unavailable: {exc}"}


@bp.route("/api/version", methods=["GET", "HEAD"])
def version() -> Response:
    body: dict[str, Any] = {"version": pyollama.__version__}
    if request.args.get("verbose", "").lower() in _TRUE:
        body["system"] = _system_info()
    return json_response(body)
