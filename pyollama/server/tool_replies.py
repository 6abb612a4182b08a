"""Tool calls in chat replies, found in the text as it streams (engine.chat_format.ToolCallScanner).

For a model rendered with an Ollama Go template, the scanner reads the whole reply: calls after
the template's own tag (tool_call_tags), in code fences or as bare JSON. For a model rendered
with its GGUF's Jinja template, llama.cpp's parser reads the reply first and the scanner reads
the content it leaves: a JSON call written without the template's tags (which llama-server
returns as plain text) still becomes a tool call. Only when the request offers tools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyollama.engine.chat_format import ToolCallScanner
from pyollama.server.replies import Delta, PlainReply, ReplyParser

if TYPE_CHECKING:
    from pyollama.templates.gotext import Template


class ToolCallReply:
    """The text `inner` leaves as content, split into content and tool calls; calls `inner`
    found itself come after the ones found here, in one index order."""

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


def go_template_tool_reply(template: Template, tools: Sequence[Mapping[str, Any]]) -> ToolCallReply:
    """Replies to a prompt rendered by an Ollama Go template."""
    from pyollama.templates.prompt import tool_call_tags

    opening, closing = tool_call_tags(template)
    return ToolCallReply(ToolCallScanner(tools, opening=opening, closing=closing, json_is_native=not opening))


def chat_template_tool_reply(inner: ReplyParser, tools: Sequence[Mapping[str, Any]]) -> ToolCallReply:
    """Replies to a prompt rendered by llama.cpp's chat code (`inner` parses them first)."""
    return ToolCallReply(ToolCallScanner(tools), inner)
