"""The store and the server import without llama.cpp: `_native` loads only when a model runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "import {modules}, sys; print('pyollama._native' in sys.modules)"


@pytest.mark.parametrize(
    "modules",
    [
        "pyollama.store, pyollama.server",
        (
            "pyollama.store.store, pyollama.store.model, pyollama.store.create, pyollama.store.registry, "
            "pyollama.store.bundled, pyollama.store.modelfile, pyollama.gguf"
        ),
    ],
)
def test_import_does_not_load_native_module(modules: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(modules=modules)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
