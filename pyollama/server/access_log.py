"""One structured log line per request, written when its response body is closed.

A WSGI middleware around the Flask app, not a Flask hook: Flask's request context ends when
the view returns, before a stream's body is sent, and Werkzeug does not call `call_on_close`
callbacks for direct-passthrough bodies such as the NDJSON streams. Wrapping the body in a
`ClosingIterator` runs the log at the real end of every response: after the last byte of a
stream, or when the client went away.

The line is logfmt (`key=value`) on the `pyollama.access` logger, and the same fields go to
handlers as `record.request` (a dict) for JSON formatters. With OLLAMA_DEBUG it also carries the
client address, user agent, query string, time to first token, prompt-cache hits and the
request body (truncated). A request whose client went away mid-completion is logged with status
499 and `error="request canceled"`, as Ollama answers a cancelled request (its 200 header had
already gone out).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import ClosingIterator

from pyollama.server.metrics import RECORD_KEY, RequestRecord, ServerMetrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("pyollama.access")

# A completion cancelled because its client went away: Ollama's status and text for context.Canceled.
CANCELED_STATUS = 499
CANCELED_ERROR = "request canceled"

# Request bodies kept for the debug log: only small JSON bodies, and only this much of them.
DEBUG_BODY_LIMIT = 1 << 20
DEBUG_BODY_SHOWN = 2000
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_line(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def request_fields(record: RequestRecord, environ: WSGIEnvironment, debug: bool) -> dict[str, Any]:
    """The log line's fields, in a fixed order."""
    fields: dict[str, Any] = {
        "method": record.method,
        "path": record.path,
        # A stream whose client went away was sent as 200, but ended as Ollama's 499.
        "status": CANCELED_STATUS if record.canceled else record.status,
        "model": record.model,
        "prompt_eval_count": record.prompt_eval_count,
        "eval_count": record.eval_count,
        "duration_ms": round(record.elapsed_s() * 1000, 3),
    }
    if record.canceled:
        fields["error"] = CANCELED_ERROR
    if debug:
        fields["remote"] = environ.get("REMOTE_ADDR", "")
        fields["user_agent"] = environ.get("HTTP_USER_AGENT", "")
        if environ.get("QUERY_STRING"):
            fields["query"] = environ["QUERY_STRING"]
        if record.first_token_s is not None:
            fields["ttft_ms"] = round(record.first_token_s * 1000, 3)
        fields["prompt_cache_hits"] = record.cached_count
        if record.body is not None:
            text = record.body.decode("utf-8", errors="replace")
            if len(text) > DEBUG_BODY_SHOWN:
                text = text[:DEBUG_BODY_SHOWN] + f"...({len(text) - DEBUG_BODY_SHOWN} more)"
            fields["body"] = text
    return fields


def _keep_body(environ: WSGIEnvironment, record: RequestRecord) -> None:
    """Read a small JSON body for the debug log and put it back as the app's input stream.
    Uploads (blobs: large, binary) and bodies of unknown length are never read here."""
    if record.method not in _BODY_METHODS or record.path.startswith("/api/blobs"):
        return
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if not 0 < length <= DEBUG_BODY_LIMIT:
        return
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    record.body = body


class RequestLog:
    """WSGI middleware: creates each request's `RequestRecord` (the metrics observe into it) and
    logs it, and times it, when the response body closes."""

    def __init__(self, app: WSGIApplication, metrics: ServerMetrics | None, debug: bool) -> None:
        self._app = app
        self._metrics = metrics
        self._debug = debug

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        record = RequestRecord(
            method=environ.get("REQUEST_METHOD", ""), path=environ.get("PATH_INFO", ""), metrics=self._metrics
        )
        environ[RECORD_KEY] = record
        if self._debug:
            _keep_body(environ, record)

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            record.status = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = self._app(environ, start)
        return ClosingIterator(body, lambda: self._finish(record, environ))

    def _finish(self, record: RequestRecord, environ: WSGIEnvironment) -> None:
        if self._metrics is not None:
            self._metrics.observe_duration(record)
        fields = request_fields(record, environ, self._debug)
        log.info("request %s", format_line(fields), extra={"request": fields})


__all__ = ["RequestLog", "format_line", "request_fields"]
