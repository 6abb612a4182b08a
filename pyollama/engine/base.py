"""What the scheduler and the server know of a loaded model (`RunnerBase`) and of a request in
flight (`Completion`), whichever process runs the model."""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Iterator
from typing import Any

from pyollama.engine.chat_format import ChatPrompt, to_openai_messages
from pyollama.engine.slots import CompletionResult
from pyollama.engine.types import CompletionChunk, CompletionRequest, EmbedResult
from pyollama.errors import BadRequestError
from pyollama.llama import ChatTemplates, Model


class Completion(abc.ABC):
    """The caller's handle on a request in flight: iterate for text; cancel when the client leaves."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[CompletionChunk]: ...

    @abc.abstractmethod
    def cancel(self) -> None: ...

    @property
    @abc.abstractmethod
    def result(self) -> CompletionResult: ...

    @property
    @abc.abstractmethod
    def n_cached(self) -> int:
        """Prompt tokens taken from the prompt cache instead of evaluated (final once the
        completion has ended)."""


class RunnerBase(abc.ABC):
    """What the scheduler and the server know of a loaded model: prompts in, text out.

    The base holds the model's vocabulary and chat templates (tokenizing and rendering run on
    the request's thread); subclasses run the model in this process (`Runner`) or in a child
    process (`runner_process.ProcessRunner`)."""

    n_ctx: int
    load_duration_ns: int
    embedding_only: bool

    repack = True  # weights in the CPU's extra buffer types (AMX, repacked layouts): `Model(repack=)`
    flash_attention = "auto"  # the generation context's: "on", "off" (measured or set) or "auto"

    def __init__(self, model: Model) -> None:
        self.model = model
        self._templates: ChatTemplates | None = None
        self._effort_templates: dict[str, ChatTemplates] = {}  # by reasoning effort, under the lock
        self._templates_lock = threading.Lock()

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes the loaded model holds (weights and KV cache)."""

    @property
    def size_vram(self) -> int:
        """Of `size`, the bytes on accelerators and RPC workers (`/api/ps`)."""
        return 0

    @property
    def alive(self) -> bool:
        """False once the model can no longer run (its process died): the scheduler replaces it."""
        return True

    @property
    def faulted_before_first_decode(self) -> bool:
        """The runner died by a native fault before any text or embedding came back (only a runner
        in a process of its own can tell: an in-process fault ends the server)."""
        return False

    @property
    @abc.abstractmethod
    def n_queued(self) -> int:
        """Completions waiting for a free sequence (read-only; for metrics)."""

    @property
    @abc.abstractmethod
    def n_active(self) -> int:
        """Sequences evaluating a prompt or generating (read-only; for metrics)."""

    @property
    @abc.abstractmethod
    def busy(self) -> bool: ...

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion: ...

    @abc.abstractmethod
    def embed(self, inputs: list[str], *, truncate: bool = True) -> EmbedResult: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        return list(self.model.tokenize(text, add_special, parse_special))

    def detokenize(self, tokens: list[int]) -> str:
        n_vocab = self.model.n_vocab
        for token in tokens:  # token ids from a client (`context`)
            if not isinstance(token, int) or not 0 <= token < n_vocab:
                raise BadRequestError(f"invalid context: token id {token} out of range [0, {n_vocab})")
        return str(self.model.detokenize(tokens))

    def chat_templates(self, override: str = "") -> ChatTemplates:
        if override:
            return ChatTemplates(self.model, override)
        with self._templates_lock:
            if self._templates is None:
                self._templates = ChatTemplates(self.model)
            return self._templates

    def _templates_for_effort(self, effort: str) -> ChatTemplates:
        """The model's Jinja template with `reasoning_effort` set, as llama-server sets it from a
        request's `reasoning_effort` (and its alias `reasoning_strength`): the variable is
        assigned at the top of the template, which llama.cpp's chat code then renders and
        analyses as the model's own."""
        with self._templates_lock:
            found = self._effort_templates.get(effort)
        if found is not None:
            return found
        literal = json.dumps(effort)
        source = self.model.chat_template() or ""
        override = f"{{% set reasoning_effort = {literal} %}}{{% set reasoning_strength = {literal} %}}{source}"
        templates = ChatTemplates(self.model, override)
        with self._templates_lock:
            return self._effort_templates.setdefault(effort, templates)

    @property
    def has_chat_template(self) -> bool:
        return self.model.chat_template() is not None

    def chat_prompt(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        think: bool | None = None,
        reasoning_effort: str | None = None,
    ) -> ChatPrompt:
        """The prompt the GGUF's Jinja template renders (`think` is its `enable_thinking`, a
        `reasoning_effort` level is set for the templates that read one)."""
        try:
            templates = self.chat_templates() if reasoning_effort is None else self._templates_for_effort(reasoning_effort)
            params = templates.apply(
                json.dumps(to_openai_messages(messages)),
                json.dumps(tools) if tools else "",
                add_generation_prompt,
                enable_thinking=bool(think) if think is not None else True,
                parallel_tool_calls=bool(tools),
            )
        except ValueError as e:
            raise BadRequestError(str(e)) from e
        return ChatPrompt(
            prompt=params.prompt,
            grammar=params.grammar or None,
            grammar_lazy=params.grammar_lazy,
            grammar_triggers=list(params.grammar_triggers),
            preserved_tokens=list(params.preserved_tokens),
            additional_stops=list(params.additional_stops),
            generation_prompt=params.generation_prompt,
            format=params.format,
            _params=params,
        )
