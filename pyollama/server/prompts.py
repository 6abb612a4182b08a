"""Prompts for generate and chat, rendered as Ollama does, and the parser of each reply.

The request's `template`, or the model's template layer, is an Ollama Go template; without
one, the GGUF's own Jinja chat template is rendered by llama.cpp (`RunnerBase.chat_prompt`);
without either, the prompt goes as it is. Chat history that does not fit `num_ctx` loses its
oldest messages first (system messages and the last message are kept).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyollama.engine.chat_format import ToolCallScanner
from pyollama.server.bodies import ChatRequest, GenerateRequest
from pyollama.server.replies import ChatTemplateReply, PlainReply, ReplyParser, ThinkTagReply, ToolCallReply
from pyollama.server.thinking import thinking_tags, thinks
from pyollama.store.model import ModelRecord

if TYPE_CHECKING:
    from pyollama.engine.base import RunnerBase
    from pyollama.engine.chat_format import ChatPrompt
    from pyollama.templates.gotext import Template
    from pyollama.templates.prompt import Truncation

log = logging.getLogger("pyollama.server")


def conversation(record: ModelRecord, req: ChatRequest) -> list[dict[str, Any]]:
    """The model's MESSAGE history, then the request's; the model's SYSTEM first unless the
    request opens with its own system message."""
    messages = [dict(m) for m in record.messages] + [m.to_template() for m in req.messages]
    if record.system and (not req.messages or req.messages[0].role != "system"):
        messages.insert(0, {"role": "system", "content": record.system})
    return messages


@dataclass
class PreparedPrompt:
    """The prompt as the engine gets it, and what reads the reply back: llama.cpp's chat code
    (`chat`) or the Go template's thinking tags (`go_template`). Not the template renderer's
    `templates.prompt.RenderedPrompt`, which is one input to it."""

    prompt: str
    images: list[bytes] = field(default_factory=list)  # in the order the prompt refers to them
    chat: ChatPrompt | None = None  # set when llama.cpp's chat code rendered it (and parses the reply)
    go_template: Template | None = None  # set when an Ollama Go template rendered it


def _plain_prompt(messages: list[dict[str, Any]]) -> str:
    """Ollama's default template `{{ .Prompt }}` over a conversation: user and assistant turns, in order."""
    return "".join(m.get("content", "") for m in messages if m.get("role") in ("user", "assistant"))


def _images(messages: list[dict[str, Any]]) -> list[bytes]:
    return [image for m in messages for image in m.get("images") or []]


def _tag_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's `[img-N]` tags for the images of each message, numbered as `_images` lists them:
    in place of `[img]` in the content, else in front of it (as chatPrompt does for Go templates),
    so the engine knows where each image goes in a prompt rendered by the Jinja template."""
    tagged = []
    n = 0
    for message in messages:
        images = message.get("images") or []
        if not images:
            tagged.append(message)
            continue
        content, prefix = message.get("content") or "", ""
        for _ in images:
            tag = f"[img-{n}]"
            n += 1
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        tagged.append({**message, "content": prefix + content})
    return tagged


def _truncation(runner: RunnerBase, record: ModelRecord, truncate: bool) -> Truncation | None:
    from pyollama.templates.prompt import Truncation

    if not truncate:
        return None
    # Ollama counts 768 tokens per image when the model has a vision projector.
    return Truncation(
        count_tokens=lambda text: len(runner.tokenize(text)),
        num_ctx=runner.n_ctx,
        image_tokens=768 if record.projector_paths else 0,
    )


def _render_jinja(
    runner: RunnerBase, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, think: bool | str | None
) -> PreparedPrompt:
    tagged = _tag_images(messages)
    if runner.has_chat_template:
        from pyollama.templates.values import think_level

        chat = runner.chat_prompt(
            tagged, tools=tools or None, think=None if think is None else thinks(think), reasoning_effort=think_level(think)
        )
        return PreparedPrompt(prompt=chat.prompt, images=_images(messages), chat=chat)
    return PreparedPrompt(prompt=_plain_prompt(tagged), images=_images(messages))


def render_conversation(
    runner: RunnerBase,
    record: ModelRecord,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None,
    think: bool | str | None,
    truncate: bool,
) -> PreparedPrompt:
    """Ollama's chatPrompt: render with the model's Go template, else the GGUF's Jinja template
    (else plain text), dropping the oldest messages until the prompt fits `num_ctx` (system
    messages and the last message are always kept)."""
    if record.template is not None:
        from pyollama.templates.prompt import chat_prompt, parse_template

        template = parse_template(record.template)
        rendered = chat_prompt(
            template, messages, tools=tools, think=think, truncation=_truncation(runner, record, truncate)
        )
        return PreparedPrompt(prompt=rendered.prompt, images=list(rendered.images), go_template=template)
    full = _render_jinja(runner, messages, tools, think)
    if not truncate or len(messages) <= 1 or len(runner.tokenize(full.prompt)) <= runner.n_ctx:
        return full

    # The prompt shrinks as more messages are dropped, so the fewest drops that fit are
    # found by bisection: O(log n) renders rather than Ollama's O(n).
    def render_from(start: int) -> PreparedPrompt:
        kept = [m for m in messages[:start] if m.get("role") == "system"] + messages[start:]
        return _render_jinja(runner, kept, tools, think)

    lo, hi = 1, len(messages) - 1  # hi (only the last message) is used even when it does not fit
    best = render_from(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        candidate = render_from(mid)
        if len(runner.tokenize(candidate.prompt)) <= runner.n_ctx:
            best, hi = candidate, mid
        else:
            lo = mid + 1
    log.debug("truncated chat history: dropped %d of %d messages", hi, len(messages))
    return best


def reply_parser(rendered: PreparedPrompt, tools: list[dict[str, Any]] | None, think: bool | str | None) -> ReplyParser:
    thinking = thinks(think)
    if rendered.chat is not None:
        if tools:
            # JSON calls llama.cpp's parser leaves in the content are found after it
            return ToolCallReply(ToolCallScanner(tools), ChatTemplateReply(rendered.chat))
        return ChatTemplateReply(rendered.chat) if thinking else PlainReply()
    if rendered.go_template is not None:
        from pyollama.templates.prompt import tool_call_tags

        inner: ReplyParser = PlainReply()
        if tools:
            call_open, call_close = tool_call_tags(rendered.go_template)
            # a template without a tag writes calls as bare JSON (Ollama's `{` tag)
            scanner = ToolCallScanner(tools, opening=call_open, closing=call_close, json_is_native=not call_open)
            inner = ToolCallReply(scanner)
        if not thinking:
            return inner
        tags = thinking_tags(rendered)
        assert tags is not None
        return ThinkTagReply(inner, opening=tags.opening, closing=tags.closing, opened=tags.opened)
    return PlainReply()


def render_generate(
    runner: RunnerBase, record: ModelRecord, req: GenerateRequest, think: bool | str | None
) -> tuple[PreparedPrompt, str | None]:
    """(rendered prompt, suffix for the engine's FIM tokens or None)."""
    if req.raw:
        return PreparedPrompt(prompt=req.prompt, images=list(req.images)), None
    template_text = req.template or record.template
    template: Template | None = None
    if template_text:
        from pyollama.templates.prompt import parse_template, uses_suffix

        template = parse_template(template_text)
    if req.suffix and (template is None or not uses_suffix(template)):
        # The template cannot fill in the middle: the engine builds the prompt from the
        # vocabulary's FIM tokens (the `insert` capability says the model has them).
        return PreparedPrompt(prompt=req.prompt, images=list(req.images)), req.suffix
    if template is not None:
        from pyollama.templates.prompt import generate_prompt

        rendered = generate_prompt(
            template,
            prompt=req.prompt,
            system=req.system,
            model_system=record.system or "",
            history=record.messages if req.context is None else (),
            suffix=req.suffix or None,
            images=req.images,
            think=think,
            request_template=bool(req.template),
            truncation=_truncation(runner, record, req.truncate),
        )
        result = PreparedPrompt(prompt=rendered.prompt, images=list(rendered.images), go_template=template)
    else:
        messages: list[dict[str, Any]] = []
        system = req.system if req.system is not None else record.system
        if system:
            messages.append({"role": "system", "content": system})
        if req.context is None:
            messages.extend(record.messages)
        user: dict[str, Any] = {"role": "user", "content": req.prompt}
        if req.images:
            user["images"] = req.images
        messages.append(user)
        result = render_conversation(runner, record, messages, tools=None, think=think, truncate=req.truncate)
    if req.context:
        # Deprecated continuation: the earlier conversation's tokens, as text, before the new turn.
        log.warning("the context field is deprecated and will be removed in a future version of Ollama")
        result.prompt = runner.detokenize(req.context) + result.prompt
    return result, None
