"""Helpers for the backend tests: RPC workers as real `pyollama rpc-server` processes, and a
runner for tests/gpu/greedy.py in a child interpreter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GREEDY = Path(__file__).with_name("greedy.py")
# Children run outside the source tree: a non-editable build (a Vulkan venv) would otherwise
# import the uncompiled pyollama/ of the checkout instead of its own.
NEUTRAL_CWD = tempfile.gettempdir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment, with the source tree importable the way the test process sees it."""
    env = dict(os.environ)
    env.update(extra)
    return env


@dataclass
class RpcWorker:
    """One `pyollama rpc-server` process on 127.0.0.1; restartable on the same port."""

    port: int
    log_path: Path
    python: str = sys.executable
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        from pyollama.llama.rpc import RpcError, probe

        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "pyollama", "rpc-server", "--port", str(self.port), "--threads", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=NEUTRAL_CWD,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rpc-server exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                probe(self.endpoint, timeout=2.0)
                return
            except RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def run_greedy(model: Path, *args: str, python: str = sys.executable, timeout: float = 300.0,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """tests/gpu/greedy.py in a child interpreter; its JSON result (fails the test on a crash)."""
    proc = subprocess.run(
        [python, str(GREEDY), str(model), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        cwd=NEUTRAL_CWD,
    )
    if proc.returncode != 0:
        raise AssertionError(f"greedy.py exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@dataclass
class ServeProcess:
    """`pyollama serve` as its own process on a free loopback port, with a private store."""

    root: Path
    rpc: str = ""
    # False: weights in the GGUF's layout (no AMX, no repacked blocks), the kernels RPC workers
    # run, so that a local server's greedy tokens can be compared with theirs on any CPU
    repack: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "serve.log"

    def start(self, timeout: float = 180.0) -> None:
        import requests

        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = child_env(
            OLLAMA_HOST=f"127.0.0.1:{self.port}",
            OLLAMA_MODELS=str(self.root / "models"),
            HOME=str(self.root),
            OLLAMA_DEBUG="1",
            PYOLLAMA_NUM_THREADS="1",
        )
        env.pop("PYOLLAMA_RPC_SERVERS", None)
        env["PYOLLAMA_REPACK"] = "1" if self.repack else "0"
        args = [sys.executable, "-m", "pyollama", "serve"] + (["--rpc", self.rpc] if self.rpc else [])
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=NEUTRAL_CWD)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/api/version", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pyollama serve did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
