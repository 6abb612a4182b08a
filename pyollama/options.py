"""Ollama's `options` (api.Options and api.Runner): the two dataclasses and the one schema of
names and types that every reader of options uses (request options in `engine/options.py`,
Modelfile PARAMETERs in `store/modelfile.py`).

Load-time options (`RunnerOptions`) are fixed when a model is loaded: a change means a reload;
per-request options (`PredictOptions`) never cause one. The schema is read from the dataclass
fields' type hints, so a new option is one new field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunnerOptions:
    """Options fixed when a model is loaded; a change means a reload."""

    num_ctx: int = 4096
    num_batch: int = 512
    num_gpu: int = -1
    main_gpu: int | None = None
    use_mmap: bool | None = None
    use_mlock: bool = False
    num_thread: int = 0


@dataclass(frozen=True)
class PredictOptions:
    """Per-request sampling and stopping options; never cause a reload."""

    num_keep: int = 4
    seed: int = -1
    num_predict: int = -1
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    temperature: float = 0.8
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    stop: tuple[str, ...] = field(default_factory=tuple)
    # Tokens drafted per step for speculative decoding: with the model's draft model, else by
    # prompt lookup; negative: Ollama's default (4 with a draft model, else 0: off). A load-time
    # option in Ollama; per request here, since the runner drafts per sequence (no reload).
    draft_num_predict: int = -1


# What native code takes: llama.cpp's int32_t fields and float parameters.
INT32_RANGE = (-(2**31), 2**31 - 1)
FLOAT32_RANGE = (-3.4028234663852886e38, 3.4028234663852886e38)
# Options whose range is not their C type's. The seed is Go's int (llama.cpp takes its low 32
# bits, as Ollama's runner does); ggml runs at most 512 threads (0 and negatives: the default).
_RANGES: dict[str, tuple[float, float]] = {
    "seed": (-(2**63), 2**63 - 1),
    "num_thread": (INT32_RANGE[0], 512),
}


# Options Ollama removed from api.Options in v0.7.0 (it logs "invalid option provided" for them and
# goes on) that llama.cpp still has: pyollama keeps honouring them (docs/DIFFERENCES.md).
NOT_IN_OLLAMA = frozenset({"mirostat", "mirostat_tau", "mirostat_eta", "use_mlock"})


@dataclass(frozen=True)
class OptionSpec:
    """One option: its value type (`int`, `float`, `bool`, or `list` for a list of strings),
    whether it is a load-time option, whether pyollama acts on it, the range a number must be
    in (what the native code behind it can take), and whether Ollama's api.Options has it."""

    type: type
    load_time: bool
    used: bool = True
    range: tuple[float, float] | None = None
    in_ollama: bool = True


def _value_type(hint: Any) -> type:
    """`int | None` -> int; `tuple[str, ...]` -> list (JSON has no tuples)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is tuple:
        return list
    if hint not in (int, float, bool):
        raise TypeError(f"option type {hint!r} has no Ollama form")
    return typing.cast(type, hint)


def _schema() -> dict[str, OptionSpec]:
    specs: dict[str, OptionSpec] = {}
    for cls, load_time in ((RunnerOptions, True), (PredictOptions, False)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = _value_type(hints[f.name])
            bounds = {int: INT32_RANGE, float: FLOAT32_RANGE}.get(kind)
            specs[f.name] = OptionSpec(
                kind, load_time, range=_RANGES.get(f.name, bounds), in_ollama=f.name not in NOT_IN_OLLAMA
            )
    return specs


OPTIONS: Mapping[str, OptionSpec] = types.MappingProxyType(_schema())
LOAD_TIME_OPTIONS = frozenset(name for name, spec in OPTIONS.items() if spec.load_time and spec.used)

# Ollama's warning (api.Options.FromMap) for an option it does not know; pyollama logs it for
# every option it does not act on (engine/options.py), so none is dropped silently.
INVALID_OPTION = "invalid option provided"


def option_note(name: str) -> str | None:
    """What happens to an option that Ollama and pyollama do not both act on (/api/show's
    `option_notes`); None for the options both honour."""
    spec = OPTIONS.get(name)
    if spec is None:
        return f'ignored, as Ollama ignores it: not an option (logged: "{INVALID_OPTION}")'
    if not spec.used:
        return f'ignored by pyollama, which does not implement it (logged: "{INVALID_OPTION}"); Ollama uses it'
    if not spec.in_ollama:
        return f'honoured by pyollama; Ollama ignores it since v0.7.0 (logging "{INVALID_OPTION}")'
    return None
