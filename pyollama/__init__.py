"""pyollama: Ollama's HTTP API served from Python, on llama.cpp built from a pinned release."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# The Ollama API version pyollama serves: the one ../shared/API.md follows (Ollama's tree just
# past the v0.33.0-rc2 tag). Reported as Ollama's own `version`, since clients gate features on
# it; without the pre-release suffix, which clients that read three numbers cannot parse.
OLLAMA_VERSION = "0.33.0"


def system_info() -> dict[str, Any]:
    """What the native build carries: backends, devices, CPU features, llama.cpp build info."""
    from pyollama.llama.system import system_info as _system_info

    return _system_info()


__all__ = ["OLLAMA_VERSION", "__version__", "system_info"]
