"""Reply assembly: raw model text split into `content`, `thinking` and `tool_calls` deltas.

Through llama.cpp's chat parser for models rendered with their GGUF template, or with
`<think>` tags and JSON tool calls for models rendered with an Ollama Go template. Each
completion gets its own parser, fed from the thread that iterates the completion.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pyollama.engine.chat_format import tool_calls_from_model
from pyollama.errors import PyollamaError

if TYPE_CHECKING:
    from pyollama.engine.chat_format import ChatPrompt
    from pyollama.engine.logprobs import Logprob
    from pyollama.engine.slots import CompletionResult

log = logging.getLogger("pyollama.server")


@dataclass
class Delta:
    """A piece of reply: text for `content` and `thinking`, whole tool calls, the
    log-probabilities of the tokens it came from (when asked for), and on the last delta of a
    completion its result."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    result: CompletionResult | None = None
    logprobs: list[Logprob] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls or self.logprobs or self.result is not None)


class ReplyParser(Protocol):
    def feed(self, text: str) -> Delta: ...

    def finish(self) -> Delta: ...


class PlainReply:
    """Model text is the content."""

    def feed(self, text: str) -> Delta:
        return Delta(content=text)

    def finish(self) -> Delta:
        return Delta()


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
        delta.tool_calls = tool_calls_from_model(getattr(parsed, "tool_calls", None) or [])
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
    return tool_calls_from_model(calls), remainder.strip()


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
