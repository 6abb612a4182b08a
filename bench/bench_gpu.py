"""Issue 8: offloaded decode / prompt-eval tokens/s, and the cost of RPC's network hop.

    # A GPU build (CUDA or Vulkan), all layers offloaded, next to llama-bench built with the
    # same backend from the same pin (bench/build_gpu_variants.sh --peers cuda builds one):
    python bench/bench_gpu.py offload --n-gpu-layers 99 --llama-bench build-peers-cuda/bin/llama-bench

    # Decode with the layers split across 2 local `pyollama rpc-server` workers vs local only
    # (works on a CPU-only machine: the workers serve their CPU), through pyollama.llama and
    # through `pyollama serve` over HTTP (in-process runner, runner in a child process, and
    # `serve --rpc` with the same workers):
    python bench/bench_gpu.py rpc --rounds 3

Every measurement runs in a child process (`measure`), because RPC devices registered in a
process stay there. Sizes follow llama-bench: pp512 (one 512-token batch) and tg128.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peers import free_port, model_path

# Children run outside the checkout, so a non-editable build (a GPU venv) imports its own
# pyollama rather than the checkout's uncompiled one.
NEUTRAL_CWD = tempfile.gettempdir()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """pp and tg tokens/s of this interpreter's pyollama build, median of `rounds`."""
    from pyollama.llama import Batch, Context, Model, SamplerChain, system_info

    if args.rpc:
        from pyollama.llama.rpc import add_rpc_servers

        add_rpc_servers(args.rpc)
    model = Model(args.model, n_gpu_layers=args.n_gpu_layers)
    ctx = Context(model, n_ctx=args.pp + args.tg + 8, n_batch=args.pp, n_ubatch=args.pp,
                  n_threads=args.threads, n_threads_batch=args.threads)
    rng = random.Random(0)
    prompt = [rng.randrange(model.n_vocab) for _ in range(args.pp)]
    chain = SamplerChain()
    chain.add_greedy()

    def pp() -> float:
        batch = Batch(args.pp)
        batch.add_sequence(prompt, 0, 0, True)
        ctx.memory_clear()
        t0 = time.perf_counter()
        ctx.decode(batch)
        ctx.logits(-1)  # waits for the backend, like llama-bench's synchronise
        return args.pp / (time.perf_counter() - t0)

    def tg() -> float:
        ctx.memory_clear()
        batch = Batch(1)
        batch.add(model.token_bos or 1, 0, 0, True)
        ctx.decode(batch)
        t0 = time.perf_counter()
        for pos in range(1, args.tg + 1):
            token = chain.sample(ctx, -1)
            batch.clear()
            batch.add(token, pos, 0, True)
            ctx.decode(batch)
        return args.tg / (time.perf_counter() - t0)

    pp(), tg()  # warm-up: first-use allocations and, on a GPU, kernel loading
    pps = [pp() for _ in range(args.rounds)]
    tgs = [tg() for _ in range(args.rounds)]
    return {
        "pp": statistics.median(pps),
        "tg": statistics.median(tgs),
        "devices": [d["name"] for d in system_info()["devices"]],
    }


def child(model: Path, *extra: str, python: str = sys.executable) -> dict[str, Any]:
    proc = subprocess.run([python, __file__, "measure", "--model", str(model), *extra],
                          check=True, capture_output=True, text=True, cwd=NEUTRAL_CWD)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_rpc(args: argparse.Namespace) -> None:
    from pyollama.llama.rpc import RpcError, probe

    model = Path(args.model or model_path())
    common = ["--threads", str(args.threads), "--rounds", str(args.rounds), "--pp", str(args.pp),
              "--tg", str(args.tg)]
    workers: list[subprocess.Popen[bytes]] = []
    endpoints: list[str] = []
    try:
        for _ in range(2):
            port = free_port()
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "pyollama", "rpc-server", "--port", str(port), "--threads",
                 str(args.threads)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=NEUTRAL_CWD))
            endpoints.append(f"127.0.0.1:{port}")
        for worker, ep in zip(workers, endpoints):
            deadline = time.monotonic() + 60
            while True:
                if worker.poll() is not None:
                    raise SystemExit(f"rpc-server exited: {worker.stderr.read().decode() if worker.stderr else ''}")
                try:
                    probe(ep, timeout=2)
                    break
                except RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        local = child(model, *common)
        split = child(model, *common, "--n-gpu-layers", str(args.split_layers), "--rpc", ",".join(endpoints))
        http = {
            "serve, in-process runner": serve_decode(args, {}),
            "serve, runner process": serve_decode(args, {"PYOLLAMA_RUNNER_PROCESS": "1"}),
            f"serve --rpc, {args.split_layers} layers": serve_decode(
                args, {"PYOLLAMA_RPC_SERVERS": ",".join(endpoints)}, num_gpu=args.split_layers
            ),
        }
    finally:
        for w in workers:
            w.kill()
            w.wait()
    print(f"model {model.name}, {args.threads} threads, median of {args.rounds}")
    print(f"{'':28}{'pp' + str(args.pp) + ' t/s':>14}{'tg' + str(args.tg) + ' t/s':>14}")
    print(f"{'local only':28}{local['pp']:14.1f}{local['tg']:14.1f}")
    label = f"{args.split_layers} layers on 2 workers"
    print(f"{label:28}{split['pp']:14.1f}{split['tg']:14.1f}")
    print(f"{'ratio split/local':28}{split['pp'] / local['pp']:14.2f}{split['tg'] / local['tg']:14.2f}")
    base = http["serve, in-process runner"]
    print(f"\nthrough HTTP (/api/generate eval_count/eval_duration, tg{args.tg}, median of {args.rounds})")
    for label, tps in http.items():
        print(f"{label:36}{tps:10.1f} t/s{tps / base:8.2f}x")


def serve_decode(args: argparse.Namespace, env_extra: dict[str, str], num_gpu: int = -1) -> float:
    """Median decode tokens/s of `pyollama serve` (bundled smollm2:135m) with `env_extra`."""
    import requests

    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(root / "models"),
           "HOME": str(root), "PYOLLAMA_NUM_THREADS": str(args.threads), "OLLAMA_NUM_PARALLEL": "1", **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, cwd=NEUTRAL_CWD,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/api/version", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("pyollama serve did not start")
            time.sleep(0.2)
        options = {"temperature": 0, "num_predict": args.tg, "num_gpu": num_gpu}

        def once() -> float:
            body = {"model": "smollm2:135m", "prompt": "Once upon a time", "raw": True, "stream": False,
                    "options": options}
            r = requests.post(f"{url}/api/generate", json=body, timeout=600).json()
            return float(r["eval_count"]) / (r["eval_duration"] / 1e9)

        once()  # load and warm up
        return statistics.median(once() for _ in range(args.rounds))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def bench_offload(args: argparse.Namespace) -> None:
    model = Path(args.model or model_path())
    common = ["--threads", str(args.threads), "--rounds", str(args.rounds), "--pp", str(args.pp),
              "--tg", str(args.tg), "--n-gpu-layers", str(args.n_gpu_layers)]
    ours = child(model, *common, python=args.python)
    print(f"model {model.name}, n_gpu_layers {args.n_gpu_layers}, devices {', '.join(ours['devices'])}")
    print(f"{'':14}{'pp' + str(args.pp) + ' t/s':>14}{'tg' + str(args.tg) + ' t/s':>14}")
    print(f"{'pyollama':14}{ours['pp']:14.1f}{ours['tg']:14.1f}")
    if args.llama_bench:
        cmd = [args.llama_bench, "-m", str(model), "-t", str(args.threads), "-ngl", str(args.n_gpu_layers),
               "-r", str(args.rounds), "-p", str(args.pp), "-n", str(args.tg), "-o", "json"]
        rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        peer = {("pp" if r["n_prompt"] and not r["n_gen"] else "tg"): float(r["avg_ts"]) for r in rows}
        print(f"{'llama-bench':14}{peer['pp']:14.1f}{peer['tg']:14.1f}")
        print(f"{'ratio':14}{ours['pp'] / peer['pp']:14.2f}{ours['tg'] / peer['tg']:14.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["rpc", "offload", "measure"])
    ap.add_argument("--model", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--split-layers", type=int, default=20, help="rpc: layers placed on the two workers")
    ap.add_argument("--rpc", default="", help="measure: host:port,... workers to register first")
    ap.add_argument("--python", default=sys.executable, help="offload: interpreter with the GPU build")
    ap.add_argument("--llama-bench", default="", help="offload: llama-bench built with the same backend")
    args = ap.parse_args()
    if args.mode == "measure":
        print(json.dumps(measure(args)), flush=True)
    elif args.mode == "rpc":
        bench_rpc(args)
    else:
        bench_offload(args)


if __name__ == "__main__":
    main()
