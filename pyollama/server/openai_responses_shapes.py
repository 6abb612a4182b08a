"""Ollama chat replies as OpenAI Responses API objects and stream events (`/v1/responses`),
following Ollama's `openai.ToResponse` and `ResponsesStreamConverter` (openai/responses.go).

A reply's output items, in order: a `reasoning` item for the thinking (its text both as the
summary and, as Ollama writes it, as plain-text `encrypted_content`, which a client sends back to
keep the thinking in the conversation), a `message` item for the text, and one `function_call`
item per tool call (`call_id` is the call's id). The usage counts are the prompt's and the
reply's tokens.

The stream is Server-Sent Events, each named by its type (`event: <type>\\ndata: {...}`), each
with a `sequence_number`: `response.created`, `response.in_progress`; then per output item
`response.output_item.added`, its deltas (`response.reasoning_summary_text.delta`,
`response.output_text.delta`, `response.function_call_arguments.delta`) and their `.done`
events, `response.output_item.done`; last `response.completed` carrying the whole response.

Where pyollama differs from Ollama (docs/DIFFERENCES.md): text and tool calls in one reply are
both returned (Ollama drops the text once a call is made, and leaves its streamed message item
open); a reply cut by `max_output_tokens` is `status: "incomplete"` with `incomplete_details`
and ends its stream with `response.incomplete`, as OpenAI's API does (Ollama says `completed`);
the summary part events are sent as OpenAI sends them; an error after the stream started is an
`error` event.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyollama.engine.chat_format import arguments_to_text
from pyollama.server.openai_responses_bodies import ResponsesCall
from pyollama.server.responses import openai_error_body
from pyollama.server.streaming import EVENT_STREAM, Wire, sse_event


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def usage(final: Mapping[str, Any]) -> dict[str, Any]:
    prompt, reply = int(final.get("prompt_eval_count", 0)), int(final.get("eval_count", 0))
    return {
        "input_tokens": prompt,
        "output_tokens": reply,
        "total_tokens": prompt + reply,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _status(final: Mapping[str, Any]) -> tuple[str, dict[str, str] | None]:
    if final.get("done_reason") == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def response_object(call: ResponsesCall, response_id: str, created_at: int, status: str,
                    output: list[dict[str, Any]], final: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `response` object, echoing the request's settings as OpenAI (and Ollama) do."""
    incomplete = _status(final)[1] if final is not None else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": int(time.time()) if final is not None else None,
        "status": status,
        "incomplete_details": incomplete,
        "model": call.chat.model,
        "previous_response_id": None,
        "instructions": call.instructions or None,
        "output": output,
        "error": None,
        "tools": call.tools,
        "tool_choice": call.tool_choice,
        "truncation": call.truncation,
        "parallel_tool_calls": True,
        "text": {"format": call.text_format},
        "top_p": call.top_p,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "temperature": call.temperature,
        "reasoning": call.reasoning,
        "usage": usage(final) if final is not None else None,
        "max_output_tokens": call.max_output_tokens,
        "max_tool_calls": None,
        "store": False,
        "background": False,
        "service_tier": "default",
        "metadata": call.metadata,
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}],
            "encrypted_content": text}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [_text_part(text)] if status == "completed" else []}


def _call_item(call: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": new_item_id("fc"),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id", ""),
        "name": function.get("name", ""),
        "arguments": arguments_to_text(function.get("arguments")),
    }


def whole_response(call: ResponsesCall, response_id: str, created_at: int, final: Mapping[str, Any]) -> dict[str, Any]:
    """A whole reply (the chat's aggregated stream:false answer) as a `response` object."""
    message = final.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("thinking"):
        output.append(_reasoning_item(new_item_id("rs"), message["thinking"]))
    calls = message.get("tool_calls") or []
    if message.get("content") or not calls:
        output.append(_message_item(new_item_id("msg"), message.get("content", "")))
    output += [_call_item(c) for c in calls]
    return response_object(call, response_id, created_at, _status(final)[0], output, final)


Event = tuple[str, dict[str, Any]]


@dataclass
class ResponsesEvents:
    """Turns the Ollama chat stream into Responses API events. One output item is open at a time
    (reasoning or message); a change of kind, a tool call or the end closes it."""

    call: ResponsesCall
    response_id: str
    created_at: int
    _sequence: int = 0
    _started: bool = False
    _output: list[dict[str, Any]] = field(default_factory=list)  # closed items, in order
    _open: str = ""  # "reasoning", "message" or ""
    _open_id: str = ""
    _text: list[str] = field(default_factory=list)

    def wire(self) -> Wire:
        return Wire(
            EVENT_STREAM,
            lambda event: [sse_event(name, data) for name, data in self.events(event)],
            lambda status, message: sse_event(*self.error(status, message)),
        )

    def _event(self, kind: str, **data: Any) -> Event:
        payload = {"type": kind, **data, "sequence_number": self._sequence}
        self._sequence += 1
        return kind, payload

    def events(self, event: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            in_progress = response_object(self.call, self.response_id, self.created_at, "in_progress", [])
            out.append(self._event("response.created", response=in_progress))
            out.append(self._event("response.in_progress", response=in_progress))
        message = event.get("message") or {}
        if message.get("thinking"):
            out += self._append("reasoning", message["thinking"])
        if message.get("content"):
            out += self._append("message", message["content"])
        for tool_call in message.get("tool_calls") or []:
            out += self._close()
            out += self._function_call(tool_call)
        if event.get("done"):
            out += self._close()
            status = _status(event)[0]
            response = response_object(self.call, self.response_id, self.created_at, status, self._output, event)
            out.append(self._event(f"response.{status}", response=response))
        return out

    def error(self, status: int, message: str) -> Event:
        """The `error` event for a failure after the stream started."""
        code = openai_error_body(status, message)["error"]["type"]
        return self._event("error", code=code, message=message, param=None)

    # -- output items ---------------------------------------------------------------------------

    def _where(self) -> dict[str, Any]:
        return {"item_id": self._open_id, "output_index": len(self._output)}

    def _append(self, kind: str, text: str) -> list[Event]:
        out: list[Event] = []
        if self._open != kind:
            out += self._close()
            out += self._open_item(kind)
        self._text.append(text)
        if kind == "reasoning":
            out.append(self._event("response.reasoning_summary_text.delta", **self._where(), summary_index=0,
                                   delta=text))
        else:
            out.append(self._event("response.output_text.delta", **self._where(), content_index=0, delta=text,
                                   logprobs=[]))
        return out

    def _open_item(self, kind: str) -> list[Event]:
        self._open, self._text = kind, []
        index = len(self._output)
        if kind == "reasoning":
            self._open_id = new_item_id("rs")
            item = {"id": self._open_id, "type": "reasoning", "summary": []}
            return [
                self._event("response.output_item.added", output_index=index, item=item),
                self._event("response.reasoning_summary_part.added", **self._where(), summary_index=0,
                            part={"type": "summary_text", "text": ""}),
            ]
        self._open_id = new_item_id("msg")
        return [
            self._event("response.output_item.added", output_index=index,
                        item=_message_item(self._open_id, "", status="in_progress")),
            self._event("response.content_part.added", **self._where(), content_index=0, part=_text_part("")),
        ]

    def _close(self) -> list[Event]:
        if not self._open:
            return []
        text = "".join(self._text)
        where = self._where()
        if self._open == "reasoning":
            item = _reasoning_item(self._open_id, text)
            out = [
                self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text),
                self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                            part={"type": "summary_text", "text": text}),
            ]
        else:
            item = _message_item(self._open_id, text)
            out = [
                self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, content_index=0, part=_text_part(text)),
            ]
        out.append(self._event("response.output_item.done", output_index=where["output_index"], item=item))
        self._output.append(item)
        self._open, self._open_id, self._text = "", "", []
        return out

    def _function_call(self, tool_call: Mapping[str, Any]) -> list[Event]:
        item = _call_item(tool_call)
        index = len(self._output)
        where = {"item_id": item["id"], "output_index": index}
        out = [self._event("response.output_item.added", output_index=index,
                           item={**item, "status": "in_progress", "arguments": ""})]
        if item["arguments"]:
            out.append(self._event("response.function_call_arguments.delta", **where, delta=item["arguments"]))
        out.append(self._event("response.function_call_arguments.done", **where, name=item["name"],
                               arguments=item["arguments"]))
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self._output.append(item)
        return out


__all__ = ["ResponsesEvents", "new_item_id", "response_object", "usage", "whole_response"]
