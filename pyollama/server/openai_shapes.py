"""Ollama's answers as OpenAI's (API.md §17): whole objects, stream chunks, embeddings, models.

Input is Ollama's response objects (the dicts shapes.py makes, streamed or aggregated), so
the OpenAI routes run the very code behind /api/chat, /api/generate and /api/embed.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pyollama.engine.chat_format import tool_call_to_openai

SYSTEM_FINGERPRINT = "fp_ollama"


def new_id(prefix: str) -> str:
    """Ollama's ids: `chatcmpl-<0..998>`, `cmpl-<0..998>`."""
    return f"{prefix}-{random.randrange(999)}"


# -- chat completions ---------------------------------------------------------------------------


def usage(final: Mapping[str, Any]) -> dict[str, int]:
    prompt, completion = int(final.get("prompt_eval_count", 0)), int(final.get("eval_count", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_calls_out(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama tool calls -> OpenAI's (`type: function`, arguments as JSON text)."""
    return [tool_call_to_openai(call, i) for i, call in enumerate(calls)]


def _finish_reason(reason: str, tool_calls: bool) -> str | None:
    if tool_calls and reason in ("stop", ""):
        return "tool_calls"
    return reason or None


# -- log-probabilities ------------------------------------------------------------------------------


def _openai_token(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An Ollama token entry as OpenAI's: `bytes` always there (null for a token with none)."""
    return {"token": entry.get("token", ""), "logprob": entry.get("logprob", 0.0), "bytes": entry.get("bytes")}


def chat_logprobs(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """`choices[].logprobs` of a chat completion: `content`, one object per token, each with
    its `top_logprobs` (a list, empty when none were asked for)."""
    return {
        "content": [
            {**_openai_token(entry), "top_logprobs": [_openai_token(top) for top in entry.get("top_logprobs", [])]}
            for entry in entries
        ]
    }


def completion_logprobs(entries: list[Mapping[str, Any]], offset: int = 0) -> dict[str, Any]:
    """`choices[].logprobs` of a text completion: OpenAI's legacy parallel arrays (`tokens`,
    `token_logprobs`, `top_logprobs` as token -> logprob maps, `text_offset` counted in
    characters of the tokens' text from `offset`), and Ollama's `content` list beside them."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.get("token", ""))
    return {
        "tokens": [entry.get("token", "") for entry in entries],
        "token_logprobs": [entry.get("logprob", 0.0) for entry in entries],
        "top_logprobs": [
            {top.get("token", ""): top.get("logprob", 0.0) for top in entry.get("top_logprobs", [])} for entry in entries
        ],
        "text_offset": offsets,
        "content": chat_logprobs(entries)["content"],
    }


def _text_length(entries: list[Mapping[str, Any]]) -> int:
    return sum(len(entry.get("token", "")) for entry in entries)


def chat_completion(completion_id: str, created: int, final: Mapping[str, Any]) -> dict[str, Any]:
    """A whole chat reply (Ollama's aggregated stream:false answer) as a `chat.completion`."""
    message = final.get("message") or {}
    out_message: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content", "")}
    if message.get("thinking"):
        out_message["reasoning"] = message["thinking"]
    calls = tool_calls_out(message.get("tool_calls") or [])
    if calls:
        out_message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": final.get("model", ""),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": _finish_reason(str(final.get("done_reason", "")), bool(calls)),
            }
        ],
        "usage": usage(final),
    }
    if final.get("logprobs"):
        body["choices"][0]["logprobs"] = chat_logprobs(final["logprobs"])
    if "_debug_info" in final:
        body["_debug_info"] = final["_debug_info"]
    return body


@dataclass
class ChatChunks:
    """Turns the Ollama chat stream into `chat.completion.chunk`s: content and reasoning deltas
    (the role only on the first), a finish chunk with an empty delta, then the usage chunk
    when `stream_options.include_usage` asked for it."""

    completion_id: str
    created: int
    include_usage: bool
    _first: bool = True
    _tool_call_sent: bool = False
    _model: str = ""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            **extra,
        }

    def _delta(self, delta: dict[str, Any], logprobs: list[Any] | None = None) -> dict[str, Any]:
        if self._first:
            delta = {"role": "assistant", **delta}
            self._first = False
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = chat_logprobs(logprobs)
        return self._chunk([choice])

    def event(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._model = str(event.get("model", self._model))
        if event.get("done"):
            reason = _finish_reason(str(event.get("done_reason", "")), self._tool_call_sent) or "stop"
            chunks = [self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])]
            if self.include_usage:
                chunks.append(self._chunk([], usage=usage(event)))
            return chunks
        message = event.get("message") or {}
        content, thinking = message.get("content", ""), message.get("thinking", "")
        calls = tool_calls_out(message.get("tool_calls") or [])
        chunks = []
        if thinking and (content or calls):
            # reasoning first, in a chunk of its own
            chunks.append(self._delta({"content": None, "reasoning": thinking}))
            thinking = ""
        delta: dict[str, Any] = {"content": content}
        if thinking:
            delta["reasoning"] = thinking
        if calls:
            delta["tool_calls"] = calls
            self._tool_call_sent = True
        # a split event's log-probabilities ride once, on its last chunk
        chunks.append(self._delta(delta, event.get("logprobs")))
        return chunks


# -- completions ----------------------------------------------------------------------------------


def completion(completion_id: str, created: int, final: Mapping[str, Any]) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": final.get("response", ""), "index": 0, "finish_reason": final.get("done_reason") or None}
    if final.get("logprobs"):
        choice["logprobs"] = completion_logprobs(final["logprobs"])
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": final.get("model", ""),
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [choice],
        "usage": usage(final),
    }


@dataclass
class CompletionChunks:
    """The Ollama generate stream as `text_completion` chunks: one per Ollama object (the last
    carrying the finish reason); with `include_usage`, zero usage on each and a final chunk
    with no choices and the real usage."""

    completion_id: str
    created: int
    include_usage: bool
    _offset: int = 0  # characters of token text sent so far (`text_offset`)

    def _chunk(self, model: str, choices: list[dict[str, Any]], usage_: dict[str, int] | None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "choices": choices,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if usage_ is not None:
            chunk["usage"] = usage_
        return chunk

    def event(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        model = str(event.get("model", ""))
        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} if self.include_usage else None
        choice: dict[str, Any] = {"text": event.get("response", ""), "index": 0,
                                  "finish_reason": event.get("done_reason") or None}
        entries = event.get("logprobs")
        if entries:
            choice["logprobs"] = completion_logprobs(entries, self._offset)
            self._offset += _text_length(entries)
        chunks = [self._chunk(model, [choice], zero)]
        if event.get("done") and self.include_usage:
            chunks.append(self._chunk(model, [], usage(event)))
        return chunks


# -- embeddings -----------------------------------------------------------------------------------


def _float32_base64(vector: npt.ArrayLike) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def embedding_list(model: str, body: Mapping[str, Any], encoding_format: str) -> dict[str, Any]:
    """OpenAI's list of an /api/embed body's vectors (rows of a float32 array, which json_text
    writes as Go's []float32, or base64 of their little-endian float32 bytes)."""
    as_base64 = encoding_format.lower() == "base64"
    vectors = body.get("embeddings")
    data = [
        {"object": "embedding", "embedding": _float32_base64(vector) if as_base64 else vector, "index": i}
        for i, vector in enumerate(vectors if vectors is not None else [])
    ]
    tokens = int(body.get("prompt_eval_count", 0))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- models ---------------------------------------------------------------------------------------


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


__all__ = [
    "SYSTEM_FINGERPRINT",
    "ChatChunks",
    "CompletionChunks",
    "chat_completion",
    "chat_logprobs",
    "completion",
    "completion_logprobs",
    "embedding_list",
    "model_object",
    "new_id",
    "tool_calls_out",
    "usage",
]
