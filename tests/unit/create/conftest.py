"""Fixtures for the create pipeline tests: empty stores, the tiny Llama GGUFs, blobs of real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from create_helpers import link_blob, sha256_of, write_tiny_llama

from pyollama.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


@pytest.fixture(scope="session")
def tiny_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-f16.gguf", "F16")


@pytest.fixture(scope="session")
def tiny_f16_digest(tiny_f16: Path) -> str:
    return sha256_of(tiny_f16)


@pytest.fixture(scope="session")
def tiny_q8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-q8.gguf", "Q8_0")


@pytest.fixture(scope="session")
def smollm2_digest(smollm2_path: Path) -> str:
    return sha256_of(smollm2_path)


@pytest.fixture
def blob(store: Store) -> Iterator[Any]:
    """`blob(path)` -> digest of that file, now a blob of `store`."""

    def add(path: Path, digest: str | None = None) -> str:
        return link_blob(store, path, digest)

    yield add


@pytest.fixture(scope="session")
def minilm_blobs(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, tuple[Path, str]]:
    """all-MiniLM-L6-v2's files copied once onto the temp filesystem: name -> (path, digest)."""
    source = Store(tmp_path_factory.mktemp("minilm-blobs"))
    out = {}
    for path in sorted(minilm_dir.rglob("*")):
        if path.is_file():
            digest, _ = source.blobs.add_file(path)
            out[path.relative_to(minilm_dir).as_posix()] = (source.blobs.path(digest), digest)
    return out
