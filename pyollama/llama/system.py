"""What the native build carries: backends, devices, CPU features."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pyollama import _native

log = logging.getLogger("pyollama.llama")

_PACKAGE_DIR = str(Path(_native.__file__).resolve().parent)
# Backends that only lend a device when one is there: RPC workers are registered later, by hand,
# and the CPU (and BLAS, which runs on it) is always there.
_NOT_ACCELERATORS = frozenset({"CPU", "RPC", "BLAS"})
_checked = threading.Event()


def init_backends() -> None:
    """Initialise llama.cpp once; backends built as loadable modules are found next to the extension.
    The first call says, in one log line, when a GPU backend was compiled in but found no device."""
    _native.backend_init(_PACKAGE_DIR)
    if not _checked.is_set():
        _checked.set()
        message = cpu_fallback_message(_native.backends(), _native.devices())
        if message:
            log.warning(message)


def cpu_fallback_message(backends: Iterable[str], devices: Iterable[Mapping[str, Any]]) -> str | None:
    """The log line for GPU backends present in the build without a device to run on, or None."""
    found = {str(d.get("backend", "")) for d in devices}
    idle = [b for b in backends if b not in _NOT_ACCELERATORS and b not in found]
    if not idle:
        return None
    return (f"{', '.join(idle)} backend{'s' if len(idle) > 1 else ''} compiled in, but no "
            f"{'/'.join(idle)} device found: running on the CPU")


def offload_devices() -> list[dict[str, Any]]:
    """Devices that llama.cpp can place layers on (GPUs, RPC workers registered in this process):
    every device that is not the CPU."""
    init_backends()
    return [dict(d) for d in _native.devices() if d.get("type") != "cpu"]


def cpu_variant() -> str:
    """Which CPU build of ggml runs: the variant a portable build (GGML_CPU_ALL_VARIANTS) chose
    for this CPU, read from the libraries this process mapped, or "native" for a build made for
    its machine (one libggml-cpu)."""
    init_backends()
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "native"
    found = sorted(set(re.findall(r"libggml-cpu-([\w-]+)\.(?:so|dylib|dll)", maps)))
    return ", ".join(found) or "native"


def cpu_paths() -> dict[str, Any]:
    """The CPU code paths a model can take: the ggml CPU variant, the extra buffer types that a
    model loaded with repack=True puts its weights in (AMX, CPU_REPACK), and whether AMX is
    compiled in and present."""
    init_backends()
    features = set(re.findall(r"(\w+) = 1", _native.print_system_info()))
    return {
        "variant": cpu_variant(),
        "extra_buffer_types": list(_native.cpu_extra_buffer_types()),
        "amx": "AMX_INT8" in features,
    }


def system_info() -> dict[str, Any]:
    init_backends()
    info = _native.print_system_info()
    features = sorted(set(re.findall(r"(\w+) = 1", info)))
    return {
        "backends": list(_native.backends()),
        "devices": list(_native.devices()),
        "cpu_features": features,
        "cpu_paths": cpu_paths(),
        "llama": dict(_native.llama_build_info()),
        "system_info": info.strip(),
    }


def attention_seconds(
    head_dim: int, n_head: int, n_head_kv: int, n_kv: int, n_q: int, n_threads: int, flash: bool, reps: int = 5
) -> float:
    """Median seconds of one layer's attention on the CPU for this shape, with flash attention or
    without (native/attention.cpp: the tensors and ops of llama.cpp's graph, f16 KV cache)."""
    init_backends()
    return float(_native.attention_seconds(head_dim, n_head, n_head_kv, n_kv, n_q, n_threads, flash, reps))
