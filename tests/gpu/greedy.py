"""Greedy decoding in a process of its own, for the backend tests.

Run as `python greedy.py MODEL [--n-gpu-layers N] [--rpc host:port,...] [--tokens N]` with the
interpreter whose build is under test (a Vulkan build, or the default one with RPC workers).
It runs in a child process because a backend may abort the process (ggml's RPC client does
when a worker dies), and because RPC devices, once registered, stay for the process's life.

Stdout: one `step <i>` line per generated token (flushed, so a test can act mid-generation),
then one JSON line: tokens, text, devices, and what llama.cpp logged about layer placement.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

import numpy as np

PROMPT = "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"


def _capture_stderr() -> tuple[int, str]:
    """Send fd 2 to a file so llama.cpp's C-level log lines can be read back."""
    fd, path = tempfile.mkstemp(prefix="greedy-log-")
    saved = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    return saved, path


def _restore_stderr(saved: int, path: str) -> str:
    os.dup2(saved, 2)
    os.close(saved)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    os.unlink(path)
    sys.stderr.write(text)
    return text


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pyollama import _native
    from pyollama.llama import Batch, Context, Model, system_info

    _native.set_log_level(2)  # info: llama.cpp says where the layers and buffers went
    devices: list[str] = []
    if args.rpc:
        from pyollama.llama.rpc import add_rpc_servers

        devices = add_rpc_servers(args.rpc)
    info = system_info()
    saved, log_path = _capture_stderr()
    try:
        model = Model(args.model, n_gpu_layers=args.n_gpu_layers, repack=not args.no_repack)
        ctx = Context(model, n_ctx=512, n_batch=512, n_threads=args.threads, n_threads_batch=args.threads)
    finally:
        load_log = _restore_stderr(saved, log_path)
    tokens = model.tokenize(PROMPT, add_special=False, parse_special=True)
    batch = Batch(512)
    batch.add_sequence(tokens, pos0=0, seq_id=0)
    t0 = time.perf_counter()
    if ctx.decode(batch) != 0:
        raise RuntimeError("prompt decode failed")
    t_prompt = time.perf_counter() - t0
    out: list[int] = []
    margins: list[float] = []
    pos = len(tokens)
    t0 = time.perf_counter()
    for i in range(args.tokens):
        logits = np.asarray(ctx.logits(-1))
        top2 = np.partition(logits, -2)[-2:]
        margins.append(float(top2[1] - top2[0]))
        token = int(np.argmax(logits))
        out.append(token)
        print(f"step {i}", flush=True)
        if args.step_delay:
            time.sleep(args.step_delay)
        if model.is_eog(token):
            break
        batch.clear()
        batch.add(token, pos, 0, True)
        pos += 1
        if ctx.decode(batch) != 0:
            raise RuntimeError("decode failed")
    t_gen = time.perf_counter() - t0
    offloaded = re.search(r"offloaded (\d+)/(\d+) layers", load_log)
    buffers = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB", load_log)
    }
    return {
        "tokens": out,
        "text": model.detokenize(out),
        "min_margin": min(margins) if margins else 0.0,
        "rpc_devices": devices,
        "backends": info["backends"],
        "devices": [d["name"] for d in info["devices"]],
        "offloaded": [int(offloaded.group(1)), int(offloaded.group(2))] if offloaded else None,
        "buffers_mib": buffers,
        "prompt_tokens": len(tokens),
        "prompt_s": t_prompt,
        "gen_s": t_gen,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    parser.add_argument("--rpc", default="")
    parser.add_argument("--no-repack", action="store_true", help="weights in the GGUF's layout (RPC workers' kernels)")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step-delay", type=float, default=0.0)
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
