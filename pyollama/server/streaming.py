"""Turning work into HTTP responses: NDJSON streams, timestamps, and reply assembly.

Streams are primed: the first object is produced before the response starts,
so an error raised before any output (a model that cannot load, a prompt too
long, a schema without a grammar) still gets its HTTP status, as in Ollama.
Later errors become a final `{"error": ...}` line. When the client goes away
the WSGI server closes the body, which cancels the completion (freeing its
sequence) and releases the runner.

Reply assembly splits raw model text into `content`, `thinking` and
`tool_calls` deltas: through llama.cpp's chat parser for models rendered with
their GGUF template, or with `<think>` tags and JSON tool calls for models
rendered with an Ollama Go template.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from flask import Response

from pyollama.errors import PyollamaError
from pyollama.golang.time import format_rfc3339
from pyollama.server.errors import error_response
from pyollama.server.metrics import CompletionTimer, completion_timer

if TYPE_CHECKING:
    from pyollama.engine.runner import ChatPrompt, CompletionRequest, RunnerBase
    from pyollama.engine.slots import CompletionResult

log = logging.getLogger("pyollama.server")

NDJSON = "application/x-ndjson"


# -- timestamps -------------------------------------------------------------------------------


# The name routes and tests import: Go's RFC3339Nano.
rfc3339 = format_rfc3339


def now_utc() -> str:
    """`created_at`: the current UTC time with nanoseconds, as Ollama's `time.Now().UTC()`."""
    ns = time.time_ns()
    return format_rfc3339(datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc), ns % 1_000_000_000)


# -- NDJSON -----------------------------------------------------------------------------------


def json_line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class NDJSONStream:
    """A WSGI body: one JSON object per line, handed to the server one line at a time.

    `close()` (called by the WSGI server when the response ends or the client
    disconnects) closes the event generator, whose cleanup cancels unfinished
    work, then runs the `on_close` callbacks (releasing the runner).
    """

    def __init__(self, first: Any, events: Iterator[Any], on_close: Iterable[Callable[[], None]]) -> None:
        self._first = first
        self._events = events
        self._on_close = list(on_close)
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield json_line(self._first)
            for event in self._events:
                yield json_line(event)
        except PyollamaError as exc:
            yield json_line({"error": exc.message})
        except Exception as exc:  # a crash mid-stream still ends the stream with an error line
            log.exception("stream failed")
            yield json_line({"error": str(exc) or type(exc).__name__})

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            run_callbacks(self._on_close)


def run_callbacks(callbacks: Iterable[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # cleanup must run to the end; a failing step is logged, not raised
            log.exception("cleanup failed")


def prime(events: Iterator[Any], on_close: Iterable[Callable[[], None]] = ()) -> tuple[Any, bool]:
    """(first event, True) or (None, False) if there is none; runs `on_close` if it raises."""
    try:
        return next(events), True
    except StopIteration:
        return None, False
    except BaseException:
        close = getattr(events, "close", None)
        if close is not None:
            close()
        run_callbacks(on_close)
        raise


def ndjson_response(
    events: Iterator[Any], on_close: Iterable[Callable[[], None]] = (), empty: Any = None
) -> Response:
    """Stream `events` as NDJSON; errors before the first event keep their HTTP status."""
    callbacks = list(on_close)
    first, ok = prime(events, callbacks)
    if not ok:
        run_callbacks(callbacks)
        if empty is None:
            return Response(b"", status=200, content_type=NDJSON)
        first = empty
    body = NDJSONStream(first, events, callbacks)
    response = Response(body, status=200, content_type=NDJSON, direct_passthrough=True)
    return response


def progress_response(events: Iterator[dict[str, Any]], stream: bool) -> Response:
    """Pull/push/create progress: streamed, or only the last object (`application/json`)."""
    if stream:
        return ndjson_response(events)
    last: dict[str, Any] | None = None
    try:
        for event in events:
            last = event
    except PyollamaError as exc:
        return error_response(exc.message, exc.status)
    data = json.dumps(last or {"status": "success"}, ensure_ascii=False, separators=(",", ":"))
    return Response(data, status=200, content_type="application/json")


# -- reply assembly ---------------------------------------------------------------------------


@dataclass
class Delta:
    """A piece of reply: text for `content` and `thinking`, whole tool calls, and on the
    last delta of a completion its result."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    result: CompletionResult | None = None

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls or self.result is not None)


class ReplyParser(Protocol):
    def feed(self, text: str) -> Delta: ...

    def finish(self) -> Delta: ...


class PlainReply:
    """Model text is the content."""

    def feed(self, text: str) -> Delta:
        return Delta(content=text)

    def finish(self) -> Delta:
        return Delta()


def tool_call_id() -> str:
    """Ollama's server-generated id: `call_` + 8 characters from [a-z0-9]."""
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def normalize_tool_calls(calls: Iterable[Any]) -> list[dict[str, Any]]:
    """Ollama's ToolCall shape: `{"id", "function": {"index", "name", "arguments": {...}}}`."""
    out: list[dict[str, Any]] = []
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments", function.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                arguments = {"value": arguments}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        call_id = call.get("id") if isinstance(call, dict) and isinstance(call.get("id"), str) else ""
        out.append(
            {
                "id": call_id or tool_call_id(),
                "function": {"index": len(out), "name": function["name"], "arguments": arguments},
            }
        )
    return out


class ChatTemplateReply:
    """Replies to prompts rendered by llama.cpp's chat code, parsed back by the same code.

    The whole text so far is re-parsed after each piece; only what extends the
    content and thinking already sent is emitted (markup the parser is still
    holding back, such as a half-written tool call, is not).
    """

    def __init__(self, chat: ChatPrompt) -> None:
        self._chat = chat
        self._text = ""
        self._content = ""
        self._thinking = ""

    def _parse(self, partial: bool) -> Any:
        try:
            return self._chat.parse_reply(self._text, partial=partial)
        except (PyollamaError, ValueError, RuntimeError, KeyError) as exc:
            # A reply the parser rejects is still the model's answer.
            log.warning("chat reply parser failed (%s); returning raw text", exc)
            return None

    def _advance(self, parsed: Any) -> Delta:
        delta = Delta()
        content = getattr(parsed, "content", None) or ""
        thinking = getattr(parsed, "thinking", None) or ""
        if content.startswith(self._content):
            delta.content, self._content = content[len(self._content) :], content
        if thinking.startswith(self._thinking):
            delta.thinking, self._thinking = thinking[len(self._thinking) :], thinking
        return delta

    def feed(self, text: str) -> Delta:
        self._text += text
        parsed = self._parse(partial=True)
        return Delta() if parsed is None else self._advance(parsed)

    def finish(self) -> Delta:
        parsed = self._parse(partial=False)
        if parsed is None:
            rest = self._text[len(self._content) :] if self._text.startswith(self._content) else ""
            return Delta(content=rest)
        delta = self._advance(parsed)
        delta.tool_calls = normalize_tool_calls(getattr(parsed, "tool_calls", None) or [])
        return delta


class ThinkTagReply:
    """Thinking at the start of a reply, between the tags the Go template uses (by default
    `<think>...</think>`), becomes `thinking` (Go-template models)."""

    def __init__(self, inner: ReplyParser | None = None, *, opening: str = "<think>", closing: str = "</think>") -> None:
        self._inner = inner or PlainReply()
        self._open = opening
        self._close = closing
        self._state = "start"  # start -> thinking -> content
        self._pending = ""

    def feed(self, text: str) -> Delta:
        self._pending += text
        thinking = ""
        content = ""
        if self._state == "start":
            stripped = self._pending.lstrip()
            if stripped.startswith(self._open):
                self._pending = stripped[len(self._open) :].lstrip()
                self._state = "thinking"
            elif self._open.startswith(stripped):
                return Delta()  # could still become the opening tag
            else:
                self._state = "content"
        if self._state == "thinking":
            end = self._pending.find(self._close)
            if end >= 0:
                thinking = self._pending[:end]
                self._pending = self._pending[end + len(self._close) :].lstrip()
                self._state = "content"
            else:
                keep = _partial_suffix(self._pending, self._close)
                thinking = self._pending[: len(self._pending) - keep]
                self._pending = self._pending[len(self._pending) - keep :]
        if self._state == "content" and self._pending:
            inner = self._inner.feed(self._pending)
            self._pending = ""
            content = inner.content
            return Delta(content=content, thinking=thinking, tool_calls=inner.tool_calls)
        return Delta(thinking=thinking, content=content)

    def finish(self) -> Delta:
        delta = Delta()
        if self._pending:
            if self._state == "thinking":
                delta.thinking = self._pending
            else:
                delta = self._inner.feed(self._pending)
            self._pending = ""
        tail = self._inner.finish()
        delta.content += tail.content
        delta.tool_calls = delta.tool_calls + tail.tool_calls
        return delta


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


_TOOL_WRAPPERS = ("<tool_call>", "</tool_call>", "<|python_tag|>", "[TOOL_CALLS]", "```json", "```")


def parse_json_tool_calls(text: str, names: set[str]) -> tuple[list[dict[str, Any]], str]:
    """JSON tool calls anywhere in `text` (objects or arrays of `{"name", "arguments"}`,
    optionally inside `{"function": ...}`), for tools in `names`; returns (calls, rest of the text)."""
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        found = _collect_calls(value, names)
        if found:
            calls.extend(found)
            spans.append((start, end))
        pos = end
    if not calls:
        return [], text
    rest = []
    last = 0
    for start, end in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    remainder = "".join(rest)
    for wrapper in _TOOL_WRAPPERS:
        remainder = remainder.replace(wrapper, "")
    return normalize_tool_calls(calls), remainder.strip()


def _collect_calls(value: Any, names: set[str]) -> list[dict[str, Any]]:
    if isinstance(value, list):
        out = []
        for item in value:
            out.extend(_collect_calls(item, names))
        return out
    if not isinstance(value, dict):
        return []
    function = value.get("function")
    if isinstance(function, dict):
        return _collect_calls(function, names)
    name = value.get("name")
    if isinstance(name, str) and (not names or name in names):
        args = value.get("arguments", value.get("parameters"))
        if isinstance(args, (dict, str)) or args is None:
            return [{"function": {"name": name, "arguments": args if args is not None else {}}}]
    return []


class JsonToolReply:
    """Tool calls written as JSON by Go-template models (Ollama's tool parser, simplified).

    A reply that starts like a tool call (`{`, `[`, `<`, a code fence) is held
    back until it ends, then parsed; any other reply streams as content at once.
    """

    def __init__(self, tool_names: set[str]) -> None:
        self._names = tool_names
        self._held = ""
        self._streaming = False

    def feed(self, text: str) -> Delta:
        if self._streaming:
            return Delta(content=text)
        self._held += text
        stripped = self._held.lstrip()
        if stripped == "" or stripped[0] in "{[<`":
            return Delta()
        self._streaming = True
        held, self._held = self._held, ""
        return Delta(content=held)

    def finish(self) -> Delta:
        if self._streaming or not self._held:
            return Delta()
        calls, rest = parse_json_tool_calls(self._held, self._names)
        held, self._held = self._held, ""
        if not calls:
            return Delta(content=held)
        return Delta(content=rest, tool_calls=calls)


def stream_completion(runner: RunnerBase, request: CompletionRequest, parser: ReplyParser) -> Iterator[Delta]:
    """Run one completion, yielding reply deltas and, last, a Delta carrying the result.

    Closing the generator before the end (client gone) cancels the completion. The running
    request's metrics (time to first token, per-token latency, token counts) are observed as it
    goes; the timer is taken now, while the request context exists, since a stream's body is
    iterated after it has gone.
    """
    return _completion_deltas(runner, request, parser, completion_timer())


def _completion_deltas(
    runner: RunnerBase, request: CompletionRequest, parser: ReplyParser, timer: CompletionTimer | None
) -> Iterator[Delta]:
    completion = runner.complete(request)
    finished = False
    try:
        for chunk in completion:
            if timer is not None:
                timer.piece()
            delta = parser.feed(chunk.text)
            if delta:
                yield delta
        tail = parser.finish()
        finished = True
        if timer is not None:
            # before the final delta goes out, so a client that has it sees counters that include it
            timer.done(completion.result, completion.n_cached)
        if tail.content or tail.thinking:
            yield Delta(content=tail.content, thinking=tail.thinking)
        if tail.tool_calls:
            yield Delta(tool_calls=tail.tool_calls)
        yield Delta(result=completion.result)
    except GeneratorExit:
        # closed while suspended at a yield: whoever was reading (the client) went away
        if not finished and timer is not None:
            timer.canceled()
        raise
    finally:
        if not finished:
            completion.cancel()


def metrics(result: CompletionResult | None, started_ns: int, load_ns: int) -> dict[str, int]:
    """The final chunk's timings (ns) and counts, omitting zeros like Go's `omitempty`."""
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
