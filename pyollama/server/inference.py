"""The service the routes call: generate, chat and embed, from a decoded request to a reply
under way. Shared by the Ollama routes and the OpenAI ones.

The steps, in Ollama's order (GenerateHandler, ChatHandler): find the model, unload or
refuse what it cannot do, build the options, lease a runner (loading the model), render the
prompt, run the completion. A completion stops when its events are closed: the stream's body
closed by the WSGI server, or a client that hangs up during a stream:false request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from flask import Response, request

from pyollama.engine.options import parse_options, split_options
from pyollama.engine.tool_grammar import tool_call_grammar
from pyollama.errors import BadRequestError, CanceledError, NotFoundError, PyollamaError
from pyollama.options import PredictOptions, RunnerOptions
from pyollama.server import ServerState
from pyollama.server.bodies import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    Format,
    GenerateRequest,
    InferenceRequest,
    check_top_logprobs,
    parse_format,
)
from pyollama.server.metrics import CompletionTimer, completion_timer, note_model, note_prompt_tokens
from pyollama.server.prompts import (
    PreparedPrompt,
    conversation,
    render_conversation,
    render_generate,
    reply_parser,
)
from pyollama.server.replies import Delta, ReplyParser
from pyollama.server.responses import json_response
from pyollama.server.shapes import CHAT, GENERATE, ReplyShape
from pyollama.server.streaming import NDJSON_WIRE, Wire, stream_response
from pyollama.server.thinking import drop_earlier_thinking, hold_format_until_answer, model_tags
from pyollama.store.model import ModelRecord
from pyollama.store.names import ModelName

if TYPE_CHECKING:
    from pyollama.engine.base import RunnerBase
    from pyollama.engine.types import CompletionRequest, EmbedResult

log = logging.getLogger("pyollama.server")


# -- the steps --------------------------------------------------------------------------------


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


class Lease:
    """A runner held for one request; `release` gives it back (the keep-alive timer starts then).

    `reload` replaces a runner that died under the request by a freshly loaded one, once, when
    that may help: the runner died by a native fault before its first decode with the CPU's
    extra buffer types on, which the scheduler then turns off for the model (PYOLLAMA_REPACK
    unset). The request goes on as if nothing happened; the scheduler logs the one warning."""

    def __init__(self, state: ServerState, record: ModelRecord, options: RunnerOptions,
                 keep_alive: float | None, started_ns: int) -> None:
        self._scheduler = state.scheduler()
        self._acquire = functools.partial(self._scheduler.acquire, record, options, keep_alive)
        self._may_reload = True
        self._stack = contextlib.ExitStack()
        self.runner: RunnerBase = self._stack.enter_context(self._acquire())
        # Ollama's load_duration runs from the request's start to the runner being ready (queueing included).
        self.load_ns = time.perf_counter_ns() - started_ns

    def release(self) -> None:
        self._stack.close()

    def reloadable(self) -> bool:
        return self._may_reload and self._scheduler.heals_by_reload(self.runner)

    def reload(self) -> RunnerBase:
        self._may_reload = False
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.runner = self._stack.enter_context(self._acquire())
        return self.runner


def acquire_runner(
    state: ServerState, record: ModelRecord, options: RunnerOptions, keep_alive: float | None, started_ns: int
) -> Lease:
    if record.model_path is None:
        raise BadRequestError(f'"{record.name.display}" has no model weights to run')
    return Lease(state, record, options, keep_alive, started_ns)


def completion_request(
    rendered: PreparedPrompt, predict: PredictOptions, fmt: Format, req: InferenceRequest, suffix: str | None = None
) -> CompletionRequest:
    """What the runner gets: the prompt, the options, the format's grammar, and what llama.cpp's
    chat code adds for a prompt it rendered (tool-call grammar, stop words)."""
    from pyollama.engine.types import CompletionRequest

    creq = CompletionRequest(
        prompt=rendered.prompt,
        options=predict,
        json_schema=fmt.schema,
        json_mode=fmt.json_mode,
        truncate=req.truncate,
        shift=req.shift,
        logprobs=req.logprobs,
        top_logprobs=req.top_logprobs,
        suffix=suffix,
        images=rendered.images,
    )
    if rendered.chat is not None:
        creq = rendered.chat.apply_to(creq)
    return creq


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

    def stream(self, wire: Wire = NDJSON_WIRE) -> Response:
        """The events as a stream; the runner goes back when the body is closed."""
        return stream_response(self.events, wire, on_close=[self.release])

    def respond(self, stream: bool) -> Response:
        """Ollama's answer: NDJSON, or one JSON object."""
        return self.stream() if stream else json_response(self.collect())


def _until_disconnected(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`events`, checking between them whether the client is still there. waitress tells when it
    reads ahead on the connection (`channel_request_lookahead`); other WSGI servers never do."""
    gone = request.environ.get("waitress.client_disconnected")
    for event in events:
        if gone is not None and gone():
            raise CanceledError("request canceled")
        yield event


def stream_completion(lease: Lease, creq: CompletionRequest, parser: ReplyParser) -> Iterator[Delta]:
    """Run one completion on the lease's runner, yielding reply deltas and, last, a Delta
    carrying the result.

    Closing the generator before the end (client gone) cancels the completion. The running
    request's metrics (time to first token, per-token latency, token counts) are observed as it
    goes; the timer is taken now, while the request context exists, since a stream's body is
    iterated after it has gone.
    """
    return _completion_deltas(lease, creq, parser, completion_timer())


def _completion_deltas(
    lease: Lease, creq: CompletionRequest, parser: ReplyParser, timer: CompletionTimer | None
) -> Iterator[Delta]:
    completion = lease.runner.complete(creq)
    finished = False
    try:
        chunks = iter(completion)
        try:
            first = [next(chunks)]
        except StopIteration:
            first = []
        except PyollamaError:
            if not lease.reloadable():
                raise
            completion = lease.reload().complete(creq)
            chunks = iter(completion)
            first = []
        for chunk in itertools.chain(first, chunks):
            if timer is not None:
                timer.piece()
            delta = parser.feed(chunk.text)
            if chunk.logprobs:
                # they go out even while the parser holds the text back, as in Ollama
                delta = dataclasses.replace(delta, logprobs=list(chunk.logprobs))
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


# -- generate and chat -------------------------------------------------------------------------


def _open_model(
    state: ServerState, req: InferenceRequest, shape: ReplyShape, empty_model: PyollamaError, nothing_to_run: bool
) -> ModelRecord | dict[str, Any]:
    """The first steps of generate and chat: the model, or the answer to an unload request
    (keep_alive 0 with nothing to run)."""
    check_top_logprobs(req.top_logprobs)
    if req.model == "":
        raise empty_model
    record = find_model(state, ModelName.parse(req.model), f"model '{req.model}' not found")
    if nothing_to_run and req.keep_alive == 0:
        unload_model(state, record)
        return shape.done(req.model, "unload")
    return record


def _completion_think(req: InferenceRequest, capabilities: list[str], what: str) -> bool | str | None:
    think = resolve_think(req.model, req.think, capabilities)
    if "completion" not in capabilities:
        raise BadRequestError(f'"{req.model}" does not support {what}')
    return think


def _lease(
    state: ServerState, record: ModelRecord, req: InferenceRequest, started: int
) -> tuple[Lease, PredictOptions, Format]:
    """The options, the format and a runner for them (loading the model)."""
    runner_options, predict = build_options(state, record, req.options)
    fmt = parse_format(req.format)
    return acquire_runner(state, record, runner_options, req.keep_alive, started), predict, fmt


def start_generate(state: ServerState, req: GenerateRequest, started: int) -> InferenceRun | dict[str, Any]:
    """Everything /api/generate does after decoding its body: the checks, the load and the
    completion under way; or the answer itself for a load, an unload or `_debug_render_only`."""
    record = _open_model(state, req, GENERATE, NotFoundError("model '' not found"), req.prompt == "")
    if isinstance(record, dict):
        return record
    if req.raw and (req.template or req.system is not None or req.context):
        raise BadRequestError("raw mode does not support template, system, or context")
    capabilities = record.capabilities()
    think = _completion_think(req, capabilities, "generate")
    if req.suffix and "insert" not in capabilities:
        raise BadRequestError(f"{record.name.full} does not support insert")
    lease, predict, fmt = _lease(state, record, req, started)
    try:
        if req.prompt == "":
            lease.release()
            return GENERATE.done(req.model, "load")
        rendered, suffix = render_generate(lease.runner, record, req, think)
        if req.debug_render_only:
            lease.release()
            return GENERATE.debug(req.model, rendered.prompt, len(req.images))
        creq = completion_request(rendered, predict, fmt, req, suffix)
        hold_format_until_answer(creq, rendered, think)
        parser = reply_parser(rendered, None, think)
        deltas = stream_completion(lease, creq, parser)
        events = GENERATE.events(req.model, deltas, started, lease.load_ns, context=not req.raw)
    except BaseException:
        lease.release()
        raise
    return InferenceRun(events, lease.release, GENERATE.aggregate)


def start_chat(state: ServerState, req: ChatRequest, started: int) -> InferenceRun | dict[str, Any]:
    """Everything /api/chat does after decoding its body: the checks, the load and the completion
    under way; or the answer itself for a load, an unload or `_debug_render_only`."""
    record = _open_model(state, req, CHAT, BadRequestError("model is required"), not req.messages)
    if isinstance(record, dict):
        return record
    capabilities = record.capabilities()
    think = _completion_think(req, capabilities, "chat")
    if req.tools and "tools" not in capabilities:
        raise BadRequestError(f"{record.name.full} does not support tools")
    lease, predict, fmt = _lease(state, record, req, started)
    try:
        if not req.messages:
            lease.release()
            return CHAT.done(req.model, "load")
        messages = conversation(record, req)
        if "thinking" in capabilities:
            # Ollama's filterThinkTags (for every thinking model here, with its own tags)
            messages = drop_earlier_thinking(messages, model_tags(record))
        rendered = render_conversation(
            lease.runner, record, messages, tools=req.tools or None, think=think, truncate=req.truncate
        )
        if req.debug_render_only:
            lease.release()
            return CHAT.debug(req.model, rendered.prompt, sum(len(m.images) for m in req.messages))
        creq = completion_request(rendered, predict, fmt, req)
        hold_format_until_answer(creq, rendered, think)
        if req.tools and rendered.go_template is not None and not (fmt.json_mode or fmt.schema is not None):
            # Go templates come with no tool-call grammar: constrain calls once the model starts one.
            constrained = tool_call_grammar(req.tools)
            if constrained is not None:
                creq.grammar, creq.grammar_lazy = constrained.grammar, True
                creq.grammar_triggers = constrained.triggers
        parser = reply_parser(rendered, req.tools, think)
        events = CHAT.events(req.model, stream_completion(lease, creq, parser), started, lease.load_ns)
    except BaseException:
        lease.release()
        raise
    return InferenceRun(events, lease.release, functools.partial(CHAT.aggregate, with_tools=bool(req.tools)))


# -- embed ------------------------------------------------------------------------------------


def normalize(vectors: npt.ArrayLike, dimensions: int) -> npt.NDArray[np.float32]:
    """L2-normalise each row (in float64); `0 < dimensions <
    width` truncates first (then normalises). A zero row stays zero."""
    arr = np.array(vectors, dtype=np.float64, ndmin=2)
    if 0 < dimensions < arr.shape[1]:
        arr = arr[:, :dimensions]
    if not np.all(np.isfinite(arr)):
        raise BadRequestError("embedding contains NaN or Inf values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return unit.astype(np.float32)


def _embed(
    state: ServerState,
    model: str,
    options: dict[str, Any],
    keep_alive: float | None,
    started: int,
    inputs: list[str],
    truncate: bool = True,
) -> tuple[EmbedResult | None, int]:
    """(the embeddings of `inputs`, or None when there is none; the load time in ns). The model
    is loaded either way, as in Ollama."""
    record = find_model(state, ModelName.parse(model), f'model "{model}" not found, try pulling it first')
    runner_options, _ = build_options(state, record, options)
    lease = acquire_runner(state, record, runner_options, keep_alive, started)
    try:
        if not inputs:
            return None, lease.load_ns
        result = lease.runner.embed(inputs, truncate=truncate)
    finally:
        lease.release()
    note_prompt_tokens(result.prompt_eval_count)
    return result, lease.load_ns


def embed_body(state: ServerState, req: EmbedRequest, started: int) -> dict[str, Any]:
    """/api/embed's answer for a decoded request."""
    inputs = req.inputs()
    if req.model == "":
        raise NotFoundError("model '' not found")
    result, load_ns = _embed(state, req.model, req.options, req.keep_alive, started, inputs, req.truncate)
    if result is None:
        return {"model": req.model, "embeddings": []}
    body: dict[str, Any] = {"model": req.model, "embeddings": normalize(result.embeddings, req.dimensions)}
    values = {
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_ns,
        "prompt_eval_count": result.prompt_eval_count,
    }
    body.update({key: value for key, value in values.items() if value})
    return body


def legacy_embedding(state: ServerState, req: EmbeddingsRequest, started: int) -> dict[str, Any]:
    """/api/embeddings' answer: one prompt's vector as the runner gives it, not normalised."""
    if req.model == "":
        raise BadRequestError("model is required")
    inputs = [req.prompt] if req.prompt != "" else []
    result, _ = _embed(state, req.model, req.options, req.keep_alive, started, inputs)
    if result is None:
        return {"embedding": []}
    # Ollama's legacy reply carries float64s (each float32 widened), so Python's own floats
    return {"embedding": result.embeddings[0].astype(np.float64).tolist()}
