"""Ollama chat replies as Anthropic Messages API objects and stream events (`/v1/messages`),
following Ollama's `anthropic.ToMessagesResponse` and `StreamConverter`.

A reply's content blocks, in order: `thinking` (the reply's thinking), `text`, then one
`tool_use` block per tool call (`id` is the call's id, `input` its arguments). `stop_reason` is
`tool_use` when the reply made a call, else Ollama's done reason mapped: `stop` -> `end_turn`,
`length` -> `max_tokens`. Usage is the prompt's and the reply's tokens.

The stream is Server-Sent Events named by their type: `message_start` (the message without
content; its `input_tokens` is the request's estimate, as in Ollama), then per block
`content_block_start`, its `content_block_delta`s (`thinking_delta`, `text_delta`,
`input_json_delta` with the call's whole arguments) and `content_block_stop`; then
`message_delta` (stop reason and the real usage) and `message_stop`. An error after the stream
started is an `error` event in Anthropic's error shape.

Beyond Ollama: a block of a kind already closed opens a new block (Ollama drops thinking that
comes after the text started, and appends text after a call to the closed block's index), and
`stop_sequence` is present (null), as in Anthropic's own answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyollama.engine.chat_format import arguments_to_text
from pyollama.server.responses import anthropic_error_body
from pyollama.server.streaming import EVENT_STREAM, Wire, sse_event


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def stop_reason(done_reason: str, tool_calls: bool) -> str | None:
    """Ollama's mapStopReason."""
    if tool_calls:
        return "tool_use"
    if done_reason == "stop":
        return "end_turn"
    if done_reason == "length":
        return "max_tokens"
    return "stop_sequence" if done_reason else None


def _usage(final: Mapping[str, Any]) -> dict[str, int]:
    return {"input_tokens": int(final.get("prompt_eval_count", 0)), "output_tokens": int(final.get("eval_count", 0))}


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
            "input": function.get("arguments") or {}}


def message_response(message_id: str, final: Mapping[str, Any]) -> dict[str, Any]:
    """A whole reply (the chat's aggregated stream:false answer) as an Anthropic `message`."""
    message = final.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("thinking"):
        content.append({"type": "thinking", "thinking": message["thinking"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls") or []
    content += [_tool_use(call) for call in calls]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": final.get("model", ""),
        "content": content,
        "stop_reason": stop_reason(str(final.get("done_reason", "")), bool(calls)),
        "stop_sequence": None,
        "usage": _usage(final),
    }


Event = tuple[str, dict[str, Any]]


@dataclass
class MessageEvents:
    """Turns the Ollama chat stream into Anthropic stream events; one block is open at a time."""

    message_id: str
    model: str
    estimated_input_tokens: int
    _started: bool = False
    _index: int = 0  # the index of the next block
    _open: str = ""  # "thinking", "text" or ""
    _tool_calls: list[str] = field(default_factory=list)

    def wire(self) -> Wire:
        return Wire(
            EVENT_STREAM,
            lambda event: [sse_event(name, data) for name, data in self.events(event)],
            lambda status, message: sse_event("error", self.error(status, message)),
        )

    def error(self, status: int, message: str) -> dict[str, Any]:
        body = anthropic_error_body(status, message)
        return {"type": "error", "error": body["error"]}

    def events(self, event: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            start: dict[str, Any] = {
                "id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": self.estimated_input_tokens, "output_tokens": 0},
            }
            out.append(("message_start", {"type": "message_start", "message": start}))
        message = event.get("message") or {}
        if message.get("thinking"):
            out += self._delta("thinking", {"type": "thinking_delta", "thinking": message["thinking"]})
        if message.get("content"):
            out += self._delta("text", {"type": "text_delta", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            out += self._close()
            block = _tool_use(call)
            self._tool_calls.append(block["id"])
            out.append(self._block_start({**block, "input": {}}))
            out.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments_to_text(block["input"])}))
            out.append(self._block_stop())
        if event.get("done"):
            out += self._close()
            delta = {"stop_reason": stop_reason(str(event.get("done_reason", "")), bool(self._tool_calls)),
                     "stop_sequence": None}
            out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": _usage(event)}))
            out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _block_start(self, block: dict[str, Any]) -> Event:
        return "content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}

    def _block_delta(self, delta: dict[str, Any]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _block_stop(self) -> Event:
        event = "content_block_stop", {"type": "content_block_stop", "index": self._index}
        self._index += 1
        return event

    def _delta(self, kind: str, delta: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if self._open != kind:
            out += self._close()
            block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {"type": "text",
                                                                                                    "text": ""}
            out.append(self._block_start(block))
            self._open = kind
        out.append(self._block_delta(delta))
        return out

    def _close(self) -> list[Event]:
        if not self._open:
            return []
        self._open = ""
        return [self._block_stop()]


__all__ = ["MessageEvents", "message_response", "new_message_id", "stop_reason"]
