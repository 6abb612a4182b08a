"""`POST /api/generate` (API.md §2), and the inference steps it shares with chat and embed.

The order of checks is Ollama's GenerateHandler: body, `top_logprobs`, model
name, model lookup, unload, raw-mode conflicts, thinking, capabilities,
options and load, load-only answer, then prompt rendering and generation.

Prompts: the request's `template`, or the model's template layer, is an Ollama
Go template; without one, the GGUF's own Jinja chat template is rendered by
llama.cpp (`Runner.chat_prompt`); without either, the prompt goes as it is.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from pyollama.engine.options import PredictOptions, RunnerOptions, parse_options, split_options
from pyollama.errors import BadRequestError, CanceledError, NotFoundError
from pyollama.server import ServerState, get_state
from pyollama.server.errors import json_response
from pyollama.server.metrics import note_model
from pyollama.server.requests import (
    Format,
    GenerateRequest,
    check_top_logprobs,
    parse_format,
    read_json,
)
from pyollama.server.streaming import (
    ChatTemplateReply,
    Delta,
    JsonToolReply,
    PlainReply,
    ReplyParser,
    ThinkTagReply,
    metrics,
    ndjson_response,
    now_utc,
    stream_completion,
)
from pyollama.store.model import ModelRecord
from pyollama.store.names import ModelName

if TYPE_CHECKING:
    from pyollama.engine.runner import ChatPrompt, CompletionRequest, RunnerBase
    from pyollama.templates.gotext import Template
    from pyollama.templates.prompt import Truncation

log = logging.getLogger("pyollama.server")

bp = Blueprint("generate", __name__)


# -- steps shared by generate, chat and embed ---------------------------------------------------


def find_model(state: ServerState, name: ModelName, not_found: str) -> ModelRecord:
    note_model(name.display)
    found = state.store.resolve(name)
    if found is None:
        raise NotFoundError(not_found)
    try:
        return state.store.load_record(found)
    except NotFoundError:  # deleted between resolve and read
        raise NotFoundError(not_found) from None


def unload_model(state: ServerState, record: ModelRecord) -> None:
    """keep_alive 0 with nothing to run: unload if loaded (no scheduler means nothing is)."""
    scheduler = state.started_scheduler()
    if scheduler is not None:
        scheduler.unload(record)


def resolve_think(model: str, think: bool | str | None, capabilities: list[str]) -> bool | str | None:
    """Thinking models think unless told not to; others refuse `think: true` or a level."""
    if "thinking" in capabilities:
        return True if think is None else think
    if think is not None and think is not False:
        raise BadRequestError(f'"{model}" does not support thinking')
    return think


def build_options(
    state: ServerState, record: ModelRecord, request_options: dict[str, Any]
) -> tuple[RunnerOptions, PredictOptions]:
    """Defaults < the model's PARAMETERs < the request's `options`, split into load-time and per-request."""
    merged = parse_options(record.params, request_options)
    return split_options(merged, RunnerOptions(num_ctx=state.config.context_length))


@dataclass
class Lease:
    """A runner held for one request; `release` gives it back (the keep-alive timer starts then)."""

    runner: RunnerBase
    load_ns: int
    release: Callable[[], None]


def acquire_runner(
    state: ServerState, record: ModelRecord, options: RunnerOptions, keep_alive: float | None, started_ns: int
) -> Lease:
    if record.model_path is None:
        raise BadRequestError(f'"{record.name.display}" has no model weights to run')
    stack = contextlib.ExitStack()
    runner = stack.enter_context(state.scheduler().acquire(record, options, keep_alive))
    # Ollama's load_duration runs from the request's start to the runner being ready (queueing included).
    return Lease(runner=runner, load_ns=time.perf_counter_ns() - started_ns, release=stack.close)


@dataclass
class RenderedPrompt:
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
) -> RenderedPrompt:
    tagged = _tag_images(messages)
    if runner.has_chat_template:
        chat = runner.chat_prompt(tagged, tools=tools or None, think=None if think is None else bool(think))
        return RenderedPrompt(prompt=chat.prompt, images=_images(messages), chat=chat)
    return RenderedPrompt(prompt=_plain_prompt(tagged), images=_images(messages))


def render_conversation(
    runner: RunnerBase,
    record: ModelRecord,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None,
    think: bool | str | None,
    truncate: bool,
) -> RenderedPrompt:
    """Ollama's chatPrompt: render with the model's Go template, else the GGUF's Jinja template
    (else plain text), dropping the oldest messages until the prompt fits `num_ctx` (system
    messages and the last message are always kept)."""
    if record.template is not None:
        from pyollama.templates.prompt import chat_prompt, parse_template

        template = parse_template(record.template)
        rendered = chat_prompt(
            template, messages, tools=tools, think=think, truncation=_truncation(runner, record, truncate)
        )
        return RenderedPrompt(prompt=rendered.prompt, images=list(rendered.images), go_template=template)
    full = _render_jinja(runner, messages, tools, think)
    if not truncate or len(messages) <= 1 or len(runner.tokenize(full.prompt)) <= runner.n_ctx:
        return full

    # The prompt shrinks as more messages are dropped, so the fewest drops that fit are
    # found by bisection: O(log n) renders rather than Ollama's O(n).
    def render_from(start: int) -> RenderedPrompt:
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


def reply_parser(rendered: RenderedPrompt, tools: list[dict[str, Any]] | None, think: bool | str | None) -> ReplyParser:
    thinking = think is not None and think is not False
    if rendered.chat is not None:
        return ChatTemplateReply(rendered.chat) if tools or thinking else PlainReply()
    if rendered.go_template is not None:
        from pyollama.templates.prompt import thinking_tags

        names = {
            t["function"]["name"]
            for t in tools or []
            if isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
        }
        inner: ReplyParser = JsonToolReply(names) if tools else PlainReply()
        if not thinking:
            return inner
        opening, closing = thinking_tags(rendered.go_template)
        if opening and closing:
            return ThinkTagReply(inner, opening=opening, closing=closing)
        return ThinkTagReply(inner)
    return PlainReply()


def completion_request(
    prompt: str,
    predict: PredictOptions,
    fmt: Format,
    *,
    truncate: bool,
    shift: bool,
    images: list[bytes],
    chat: ChatPrompt | None = None,
    suffix: str | None = None,
) -> CompletionRequest:
    from pyollama.engine.runner import CompletionRequest

    req = CompletionRequest(
        prompt=prompt,
        options=predict,
        json_schema=fmt.schema,
        json_mode=fmt.json_mode,
        truncate=truncate,
        shift=shift,
        suffix=suffix,
        images=images,
    )
    if chat is not None:
        req = chat.apply_to(req)
    return req


@dataclass
class InferenceRun:
    """A generate or chat request under way, shared by the Ollama routes and the OpenAI layer:
    Ollama's response objects (text chunks, then the final one with `done` and the metrics) and
    what gives the runner back. Whoever takes it either streams `events` (releasing on close) or
    calls `collect`."""

    events: Iterator[dict[str, Any]]
    release: Callable[[], None]
    aggregate: Callable[[Iterator[dict[str, Any]]], dict[str, Any]]

    def collect(self) -> dict[str, Any]:
        """The whole reply as one object: the final chunk with every piece joined (stream:false).
        A client that hangs up meanwhile cancels the generation (499), as a closed stream does."""
        try:
            return self.aggregate(_until_disconnected(self.events))
        finally:
            self.events.close()  # type: ignore[attr-defined]
            self.release()

    def respond(self, stream: bool) -> Response:
        if stream:
            return ndjson_response(self.events, on_close=[self.release])
        return json_response(self.collect())


def _until_disconnected(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`events`, checking between them whether the client is still there. waitress tells when it
    reads ahead on the connection (`channel_request_lookahead`); other WSGI servers never do."""
    gone = request.environ.get("waitress.client_disconnected")
    for event in events:
        if gone is not None and gone():
            raise CanceledError("request canceled")
        yield event


# -- the handler ------------------------------------------------------------------------------


def _chunk(model: str, delta: Delta) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": now_utc(), "response": delta.content}
    if delta.thinking:
        out["thinking"] = delta.thinking
    out["done"] = False
    if delta.tool_calls:
        out["tool_calls"] = delta.tool_calls
    return out


def _final(model: str, delta: Delta, raw: bool, started_ns: int, load_ns: int) -> dict[str, Any]:
    result = delta.result
    out: dict[str, Any] = {"model": model, "created_at": now_utc(), "response": "", "done": True}
    if result is not None and result.done_reason:
        out["done_reason"] = result.done_reason
    if result is not None and not raw:
        out["context"] = list(result.context)
    out.update(metrics(result, started_ns, load_ns))
    return out


def _events(model: str, deltas: Iterator[Delta], raw: bool, started_ns: int, load_ns: int) -> Iterator[dict[str, Any]]:
    try:
        for delta in deltas:
            if delta.result is not None:
                yield _final(model, delta, raw, started_ns, load_ns)
            else:
                yield _chunk(model, delta)
    finally:
        deltas.close()  # type: ignore[attr-defined]


def _aggregate(events: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """stream:false: the final chunk with every piece of text and every tool call joined."""
    text: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    for event in events:
        text.append(event.get("response", ""))
        thinking.append(event.get("thinking", ""))
        tool_calls.extend(event.get("tool_calls", []))
        final = event
    out: dict[str, Any] = {"model": final.get("model"), "created_at": final.get("created_at"), "response": "".join(text)}
    if any(thinking):
        out["thinking"] = "".join(thinking)
    out.update({k: v for k, v in final.items() if k not in out and k not in ("thinking", "tool_calls")})
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def done_response(model: str, reason: str, chat: bool) -> Response:
    """The answer to a load-only or unload request (never streamed in pieces)."""
    body: dict[str, Any] = {"model": model, "created_at": now_utc()}
    if chat:
        body["message"] = {"role": "assistant", "content": ""}
    else:
        body["response"] = ""
    body["done"] = True
    body["done_reason"] = reason
    return json_response(body)


@bp.post("/api/generate")
def generate() -> Response:
    started = time.perf_counter_ns()
    req = GenerateRequest.from_json(read_json(request))
    run = start_generate(get_state(), req, started)
    return run if isinstance(run, Response) else run.respond(req.stream)


def start_generate(state: ServerState, req: GenerateRequest, started: int) -> InferenceRun | Response:
    """Everything /api/generate does after decoding its body: the checks, the load and the
    completion under way; or the answer itself for a load, an unload or `_debug_render_only`."""
    check_top_logprobs(req.top_logprobs)
    if req.model == "":
        raise NotFoundError("model '' not found")
    name = ModelName.parse(req.model)
    record = find_model(state, name, f"model '{req.model}' not found")
    if req.prompt == "" and req.keep_alive == 0:
        unload_model(state, record)
        return done_response(req.model, "unload", chat=False)
    if req.raw and (req.template or req.system is not None or req.context):
        raise BadRequestError("raw mode does not support template, system, or context")
    capabilities = record.capabilities()
    think = resolve_think(req.model, req.think, capabilities)
    if "completion" not in capabilities:
        raise BadRequestError(f'"{req.model}" does not support generate')
    if req.suffix and "insert" not in capabilities:
        raise BadRequestError(f"{record.name.full} does not support insert")
    runner_options, predict = build_options(state, record, req.options)
    fmt = parse_format(req.format)
    lease = acquire_runner(state, record, runner_options, req.keep_alive, started)
    try:
        if req.prompt == "":
            lease.release()
            return done_response(req.model, "load", chat=False)
        rendered, suffix = _generate_prompt(lease.runner, record, req, think)
        if req.debug_render_only:
            lease.release()
            info: dict[str, Any] = {"rendered_template": rendered.prompt}
            if req.images:
                info["image_count"] = len(req.images)
            return json_response(
                {"model": req.model, "created_at": now_utc(), "response": "", "done": False, "_debug_info": info}
            )
        creq = completion_request(
            rendered.prompt,
            predict,
            fmt,
            truncate=req.truncate,
            shift=req.shift,
            images=rendered.images,
            chat=rendered.chat,
            suffix=suffix,
        )
        parser = reply_parser(rendered, None, think)
        deltas = stream_completion(lease.runner, creq, parser)
        events = _events(req.model, deltas, req.raw, started, lease.load_ns)
    except BaseException:
        lease.release()
        raise
    return InferenceRun(events, lease.release, _aggregate)


def _generate_prompt(
    runner: RunnerBase, record: ModelRecord, req: GenerateRequest, think: bool | str | None
) -> tuple[RenderedPrompt, str | None]:
    """(rendered prompt, suffix for the engine's FIM tokens or None)."""
    if req.raw:
        return RenderedPrompt(prompt=req.prompt, images=list(req.images)), None
    template_text = req.template or record.template
    if template_text:
        from pyollama.templates.prompt import generate_prompt, parse_template

        template = parse_template(template_text)
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
        result = RenderedPrompt(prompt=rendered.prompt, images=list(rendered.images), go_template=template)
    elif req.suffix:
        # No Go template: the engine builds the fill-in-the-middle prompt from the model's FIM tokens.
        return RenderedPrompt(prompt=req.prompt, images=list(req.images)), req.suffix
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
