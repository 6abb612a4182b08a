"""Helpers for the /api/create server tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyollama.store.create import CreateRequest, create_model
from pyollama.store.store import Store


def make(store: Store, request: CreateRequest) -> list[dict[str, Any]]:
    """Create a model in-process (setup for the tests that exercise something else)."""
    return list(create_model(store, request))


def minilm_files(store: Store, minilm_dir: Path) -> dict[str, str]:
    """all-MiniLM-L6-v2's files as blobs, keyed by their path in the checkpoint directory."""
    return {
        p.relative_to(minilm_dir).as_posix(): store.blobs.add_file(p)[0]
        for p in sorted(minilm_dir.rglob("*"))
        if p.is_file()
    }
