"""pyollama: Ollama's HTTP API served from Python, on llama.cpp built from a pinned release."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def system_info() -> dict[str, Any]:
    """What the native build carries: backends, devices, CPU features, llama.cpp build info."""
    from pyollama.llama.system import system_info as _system_info

    return _system_info()


__all__ = ["__version__", "system_info"]
