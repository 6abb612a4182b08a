"""Quantize a GGUF file to another type with llama.cpp (llama_model_quantize)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from pyollama import _native
from pyollama.llama.system import init_backends

# Ollama's accepted names (upper-cased); q4_K and q5_K mean their _M variants.
QUANTIZE_TYPES: tuple[str, ...] = tuple(_native.quantize_types())


def partial_path(dst: str | os.PathLike[str]) -> str:
    """Where `quantize` writes before renaming to `dst` (poll its size for progress)."""
    return f"{os.fspath(dst)}.partial"


def quantize(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    type_name: str,
    *,
    n_threads: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> None:
    """Write `src` quantized to `type_name` (e.g. "Q4_K_M") at `dst`. ValueError for an unknown type.

    `progress(i, n)` is called (on this thread) after each of the model's n tensors; an exception
    it raises is re-raised once llama.cpp is done (the quantization itself cannot be interrupted)."""
    init_backends()
    dst = os.fspath(dst)
    # llama.cpp writes in place: a failure would leave a partial file (or clobber `dst`),
    # so write next to it and rename only on success.
    tmp = partial_path(dst)
    try:
        _native.quantize(os.fspath(src), tmp, type_name, n_threads=n_threads, progress=progress)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
