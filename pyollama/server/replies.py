"""Reply assembly: raw model text split into `content`, `thinking` and `tool_calls` deltas.

Through llama.cpp's chat parser for models rendered with their GGUF template, or with
`<think>` tags for models rendered with an Ollama Go template; tool calls written in the text
(the Go template's own syntax, or JSON that llama.cpp's parser leaves in the content) are found
by ToolCallReply. Each completion gets its own parser, fed from the thread that iterates the
completion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pyollama.engine.chat_format import ToolCallScanner, tool_calls_from_model
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
        thinking = (getattr(parsed, "thinking", None) or "").lstrip()
        if thinking:
            # whitespace after the tags goes, as Ollama's thinking parser drops it (and ThinkTagReply)
            content = content.lstrip()
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
    `<think>...</think>`), becomes `thinking` (Go-template models): Ollama's thinking.Parser.

    `opened`: the prompt ended with the opening tag, so the reply starts inside the thinking
    (Ollama feeds the parser the tag first). Whitespace right after either tag is dropped, also
    when it arrives in a piece of its own.
    """

    def __init__(
        self,
        inner: ReplyParser | None = None,
        *,
        opening: str = "<think>",
        closing: str = "</think>",
        opened: bool = False,
    ) -> None:
        self._inner = inner or PlainReply()
        self._open = opening
        self._close = closing
        self._state = "thinking" if opened else "start"  # start -> thinking -> content
        self._eat_space = opened  # right after a tag: leading whitespace is dropped
        self._pending = ""

    def feed(self, text: str) -> Delta:
        self._pending += text
        thinking = ""
        if self._eat_space:
            self._pending = self._pending.lstrip()
            if not self._pending:
                return Delta()
            self._eat_space = False
        if self._state == "start":
            stripped = self._pending.lstrip()
            if stripped.startswith(self._open):
                self._pending = stripped[len(self._open) :].lstrip()
                self._state = "thinking"
                self._eat_space = not self._pending
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
                self._eat_space = not self._pending
            else:
                keep = _partial_suffix(self._pending, self._close)
                thinking = self._pending[: len(self._pending) - keep]
                self._pending = self._pending[len(self._pending) - keep :]
        if self._state == "content" and self._pending:
            inner = self._inner.feed(self._pending)
            self._pending = ""
            return Delta(content=inner.content, thinking=thinking, tool_calls=inner.tool_calls)
        return Delta(thinking=thinking)

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


class ToolCallReply:
    """Tool calls found in the text as it streams (engine.chat_format.ToolCallScanner): the
    content `inner` leaves is split into content and calls; calls `inner` found itself (llama.cpp's
    parser) come after the ones found here, in one index order.

    For a model rendered with an Ollama Go template the scanner reads the whole reply (calls after
    the template's own tag, in code fences, or as bare JSON); for one rendered with its GGUF's
    Jinja template it reads the content llama.cpp's parser leaves, where a JSON call written
    without the template's tags ends up (llama-server returns it as plain text).
    """

    def __init__(self, scanner: ToolCallScanner, inner: ReplyParser | None = None) -> None:
        self._scanner = scanner
        self._inner = inner or PlainReply()

    def _split(self, delta: Delta, *, final: bool) -> Delta:
        content, calls = self._scanner.feed(delta.content)
        if final:
            tail, more = self._scanner.finish()
            content, calls = content + tail, calls + more
        calls += self._scanner.number(delta.tool_calls)
        return Delta(content=content, thinking=delta.thinking, tool_calls=calls)

    def feed(self, text: str) -> Delta:
        return self._split(self._inner.feed(text), final=False)

    def finish(self) -> Delta:
        return self._split(self._inner.finish(), final=True)
