"""Fixtures for the issue-5 proofs: one real `pyollama serve` in a subprocess, over a temp store.

The server is the command users run (bundled models imported at start, waitress, its own
process), so the blob tests can watch its memory in /proc and cut its connections at the socket,
and the embedding test uses the `all-minilm` that serve converted itself. One server per session:
starting it costs seconds (it imports the bundled models into its empty store).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from create_proofs_helpers import Served, dequantize_to_f16, smollm2_q4_1

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "minilm_reference.json"
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/version", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    for sub in ("models", "home", "tmp"):
        (root / sub).mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(root / "models"),
        "HOME": str(root / "home"),
        # waitress spools request bodies to temp files: keep them inside this test's directory.
        "TMPDIR": str(root / "tmp"),
        "PYOLLAMA_NUM_THREADS": "2",
    }
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed after the process ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyollama", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"pyollama serve did not start:\n{(root / 'serve.log').read_text()[-4000:]}")
            time.sleep(0.1)
        yield Served(url=url, host="127.0.0.1", port=port, pid=proc.pid, models=root / "models", root=root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def minilm_reference() -> dict[str, Any]:
    """sentence-transformers' embeddings (tests/data/make_minilm_reference.py wrote them)."""
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def smollm2_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as an F16 GGUF (its Q4_1 weights dequantized), written once."""
    return dequantize_to_f16(smollm2_q4_1(), tmp_path_factory.mktemp("smollm2-f16") / "smollm2-f16.gguf")
