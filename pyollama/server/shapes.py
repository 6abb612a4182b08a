"""Ollama's reply objects, for both reply shapes: /api/generate's (text in `response`) and
/api/chat's (text in `message`).

A completion becomes chunks (`done: false`), then a final object (`done: true`, the done
reason and the timings); stream:false joins them into one object. The same dicts feed the
NDJSON streams and the OpenAI layer's translation. With `logprobs`, each chunk carries the
log-probabilities of the tokens its text came from (a chunk may carry only those, while a
parser holds the text back), and stream:false joins them in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pyollama.golang.time import format_rfc3339
from pyollama.server.replies import Delta

if TYPE_CHECKING:
    from pyollama.engine.slots import CompletionResult


def now_utc() -> str:
    """`created_at`: the current UTC time with nanoseconds, as Ollama's `time.Now().UTC()`."""
    ns = time.time_ns()
    return format_rfc3339(datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc), ns % 1_000_000_000)


def timings(result: CompletionResult | None, started_ns: int, load_ns: int) -> dict[str, int]:
    """The final object's durations (ns) and counts, omitting zeros like Go's `omitempty`."""
    values = {
        "total_duration": time.perf_counter_ns() - started_ns,
        "load_duration": load_ns,
    }
    if result is not None:
        values.update(
            prompt_eval_count=result.prompt_eval_count,
            prompt_eval_duration=result.prompt_eval_duration_ns,
            eval_count=result.eval_count,
            eval_duration=result.eval_duration_ns,
        )
    return {key: value for key, value in values.items() if value}


def message(delta: Delta) -> dict[str, Any]:
    """A chat `message` carrying `delta`."""
    out: dict[str, Any] = {"role": "assistant", "content": delta.content}
    if delta.thinking:
        out["thinking"] = delta.thinking
    if delta.tool_calls:
        out["tool_calls"] = delta.tool_calls
    return out


@dataclass(frozen=True)
class ReplyShape:
    """Where a reply goes: a `message` (chat) or the top-level `response` (generate)."""

    chat: bool

    def _empty(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": now_utc()}
        if self.chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        return out

    def chunk(self, model: str, delta: Delta) -> dict[str, Any]:
        out: dict[str, Any]
        if self.chat:
            out = {"model": model, "created_at": now_utc(), "message": message(delta), "done": False}
        else:
            out = {"model": model, "created_at": now_utc(), "response": delta.content}
            if delta.thinking:
                out["thinking"] = delta.thinking
            out["done"] = False
            if delta.tool_calls:
                out["tool_calls"] = delta.tool_calls
        if delta.logprobs:
            out["logprobs"] = [entry.to_json() for entry in delta.logprobs]
        return out

    def final(self, model: str, result: CompletionResult, timing: dict[str, int], context: bool) -> dict[str, Any]:
        """The last object; `context` adds the deprecated token context (generate, not raw)."""
        out = self._empty(model)
        out["done"] = True
        if result.done_reason:
            out["done_reason"] = result.done_reason
        if context:
            out["context"] = list(result.context)
        out.update(timing)
        return out

    def done(self, model: str, reason: str) -> dict[str, Any]:
        """The answer to a load-only or unload request (never streamed in pieces)."""
        out = self._empty(model)
        out["done"] = True
        out["done_reason"] = reason
        return out

    def debug(self, model: str, prompt: str, n_images: int) -> dict[str, Any]:
        """The answer to `_debug_render_only`: the rendered prompt, and how many images it has."""
        info: dict[str, Any] = {"rendered_template": prompt}
        if n_images:
            info["image_count"] = n_images
        out = self._empty(model)
        out["done"] = False
        out["_debug_info"] = info
        return out

    def events(
        self, model: str, deltas: Iterator[Delta], started_ns: int, load_ns: int, *, context: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The objects of a completion under way; closing them closes `deltas` (cancelling it)."""
        try:
            for delta in deltas:
                if delta.result is not None:
                    yield self.final(model, delta.result, timings(delta.result, started_ns, load_ns), context)
                else:
                    yield self.chunk(model, delta)
        finally:
            deltas.close()  # type: ignore[attr-defined]

    def aggregate(self, events: Iterator[dict[str, Any]], with_tools: bool = True) -> dict[str, Any]:
        """stream:false: the final object with every piece of text and every tool call joined."""
        content: list[str] = []
        thinking: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        logprobs: list[dict[str, Any]] = []
        final: dict[str, Any] = {}
        for event in events:
            part = event.get("message", {}) if self.chat else event
            content.append(part.get("content" if self.chat else "response", ""))
            thinking.append(part.get("thinking", ""))
            tool_calls.extend(part.get("tool_calls", []))
            logprobs.extend(event.get("logprobs", []))
            final = event
        whole = Delta(content="".join(content), thinking="".join(thinking), tool_calls=tool_calls if with_tools else [])
        if self.chat:
            out = {**final, "message": message(whole)}
            # Go's field order: logprobs after done_reason (and _debug_info), before the metrics
            return _insert_before(out, _METRICS, "logprobs", logprobs) if logprobs else out
        out = {"model": final.get("model"), "created_at": final.get("created_at"), "response": whole.content}
        if whole.thinking:
            out["thinking"] = whole.thinking
        out.update({k: v for k, v in final.items() if k not in out and k not in ("thinking", "tool_calls")})
        if whole.tool_calls:
            out["tool_calls"] = whole.tool_calls
        if logprobs:
            out["logprobs"] = logprobs
        return out


_METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
            "eval_duration")


def _insert_before(obj: dict[str, Any], keys: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    """`obj` with `key` added just before the first of `keys` it has (else at the end)."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if k in keys and key not in out:
            out[key] = value
        out[k] = v
    out.setdefault(key, value)
    return out


GENERATE = ReplyShape(chat=False)
CHAT = ReplyShape(chat=True)

__all__ = ["CHAT", "GENERATE", "ReplyShape", "message", "now_utc", "timings"]
