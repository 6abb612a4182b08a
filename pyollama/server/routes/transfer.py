"""`POST /api/pull` and `POST /api/push` (API.md §14, §15): registry transfers with progress.

Progress objects stream as NDJSON, or only the last one with `stream:false`.
A client that goes away sets the transfer's cancel event: the registry code
stops at its next check and leaves resumable partial files, never a half-written model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from pyollama.errors import BadRequestError
from pyollama.server import get_state
from pyollama.server.bodies import TRANSFER_SPEC, decode_struct, model_field, read_json
from pyollama.server.streaming import progress_response
from pyollama.store.names import ModelName

bp = Blueprint("transfer", __name__)


def _progress(items: Iterator[Any], cancel: threading.Event) -> Iterator[dict[str, Any]]:
    try:
        for item in items:
            yield item.to_json() if hasattr(item, "to_json") else dict(item)
    finally:
        cancel.set()
        close = getattr(items, "close", None)
        if close is not None:
            close()


@bp.post("/api/pull")
def pull() -> Response:
    from pyollama.store.registry import TransferOptions, pull_model

    state = get_state()
    fields = decode_struct(read_json(request), TRANSFER_SPEC, "PullRequest")
    raw = model_field(fields)
    if not raw:
        raise BadRequestError("invalid model name")
    name = ModelName.parse(raw)
    name = state.store.canonical(name)
    cancel = threading.Event()
    options = TransferOptions(prune=not state.config.noprune)
    items = pull_model(state.store, name, insecure=fields.get("insecure", False), cancel=cancel, options=options)
    return progress_response(_progress(items, cancel), fields.get("stream", True))


@bp.post("/api/push")
def push() -> Response:
    from pyollama.store.registry import push_model

    state = get_state()
    fields = decode_struct(read_json(request), TRANSFER_SPEC, "PushRequest")
    raw = model_field(fields)
    if not raw:
        raise BadRequestError("model is required")
    name = ModelName.parse(raw)
    name = state.store.resolve(name) or name
    cancel = threading.Event()
    items = push_model(state.store, name, insecure=fields.get("insecure", False), cancel=cancel)
    return progress_response(_progress(items, cancel), fields.get("stream", True))
