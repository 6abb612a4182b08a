"""JSON responses, and the one place where exceptions become HTTP responses.

Typed errors (`pyollama.errors.PyollamaError`) carry their status. The error's
shape follows the API the path belongs to: Ollama's `{"error": "..."}`; under
`/v1` OpenAI's `{"error": {"message", "type", "param", "code"}}`; under
`/v1/messages` Anthropic's `{"type": "error", "error": {"type", "message"}, "request_id"}`.
Routing errors answer in gin's plain-text form (`404 page not found`,
`405 method not allowed`) on every path; anything unexpected is logged with its
traceback and answered with a 500 that carries no stack trace.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any

import numpy as np
import numpy.typing as npt
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from pyollama.errors import PyollamaError
from pyollama.server.auth import ApiKeyError

log = logging.getLogger("pyollama.server")

JSON = "application/json"
JSON_UTF8 = "application/json; charset=utf-8"

_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}
# Anthropic's error types by status, as Ollama's anthropic.NewError maps them
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def json_text(body: Any) -> str:
    """Compact JSON like Go's encoding/json (no spaces, non-ASCII kept as UTF-8).

    A NumPy array in the body (the vectors of an embedding reply) is written as Go writes a
    []float32 or [][]float32, with the shortest digits of each float32
    (`golang.json.format_float(x, 32)`), by `_native.float32_json`: 100k numbers in a few ms
    rather than Python's 40 ms for its longer float64 digits. json.dumps writes a one-off
    stand-in string for each array (its `default` hook runs for arrays only), and the array's
    text then takes the quoted stand-in's place."""
    arrays: list[npt.NDArray[Any]] = []
    stand_in = "pyollama-array-" + secrets.token_hex(8) + "-"

    def array_stand_in(value: Any) -> str:
        if not isinstance(value, np.ndarray):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        arrays.append(value)
        return f"{stand_in}{len(arrays) - 1}"

    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=array_stand_in)
    if not arrays:
        return text
    from pyollama import _native  # here: an app that never embeds never loads llama.cpp

    return re.sub(f'"{stand_in}(\\d+)"', lambda m: _native.float32_json(arrays[int(m.group(1))]), text)


def json_response(body: Any, status: int = 200, content_type: str = JSON_UTF8) -> Response:
    """`json_text(body)` as a response."""
    return Response(json_text(body), status=status, content_type=content_type)


def empty_response(status: int = 200) -> Response:
    """A bodiless answer without a Content-Type, as gin's `c.Status(code)`."""
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response


def error_response(message: str, status: int) -> Response:
    """Ollama's error shape."""
    return json_response({"error": message}, status)


def openai_error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: `invalid_request_error` (400), `not_found_error` (404), else `api_error`."""
    kind = _OPENAI_ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_error(status: int, message: str) -> Response:
    return json_response(openai_error_body(status, message), status, content_type=JSON)


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_ERROR_TYPES.get(status, "api_error")


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object, with a request id as Ollama's anthropic layer adds one."""
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
        "request_id": f"req_{secrets.token_hex(12)}",
    }


def is_anthropic_path(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def _error(message: str, status: int) -> Response:
    """The error in the shape of the API the request's path belongs to."""
    if is_anthropic_path(request.path):
        return json_response(anthropic_error_body(status, message), status, content_type=JSON)
    if is_openai_path(request.path):
        return openai_error(status, message)
    return error_response(message, status)


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain")


def _handle_api_key_error(exc: ApiKeyError) -> Response:
    if is_anthropic_path(request.path):
        response = _error(exc.message, exc.status)
    elif is_openai_path(request.path):
        body = openai_error_body(exc.status, exc.message, code="invalid_api_key")
        body["error"]["type"] = "invalid_request_error"
        response = json_response(body, exc.status, content_type=JSON)
    else:
        response = error_response(exc.message, exc.status)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _handle_pyollama_error(exc: PyollamaError) -> Response:
    if exc.status >= 500:
        log.error("request failed: %s", exc.message)
    return _error(exc.message, exc.status)


def _handle_http_exception(exc: HTTPException) -> Response:
    # gin's plain texts, except inside an OpenAI route (which answers in OpenAI's shape)
    if request.url_rule is None or not is_openai_path(request.path):
        if isinstance(exc, NotFound):
            return _plain("404 page not found", 404)
        if isinstance(exc, MethodNotAllowed):
            return _plain("405 method not allowed", 405)
    return _error(exc.description or exc.name, exc.code or 500)


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return _error(str(exc) or type(exc).__name__, 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiKeyError, _handle_api_key_error)
    app.register_error_handler(PyollamaError, _handle_pyollama_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)


__all__ = [
    "JSON",
    "JSON_UTF8",
    "anthropic_error_body",
    "anthropic_error_type",
    "empty_response",
    "error_response",
    "is_anthropic_path",
    "is_openai_path",
    "json_response",
    "openai_error",
    "openai_error_body",
    "register_error_handlers",
]
