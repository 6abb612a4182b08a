"""`HEAD/POST /api/blobs/<digest>`: check for and upload a raw blob (API.md §9.1).

The upload is streamed from the request body into the blob store in chunks,
hashed as it goes and never held whole in memory; a digest mismatch leaves
nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, request

from pyollama.errors import NotFoundError
from pyollama.server import get_state
from pyollama.server.responses import empty_response
from pyollama.store.blobs import parse_digest

bp = Blueprint("blobs", __name__)

_CHUNK = 1 << 20


def _body_chunks() -> Iterator[bytes]:
    stream = request.stream
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield chunk


@bp.route("/api/blobs/<path:digest>", methods=["HEAD"])
def head_blob(digest: str) -> Response:
    canonical = parse_digest(digest)
    if not get_state().store.blobs.exists(canonical):
        raise NotFoundError(f'blob "{digest}" not found')
    return empty_response()


@bp.route("/api/blobs/<path:digest>", methods=["POST"])
def create_blob(digest: str) -> Response:
    blobs = get_state().store.blobs
    canonical = parse_digest(digest)
    if blobs.exists(canonical):
        return empty_response(200)
    # The stored digest must equal the path parameter exactly, as Ollama compares strings.
    blobs.write(_body_chunks(), expected=digest)
    return empty_response(201)
