"""Anthropic's Messages API (API.md §2, Ollama's AnthropicMessagesMiddleware): `POST /v1/messages`,
so Anthropic clients can use local models.

The body becomes an Ollama chat request (anthropic_bodies.py), runs the service behind /api/chat
(inference.py) with thinking relaxed for models that cannot think, and the reply goes back as an
Anthropic `message` or as its named SSE events (anthropic_shapes.py). Errors, wherever they arise
under /v1/messages, leave in Anthropic's shape (responses.py).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from pyollama.errors import NotFoundError
from pyollama.server import ServerState, get_state
from pyollama.server.anthropic_bodies import parse_messages
from pyollama.server.anthropic_shapes import MessageEvents, message_response, new_message_id
from pyollama.server.bodies import ChatRequest, read_json
from pyollama.server.inference import start_chat
from pyollama.server.responses import JSON, json_response
from pyollama.store.names import ModelName

bp = Blueprint("anthropic", __name__)


def relax_thinking(state: ServerState, chat: ChatRequest) -> None:
    """Ollama's `relax_thinking`: Anthropic clients ask for thinking whatever the model, so a
    model that cannot think ignores the setting instead of refusing the request."""
    if chat.think is None:
        return
    found = state.store.resolve(ModelName.parse(chat.model))
    try:
        capabilities = state.store.load_record(found).capabilities() if found is not None else None
    except NotFoundError:  # deleted meanwhile: the chat answers that
        return
    if capabilities is not None and "thinking" not in capabilities:
        chat.think = None


@bp.post("/v1/messages")
def create_message() -> Response:
    started = time.perf_counter_ns()
    call = parse_messages(read_json(request))
    message_id = new_message_id()
    state = get_state()
    relax_thinking(state, call.chat)
    run = start_chat(state, call.chat, started)
    if isinstance(run, dict):  # never for a request with messages; kept for the type
        return json_response(message_response(message_id, run), content_type=JSON)
    if call.chat.stream:
        return run.stream(MessageEvents(message_id, call.chat.model, call.estimated_input_tokens).wire())
    return json_response(message_response(message_id, run.collect()), content_type=JSON)


__all__ = ["bp"]
