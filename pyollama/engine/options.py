"""Request `options`: merged over the model's PARAMETERs, typed by the schema in
`pyollama.options`, split into load-time RunnerOptions and per-request PredictOptions.

Precedence: defaults < the model's PARAMETERs < the request's `options`.
Unknown keys, and options pyollama does not act on, are ignored with Ollama's warning
(`invalid option provided option=<name>`), never silently; a wrong type is a
BadRequestError with Ollama's text (Ollama answers 500; pyollama 400), and so is a number
outside the range the native code behind the option takes (`pyollama.options`: a C int, a
float, 512 threads), which Ollama would pass on and fail or wrap.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.golang.json import format_float
from pyollama.options import INVALID_OPTION, LOAD_TIME_OPTIONS, OPTIONS, PredictOptions, RunnerOptions

log = logging.getLogger("pyollama.options")


def _in_range(key: str, value: float) -> None:
    """A number the native code behind the option cannot take is the client's mistake."""
    bounds = OPTIONS[key].range
    if bounds is not None and not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        low, high = (format_float(float(b)) if OPTIONS[key].type is float else str(int(b)) for b in bounds)
        raise BadRequestError(f'option "{key}" must be between {low} and {high}')


def _coerce(key: str, value: Any) -> Any:
    kind = OPTIONS[key].type
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequestError(f'option "{key}" must be of type integer')
        _in_range(key, value)
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequestError(f'option "{key}" must be of type float32')
        _in_range(key, value)
        return float(value)
    if kind is bool:
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
            spec = OPTIONS.get(key)
            if spec is None or not spec.used:
                log.warning("%s option=%s", INVALID_OPTION, key)
                continue
            merged[key] = _coerce(key, value)
    return merged


def split_options(
    merged: Mapping[str, Any], base: RunnerOptions | None = None
) -> tuple[RunnerOptions, PredictOptions]:
    """Split a validated option map into the load-time and the per-request half."""
    runner = dataclasses.replace(base or RunnerOptions(), **{k: v for k, v in merged.items() if k in LOAD_TIME_OPTIONS})
    predict = PredictOptions(**{k: v for k, v in merged.items() if k not in LOAD_TIME_OPTIONS})
    return runner, predict
