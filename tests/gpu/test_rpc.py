"""RPC: `pyollama rpc-server` workers on loopback, a model split across them and the local CPU."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpu_helpers import GREEDY, NEUTRAL_CWD, RpcWorker, child_env, free_port, run_greedy

from pyollama.errors import BadRequestError
from pyollama.llama.rpc import (
    DEFAULT_RPC_PORT,
    RpcEndpoint,
    RpcError,
    add_rpc_servers,
    parse_endpoints,
    probe,
    registered_rpc_devices,
)

SPLIT_LAYERS = "20"  # of SmolLM2's 30 blocks + output: 20 go to the two workers, the rest stay local


def test_parse_endpoints_splits_list_and_defaults_port() -> None:
    found = parse_endpoints(" 127.0.0.1:5000, worker-2 ,127.0.0.1:5000,")
    assert found == [RpcEndpoint("127.0.0.1", 5000), RpcEndpoint("worker-2", DEFAULT_RPC_PORT)]
    assert [str(e) for e in parse_endpoints(["10.0.0.2:1"])] == ["10.0.0.2:1"]


@pytest.mark.parametrize("bad", ["host:0", "host:65536", "host:x", ":5000", "[::1]:5000", "a b:1"])
def test_parse_endpoints_rejects_malformed_address_with_bad_request(bad: str) -> None:
    with pytest.raises(BadRequestError):
        parse_endpoints(bad)


def test_add_rpc_servers_raises_typed_error_when_worker_unreachable() -> None:
    port = free_port()
    with pytest.raises(RpcError, match=f"could not connect to RPC server 127.0.0.1:{port}"):
        add_rpc_servers([f"127.0.0.1:{port}"], timeout=2.0)
    assert f"127.0.0.1:{port}" not in registered_rpc_devices().values()


def test_probe_times_out_when_peer_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        with pytest.raises(RpcError, match="did not answer within 0.5s"):
            probe(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        assert time.monotonic() - started < 5


def test_rpc_server_cli_reports_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "pyollama", "rpc-server", "--port", str(port)],
            check=False, capture_output=True, text=True, timeout=60, env=child_env(), cwd=NEUTRAL_CWD,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_rpc_server_cli_binds_loopback_only_by_default(rpc_workers: list[RpcWorker]) -> None:
    port_hex = f"{rpc_workers[0].port:04X}"
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1].endswith(f":{port_hex}") and line.split()[3] == "0A"  # 0A: LISTEN
    ]
    assert listening == [f"0100007F:{port_hex}"]  # 127.0.0.1, not 0.0.0.0


def test_generation_split_across_two_workers_matches_local(smollm2_path: Path, rpc_workers: list[RpcWorker]) -> None:
    local = run_greedy(smollm2_path, "--no-repack")  # the workers' kernels, on any CPU
    servers = ",".join(w.endpoint for w in rpc_workers)
    split = run_greedy(smollm2_path, "--n-gpu-layers", SPLIT_LAYERS, "--rpc", servers)
    assert split["tokens"] == local["tokens"]
    assert len(local["tokens"]) >= 8
    assert split["rpc_devices"] == ["RPC0", "RPC1"]
    assert split["offloaded"] == [20, 31]
    # Weights really live in three places: each worker and the local CPU.
    remote = {name: mib for name, mib in split["buffers_mib"].items() if name.startswith("RPC")}
    assert len(remote) == 2 and all(mib > 5 for mib in remote.values())
    assert any(name.startswith("CPU") and mib > 5 for name, mib in split["buffers_mib"].items())


def test_busy_worker_answers_second_client_with_typed_error(smollm2_path: Path, rpc_workers: list[RpcWorker]) -> None:
    holder = _start_slow_generation(smollm2_path, rpc_workers[0].endpoint)
    try:
        _wait_for_step(holder, 1)
        # probe() is what add_rpc_servers runs first; called bare so that this test process can
        # never end up with the worker registered (a later worker death would abort pytest).
        with pytest.raises(RpcError, match="did not answer within 1s"):
            probe(rpc_workers[0].endpoint, timeout=1.0)
    finally:
        holder.kill()
        holder.wait(10)


def test_worker_killed_mid_generation_fails_that_client_and_restarted_worker_serves(
    smollm2_path: Path, rpc_workers: list[RpcWorker]
) -> None:
    client = _start_slow_generation(smollm2_path, rpc_workers[0].endpoint)
    _wait_for_step(client, 2)
    rpc_workers[0].kill()
    _, stderr = client.communicate(timeout=60)
    # ggml's RPC client cannot recover a lost worker: it ends the process that used it,
    # saying why. (A server survives this by running such models in a child process.)
    assert client.returncode != 0
    assert "Remote RPC server crashed" in stderr
    rpc_workers[0].start()
    again = run_greedy(smollm2_path, "--n-gpu-layers", SPLIT_LAYERS, "--rpc", rpc_workers[0].endpoint)
    local = run_greedy(smollm2_path, "--no-repack")  # the workers' kernels, on any CPU
    assert again["tokens"] == local["tokens"]


def _start_slow_generation(model: Path, endpoint: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(GREEDY), str(model), "--n-gpu-layers", SPLIT_LAYERS, "--rpc", endpoint,
         "--tokens", "200", "--step-delay", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=NEUTRAL_CWD,
    )


def _wait_for_step(proc: subprocess.Popen[str], step: int, timeout: float = 120.0) -> None:
    """Read the child's `step i` lines until step `step` is out (it is then mid-generation)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.strip() == f"step {step}":
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"generation never reached step {step}: {proc.stderr.read() if proc.stderr else ''}")
