"""Fixtures for /api/create through the server: an app over an empty store, models made in-process.

The parent conftest's `live` and `client` fixtures run whatever `app` is; here
`app` serves the test's own empty store (no vocab-only models), so that every
model the tests see was made by create.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from create_api_helpers import make, minilm_files
from flask import Flask

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.store.create import CreateRequest
from pyollama.store.store import Store


@pytest.fixture
def store(config: Config) -> Store:
    return Store(config.models)


@pytest.fixture
def app(config: Config, store: Store) -> Iterator[Flask]:
    app = create_app(replace(config, num_threads=2, context_length=512), store=store)
    yield app
    app.extensions["pyollama"].close()


@pytest.fixture(scope="session")
def smollm2_blob(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> tuple[Path, str]:
    """SmolLM2's GGUF copied once into the temp filesystem, with its digest, for hard-linking."""
    store = Store(tmp_path_factory.mktemp("smollm2-blob"))
    digest, _ = store.blobs.add_file(smollm2_path)
    return store.blobs.path(digest), digest


@pytest.fixture
def smol(store: Store, smollm2_blob: tuple[Path, str]) -> str:
    """`smol`: SmolLM2 (Q4_1) created from its GGUF (the blob hard-linked: blobs are immutable)."""
    source, digest = smollm2_blob
    store.blobs.dir.mkdir(parents=True, exist_ok=True)
    os.link(source, store.blobs.path(digest))
    make(store, CreateRequest(model="smol", files={"model.gguf": digest}))
    return "smol"


@pytest.fixture
def minilm(store: Store, minilm_dir: Path) -> str:
    """`minilm`: all-MiniLM-L6-v2 converted to an F16 GGUF."""
    make(store, CreateRequest(model="minilm", files=minilm_files(store, minilm_dir)))
    return "minilm"


@pytest.fixture
def text_blob(store: Store) -> Callable[[bytes], str]:
    def add(data: bytes) -> str:
        return store.blobs.write([data])[0]

    return add
