"""`POST /api/chat` (API.md §3): conversations, tools and thinking, streamed or not."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from pyollama.engine.tool_grammar import tool_call_grammar
from pyollama.errors import BadRequestError
from pyollama.server import ServerState, get_state
from pyollama.server.errors import json_response
from pyollama.server.requests import ChatRequest, check_top_logprobs, parse_format, read_json
from pyollama.server.routes.generate import (
    InferenceRun,
    acquire_runner,
    build_options,
    completion_request,
    done_response,
    find_model,
    render_conversation,
    reply_parser,
    resolve_think,
    unload_model,
)
from pyollama.server.streaming import Delta, metrics, now_utc, stream_completion
from pyollama.store.model import ModelRecord
from pyollama.store.names import ModelName

bp = Blueprint("chat", __name__)


def conversation(record: ModelRecord, req: ChatRequest) -> list[dict[str, Any]]:
    """The model's MESSAGE history, then the request's; the model's SYSTEM first unless the
    request opens with its own system message."""
    messages = [dict(m) for m in record.messages] + [m.to_template() for m in req.messages]
    if record.system and (not req.messages or req.messages[0].role != "system"):
        messages.insert(0, {"role": "system", "content": record.system})
    return messages


def _message(delta: Delta) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": delta.content}
    if delta.thinking:
        message["thinking"] = delta.thinking
    if delta.tool_calls:
        message["tool_calls"] = delta.tool_calls
    return message


def _events(model: str, deltas: Iterator[Delta], started_ns: int, load_ns: int) -> Iterator[dict[str, Any]]:
    try:
        for delta in deltas:
            if delta.result is None:
                yield {"model": model, "created_at": now_utc(), "message": _message(delta), "done": False}
                continue
            final: dict[str, Any] = {
                "model": model,
                "created_at": now_utc(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
            }
            if delta.result.done_reason:
                final["done_reason"] = delta.result.done_reason
            final.update(metrics(delta.result, started_ns, load_ns))
            yield final
    finally:
        deltas.close()  # type: ignore[attr-defined]


def _aggregate(events: Iterator[dict[str, Any]], with_tools: bool) -> dict[str, Any]:
    """stream:false: the final chunk carrying the whole message."""
    content: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    for event in events:
        message = event.get("message", {})
        content.append(message.get("content", ""))
        thinking.append(message.get("thinking", ""))
        tool_calls.extend(message.get("tool_calls", []))
        final = event
    whole = Delta(content="".join(content), thinking="".join(thinking), tool_calls=tool_calls if with_tools else [])
    return {**final, "message": _message(whole)}


@bp.post("/api/chat")
def chat() -> Response:
    started = time.perf_counter_ns()
    req = ChatRequest.from_json(read_json(request))
    run = start_chat(get_state(), req, started)
    return run if isinstance(run, Response) else run.respond(req.stream)


def start_chat(state: ServerState, req: ChatRequest, started: int) -> InferenceRun | Response:
    """Everything /api/chat does after decoding its body: the checks, the load and the completion
    under way; or the answer itself for a load, an unload or `_debug_render_only`."""
    check_top_logprobs(req.top_logprobs)
    if req.model == "":
        raise BadRequestError("model is required")
    name = ModelName.parse(req.model)
    record = find_model(state, name, f"model '{req.model}' not found")
    if not req.messages and req.keep_alive == 0:
        unload_model(state, record)
        return done_response(req.model, "unload", chat=True)
    capabilities = record.capabilities()
    think = resolve_think(req.model, req.think, capabilities)
    if "completion" not in capabilities:
        raise BadRequestError(f'"{req.model}" does not support chat')
    if req.tools and "tools" not in capabilities:
        raise BadRequestError(f"{record.name.full} does not support tools")
    runner_options, predict = build_options(state, record, req.options)
    fmt = parse_format(req.format)
    lease = acquire_runner(state, record, runner_options, req.keep_alive, started)
    try:
        if not req.messages:
            lease.release()
            return done_response(req.model, "load", chat=True)
        messages = conversation(record, req)
        rendered = render_conversation(
            lease.runner, record, messages, tools=req.tools or None, think=think, truncate=req.truncate
        )
        if req.debug_render_only:
            lease.release()
            images = sum(len(m.images) for m in req.messages)
            info: dict[str, Any] = {"rendered_template": rendered.prompt}
            if images:
                info["image_count"] = images
            return json_response(
                {
                    "model": req.model,
                    "created_at": now_utc(),
                    "message": {"role": "assistant", "content": ""},
                    "done": False,
                    "_debug_info": info,
                }
            )
        creq = completion_request(
            rendered.prompt,
            predict,
            fmt,
            truncate=req.truncate,
            shift=req.shift,
            images=rendered.images,
            chat=rendered.chat,
        )
        if req.tools and rendered.go_template is not None and not (fmt.json_mode or fmt.schema is not None):
            # Go templates come with no tool-call grammar: constrain calls once the model starts one.
            constrained = tool_call_grammar(req.tools)
            if constrained is not None:
                creq.grammar, creq.grammar_lazy = constrained.grammar, True
                creq.grammar_triggers = constrained.triggers
        parser = reply_parser(rendered, req.tools, think)
        events = _events(req.model, stream_completion(lease.runner, creq, parser), started, lease.load_ns)
    except BaseException:
        lease.release()
        raise
    return InferenceRun(events, lease.release, functools.partial(_aggregate, with_tools=bool(req.tools)))

