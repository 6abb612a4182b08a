"""What goes into a runner and what comes out: requests, text chunks, embeddings.

`CompletionResult` (a finished completion's counts and timings) lives with the slots that fill
it in (`engine/slots.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pyollama.engine.logprobs import Logprob
from pyollama.options import PredictOptions

# Ollama's text for a prompt longer than the context when truncation is off.
TOO_LONG = "the input length exceeds the context length"


@dataclass
class CompletionChunk:
    """Text of a completion, with the log-probabilities of the tokens whose text it completes
    (only when the request asked for them; a chunk may then carry entries and no text)."""

    text: str
    logprobs: list[Logprob] = field(default_factory=list)


@dataclass
class CompletionRequest:
    prompt: str | list[int]
    options: PredictOptions = field(default_factory=PredictOptions)
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    truncate: bool = True
    shift: bool = True  # on a full context, drop half of the history after num_keep and go on
    logprobs: bool = False
    top_logprobs: int = 0
    suffix: str | None = None
    images: list[bytes] = field(default_factory=list)
    # from a ChatPrompt (tool-call grammars are lazy: they start at a trigger)
    grammar_lazy: bool = False
    grammar_triggers: list[dict[str, Any]] = field(default_factory=list)
    preserved_tokens: list[str] = field(default_factory=list)
    additional_stops: list[str] = field(default_factory=list)
    generation_prompt: str = ""


@dataclass
class EmbedResult:
    embeddings: npt.NDArray[np.float32]  # one pooled vector per input, in input order: [n_inputs, n_embd]
    prompt_eval_count: int
