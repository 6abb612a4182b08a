"""Fixtures for the registry end-to-end tests; the machinery is in registry_support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_support import (
    RecordingProxy,
    Registry,
    TokenServer,
    start_basic_registry,
    start_registry,
    start_token_registry,
)

from pyollama.store.manifests import Store


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """An anonymous registry that serves blobs itself (200, no redirect)."""
    reg = start_registry(tmp_path)
    yield reg
    reg.stop()


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_basic_registry(tmp_path)
    yield reg
    reg.stop()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    reg, tokens = start_token_registry(tmp_path)
    yield reg, tokens
    reg.stop()
    tokens.close()


@pytest.fixture
def proxy(registry: Registry) -> Iterator[RecordingProxy]:
    """A recording proxy in front of `registry`; its host is the one to pull from."""
    rec = RecordingProxy(registry.host)
    yield rec
    rec.close()


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[[str], Store]:
    """Fresh, separate models roots by label ("local", "other", ...)."""

    def make(label: str) -> Store:
        return Store(tmp_path / f"models-{label}")

    return make
