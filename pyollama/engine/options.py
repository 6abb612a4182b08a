"""Ollama's `options`: load-time RunnerOptions and per-request PredictOptions.

Precedence: defaults < the model's PARAMETERs < the request's `options`.
Unknown keys are ignored with a warning (Ollama's policy); a wrong type is a
BadRequestError with Ollama's text (Ollama answers 500; pyollama 400).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyollama.errors import BadRequestError

log = logging.getLogger("pyollama.options")

# Keys Ollama removed but clients still send: accepted, warned about, ignored.
REMOVED_KEYS = frozenset(
    {"numa", "tfs_z", "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only"}
)


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


_KINDS: dict[str, str] = {}
for _cls in (RunnerOptions, PredictOptions):
    for _f in dataclasses.fields(_cls):
        _t = str(_f.type)
        _KINDS[_f.name] = (
            "stop" if _f.name == "stop" else "bool" if "bool" in _t else "float" if "float" in _t else "int"
        )


def _coerce(key: str, value: Any) -> Any:
    kind = _KINDS[key]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequestError(f'option "{key}" must be of type integer')
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequestError(f'option "{key}" must be of type float32')
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise BadRequestError(f'option "{key}" must be of type boolean')
        return value
    if not isinstance(value, list):
        raise BadRequestError('option "stop" must be of type array')
    if not all(isinstance(s, str) for s in value):
        raise BadRequestError('option "stop" must be of an array of strings')
    return tuple(value)


def parse_options(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge option maps (later wins), validating types; unknown keys are dropped."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            raise BadRequestError("options must be an object")
        for key, value in layer.items():
            if value is None:
                continue
            if key not in _KINDS:
                log.warning("invalid option provided option=%s", key)
                continue
            merged[key] = _coerce(key, value)
    return merged


def split_options(
    merged: Mapping[str, Any], base: RunnerOptions | None = None
) -> tuple[RunnerOptions, PredictOptions]:
    """Split a validated option map into the load-time and the per-request half."""
    runner_keys = {f.name for f in dataclasses.fields(RunnerOptions)}
    runner = dataclasses.replace(base or RunnerOptions(), **{k: v for k, v in merged.items() if k in runner_keys})
    predict = PredictOptions(**{k: v for k, v in merged.items() if k not in runner_keys})
    return runner, predict
