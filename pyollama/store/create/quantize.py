"""Quantizing in create: which types can be made, from what, and running llama.cpp's quantize
with progress. The native module is imported only when a quantization is asked for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyollama.errors import BadRequestError, PyollamaError
from pyollama.gguf import GGUFInfo, file_type_name
from pyollama.store.progress import run_with_progress

# The digest Ollama puts on quantization progress lines (no layer exists yet).
PROGRESS_DIGEST = "0000000000000000000"
QUANTIZABLE_SOURCES = ("F16", "BF16", "F32")
# llama.cpp refuses these without an importance matrix, which create has no way to supply.
_NEEDS_IMATRIX = frozenset({"Q2_K_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"})
_QUANTIZE_ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}
_PROGRESS_INTERVAL = 0.25


def supported_quantize_types() -> tuple[str, ...]:
    """The types `quantize` accepts: llama.cpp's list, less those needing an importance matrix."""
    try:
        from pyollama.llama import QUANTIZE_TYPES
    except ImportError as exc:
        raise PyollamaError(f"quantization is unavailable: {exc}") from None
    return tuple(t for t in QUANTIZE_TYPES if t not in _NEEDS_IMATRIX)


def normalize_quantize(raw: str) -> str:
    """Upper-cased, aliases resolved (`q4_K` -> `Q4_K_M`); 400 for a type llama.cpp cannot make."""
    wanted = raw.strip().upper()
    wanted = _QUANTIZE_ALIASES.get(wanted, wanted)
    supported = supported_quantize_types()
    if wanted not in supported:
        listed = ", ".join(supported)
        raise BadRequestError(
            f"unsupported quantization type {raw.strip().upper()} - supported types are {listed}"
        )
    return wanted


def source_file_type(info: GGUFInfo) -> str:
    """The file type of a GGUF: `general.file_type`, else read off its weight matrices
    (files written by hand often lack the key)."""
    if info.file_type is not None:
        return file_type_name(info.file_type)
    kinds = {type_name for _, type_name, dims in info.tensors if len(dims) >= 2}
    for name in ("BF16", "F16", "F32"):
        if name in kinds and kinds <= {name, "F32"}:
            return name
    return "unknown"


def quantize_file(src: Path, out: Path, current: str, want: str, total: int) -> Iterator[dict[str, Any]]:
    """Quantize `src` into `out` on a worker thread, reporting the tensors done meanwhile (as the
    share of the source's `total` bytes, the unit Ollama's progress bars show); the last line
    says `completed == total`."""
    from pyollama.llama import quantize

    status = f"quantizing {current} model to {want}"
    done = [0.0]  # share of tensors quantized, written by the worker thread

    def on_tensor(i: int, n: int) -> None:
        done[0] = i / max(1, n)

    def work(stop: threading.Event) -> None:
        # llama_model_quantize cannot be interrupted: `stop` is not looked at, the thread is waited out.
        try:
            quantize(src, out, want, progress=on_tensor)
        except PyollamaError:
            raise
        except BaseException as exc:
            raise PyollamaError(f"quantization to {want} failed: {exc}") from exc

    def line(completed: int) -> dict[str, Any]:
        return {"status": status, "digest": PROGRESS_DIGEST, "total": total, "completed": completed}

    yield from run_with_progress(work, lambda: line(int(total * done[0])), _PROGRESS_INTERVAL,
                                 thread_name="pyollama-quantize")
    yield line(total)
