"""`/` and `/api/version`: liveness and version; and the `Server` header on every response.

`/api/version` answers Ollama's shape, `{"version": ...}`, with the version of the Ollama API
pyollama serves (`pyollama.OLLAMA_VERSION`: clients gate features on it), and pyollama's own
version beside it in `pyollama_version`. With `?verbose=1` (pyollama's extension) it adds
`"system"`: `pyollama.system_info()`, the backends and devices this build of llama.cpp carries.
Every response names both versions in its `Server` header (Ollama sends none).
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
SERVER_HEADER = f"pyollama/{pyollama.__version__} (Ollama API {pyollama.OLLAMA_VERSION})"


@bp.after_app_request
def _server_header(response: Response) -> Response:
    # Also on errors and on answers from the request guards (they are finalized the same way);
    # waitress adds its own `Server` only where the app sent none.
    response.headers["Server"] = SERVER_HEADER
    return response


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
    body: dict[str, Any] = {"version": pyollama.OLLAMA_VERSION, "pyollama_version": pyollama.__version__}
    if request.args.get("verbose", "").lower() in _TRUE:
        body["system"] = _system_info()
    return json_response(body)
