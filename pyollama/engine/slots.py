"""Slots: one llama.cpp sequence each, with the state machine of one request.

A slot belongs to the decode thread; other threads only touch a task's
`cancel` event and read its result queue.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyollama.engine.detokenizer import StreamDetokenizer
from pyollama.engine.logprobs import PendingLogprobs


class SlotState(enum.Enum):
    IDLE = "idle"
    PROMPT = "prompt"          # evaluating prompt chunks
    GENERATING = "generating"  # one token per step


@dataclass
class CompletionResult:
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    prompt_eval_duration_ns: int = 0
    eval_count: int = 0
    eval_duration_ns: int = 0
    context: list[int] = field(default_factory=list)
    draft_count: int = 0         # speculative decoding: tokens drafted, and those the model kept
    draft_accepted: int = 0


# Sentinel put on a task's queue after its last piece of text.
END = object()


@dataclass
class Task:
    """One completion request from admission to its last token (decode thread owns the mutable parts)."""

    prompt: list[int]
    sampler: Any
    detok: StreamDetokenizer
    num_predict: int
    media: Any = None            # MtmdChunks for a prompt with images (evaluated by the projector)
    shift: bool = True           # on a full context, shift it (else end with "length")
    num_keep: int = 4            # tokens kept at the start on a shift (Ollama's num_keep)
    n_top_logprobs: int = -1     # -1: no log-probabilities; else how many top tokens per token
    n_draft: int = 0             # speculative decoding: drafts per step at most (0: off)
    drafter: Any = None          # an NgramDrafter when drafts come from prompt lookup
    out: queue.Queue[Any] = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    # progress, written by the decode thread
    i_prompt: int = 0            # prompt tokens already in the KV cache
    n_evaluated: int = 0         # prompt tokens evaluated by this request (cache hits excluded)
    generated: list[int] = field(default_factory=list)
    logprobs: PendingLogprobs = field(default_factory=PendingLogprobs)
    # tokens to evaluate again before generating on: what a shift keeps when the memory cannot
    # move positions (the sequence's KV was cleared); the last is the token sampled last
    replay: list[int] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    t_prompt_done: float = 0.0
    result: CompletionResult = field(default_factory=CompletionResult)
    n_drafted: int = 0           # speculative decoding: draft tokens proposed, and accepted
    n_accepted: int = 0


@dataclass
class Slot:
    seq_id: int
    state: SlotState = SlotState.IDLE
    cache: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds, in order
    task: Task | None = None
    last_token: int = -1          # sampled, not yet decoded
    i_batch: int = -1             # index of this slot's output row in the current batch
    drafts: list[int] = field(default_factory=list)  # in the current batch after last_token

    @property
    def n_past(self) -> int:
        return len(self.cache)
