"""The one place where exceptions become HTTP responses.

Typed errors (`pyollama.errors.PyollamaError`) carry their status; routing
errors answer in gin's plain-text form (`404 page not found`,
`405 method not allowed`); anything unexpected is logged with its traceback
and answered with a JSON 500 that carries no stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from pyollama.errors import PyollamaError

log = logging.getLogger("pyollama.server")

JSON_UTF8 = "application/json; charset=utf-8"


def json_response(body: Any, status: int = 200, content_type: str = JSON_UTF8) -> Response:
    """Compact JSON like Go's encoding/json (no spaces, non-ASCII kept as UTF-8)."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(data, status=status, content_type=content_type)


def error_response(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain")


def _handle_pyollama_error(exc: PyollamaError) -> Response:
    if exc.status >= 500:
        log.error("request failed: %s", exc.message)
    return error_response(exc.message, exc.status)


def _handle_http_exception(exc: HTTPException) -> Response:
    if isinstance(exc, NotFound):
        return _plain("404 page not found", 404)
    if isinstance(exc, MethodNotAllowed):
        return _plain("405 method not allowed", 405)
    code = exc.code or 500
    return error_response(exc.description or exc.name, code)


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(str(exc) or type(exc).__name__, 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(PyollamaError, _handle_pyollama_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
