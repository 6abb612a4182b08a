"""Fixtures for the registry end-to-end tests; the machinery is in registry_support.py.
The `pyollama` server fixtures run the real app on waitress on a loopback port."""

from __future__ import annotations

import os
import shutil
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

from pyollama.server import create_app
from pyollama.store.store import Store
from tests.server.conftest import LiveServer, import_smollm2, serving, smollm2_config


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


@pytest.fixture(scope="session")
def smollm2_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with `smollm2:135m` imported from its package, once per session."""
    return import_smollm2(tmp_path_factory.mktemp("smollm2-seed") / "models")


def serve(models: Path) -> Iterator[LiveServer]:
    """A server over `models` for the duration of a fixture; one model loaded at a time."""
    with serving(create_app(smollm2_config(models, num_parallel=1))) as server:
        yield server


@pytest.fixture
def smollm2_server(smollm2_seed: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A server over a private copy of the seed store (hard links: the store replaces files
    atomically and deletes only its own links)."""
    models = tmp_path / "models"
    shutil.copytree(smollm2_seed, models, copy_function=os.link)
    yield from serve(models)


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[LiveServer]:
    models = tmp_path / "models"
    models.mkdir()
    yield from serve(models)
