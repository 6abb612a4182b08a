"""What goes into a runner and what comes out: requests, text chunks, embeddings.

`CompletionResult` (a finished completion's counts and timings) lives with the slots that fill
it in (`engine/slots.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyollama.options import PredictOptions

# Ollama's text for a prompt longer than the context when truncation is off.
TOO_LONG = "the input length exceeds the context length"


@dataclass
class CompletionChunk:
    text: str


@dataclass
class CompletionRequest:
    prompt: str | list[int]
    options: PredictOptions = field(default_factory=PredictOptions)
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    truncate: bool = True
    shift: bool = True
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
    embeddings: list[list[float]]
    prompt_eval_count: int
