"""What the native build carries: backends, devices, CPU features."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pyollama import _native

_PACKAGE_DIR = str(Path(_native.__file__).resolve().parent)


def init_backends() -> None:
    """Initialise llama.cpp once; backends built as loadable modules are found next to the extension."""
    _native.backend_init(_PACKAGE_DIR)


def offload_devices() -> list[dict[str, Any]]:
    """Devices that llama.cpp can place layers on (GPUs, RPC workers registered in this process):
    every device that is not the CPU."""
    init_backends()
    return [dict(d) for d in _native.devices() if d.get("type") != "cpu"]


def system_info() -> dict[str, Any]:
    init_backends()
    info = _native.print_system_info()
    features = sorted(set(re.findall(r"(\w+) = 1", info)))
    return {
        "backends": list(_native.backends()),
        "devices": list(_native.devices()),
        "cpu_features": features,
        "llama": dict(_native.llama_build_info()),
        "system_info": info.strip(),
    }
