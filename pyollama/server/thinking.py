"""Thinking, around the prompt: which tags a reply thinks between, whether the prompt already
opened them, earlier turns' thinking dropped from the history, and `format` held off while the
model thinks.

- `thinking_tags(rendered)`: the tags of a rendered prompt's model (the Go template's, as
  Ollama's thinking.InferTags reads them, else `<think>`/`</think>`; for a GGUF Jinja template,
  those llama.cpp's chat code found in it), and whether the prompt ends inside the opening one.
- `drop_earlier_thinking(messages, tags)`: Ollama's filterThinkTags: an assistant
  turn before the last user message loses the thinking its content starts with.
- `hold_format_until_answer(creq, rendered, think)`: with `format` and thinking on, the
  grammar leaves the thinking free and holds only the answer (engine.thinking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyollama.engine.thinking import answer_after_thinking, format_grammar
from pyollama.server.replies import ThinkTagReply

if TYPE_CHECKING:
    from pyollama.engine.types import CompletionRequest
    from pyollama.server.prompts import PreparedPrompt
    from pyollama.store.model import ModelRecord
    from pyollama.templates.gotext import Template

DEFAULT_TAGS = ("<think>", "</think>")


@dataclass(frozen=True)
class ThinkingTags:
    opening: str
    closing: str
    opened: bool = False  # the prompt ends with `opening`: the reply starts inside the thinking


def thinks(think: bool | str | None) -> bool:
    """The request turned thinking on (`true` or a level; thinking models default to `true`)."""
    return think is not None and think is not False


def template_tags(template: Template | None) -> tuple[str, str]:
    """The tags of an Ollama Go template (InferTags), `<think>`/`</think>` when it has none or
    there is no Go template."""
    if template is not None:
        from pyollama.templates.prompt import thinking_tags as inferred

        opening, closing = inferred(template)
        if opening and closing:
            return opening, closing
    return DEFAULT_TAGS


def model_tags(record: ModelRecord) -> tuple[str, str]:
    """The tags of a model's thinking before any prompt is rendered: its Go template's (see
    template_tags), else `<think>`/`</think>`."""
    if record.template is None:
        return DEFAULT_TAGS
    from pyollama.templates.prompt import TemplateError, parse_template

    try:
        return template_tags(parse_template(record.template))
    except TemplateError:
        return DEFAULT_TAGS


def thinking_tags(rendered: PreparedPrompt) -> ThinkingTags | None:
    """The tags a reply to `rendered` thinks between; None when nothing reads its thinking
    (a prompt sent as it is, a Jinja template without thinking)."""
    if rendered.chat is not None:
        opening, closing = rendered.chat.thinking_tags
        if not (opening and closing):
            return None
    elif rendered.go_template is not None:
        opening, closing = template_tags(rendered.go_template)
    else:
        return None
    # Ollama's test: the prompt, trimmed, ends with the opening tag
    return ThinkingTags(opening, closing, opened=rendered.prompt.rstrip().endswith(opening))


def drop_earlier_thinking(messages: Sequence[dict[str, Any]], tags: tuple[str, str]) -> list[dict[str, Any]]:
    """Ollama's filterThinkTags: the content of each assistant message before the last user
    message without the thinking it starts with (read as a reply is, by ThinkTagReply)."""
    opening, closing = tags
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if i < last_user and message.get("role") == "assistant" and isinstance(content, str) and opening in content:
            parser = ThinkTagReply(opening=opening, closing=closing)
            message = {**message, "content": parser.feed(content).content + parser.finish().content}
        out.append(message)
    return out


def hold_format_until_answer(creq: CompletionRequest, rendered: PreparedPrompt, think: bool | str | None) -> None:
    """With `format` and thinking on, replace the format's grammar by one that lets the model
    think first (Ollama's two-pass structured outputs, in one pass); nothing otherwise."""
    if not thinks(think) or (creq.json_schema is None and not creq.json_mode):
        return
    tags = thinking_tags(rendered)
    if tags is None:
        return
    answer = format_grammar(creq.json_schema, creq.json_mode)
    assert answer is not None
    creq.grammar = answer_after_thinking(answer, tags.opening, tags.closing, opened=tags.opened)
    creq.json_schema, creq.json_mode = None, False


__all__ = [
    "ThinkingTags",
    "drop_earlier_thinking",
    "hold_format_until_answer",
    "model_tags",
    "template_tags",
    "thinking_tags",
    "thinks",
]
