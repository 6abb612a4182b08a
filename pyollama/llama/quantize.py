"""Quantize a GGUF file to another type with llama.cpp (llama_model_quantize)."""

from __future__ import annotations

import os

import pyollama._native as _native
from pyollama.llama.system import init_backends

# Ollama's accepted names (upper-cased); q4_K and q5_K mean their _M variants.
QUANTIZE_TYPES: tuple[str, ...] = tuple(_native.quantize_types())


def quantize(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], type_name: str, *, n_threads: int = 0
) -> None:
    """Write `src` quantized to `type_name` (e.g. "Q4_K_M") at `dst`. ValueError for an unknown type."""
    init_backends()
    _native.quantize(os.fspath(src), os.fspath(dst), type_name, n_threads=n_threads)
