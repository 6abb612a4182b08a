"""Fixtures for the backend tests (helpers in gpu_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpu_helpers import RpcWorker, free_port


@pytest.fixture()
def rpc_workers(tmp_path: Path) -> Iterator[list[RpcWorker]]:
    """Two running workers; killed at the end of the test."""
    from pyollama.llama.rpc import has_rpc

    if not has_rpc():
        pytest.fail("this build has no RPC backend: rebuild with the default flags (GGML_RPC is on)")
    workers = [RpcWorker(free_port(), tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.kill()

