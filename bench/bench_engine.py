"""Issues 3 and 4: the server side by side with its peers, in one run, same model and threads.

    python bench/bench_engine.py --threads 2 --rounds 3 [--only chat] [--out bench/RESULTS.md]

`--out` rewrites only this script's marked section of the file (the table and the exact command
that produced it), leaving the other benchmarks' sections alone. `--only` (repeatable) runs some
sections: `decode` (needs bench/build_peers.sh), `chat`, `embed`.

Measures, over HTTP (each peer as its own process, started here):
- aggregate decode tokens/s at 1, 4 and 8 concurrent streams: pyollama (OLLAMA_NUM_PARALLEL=8)
  vs llama-server -np 8 (greedy, 128 tokens per stream, distinct prompts);
- single-stream decode through HTTP vs llama-bench tg128 and vs llama-cpp-python (in-process);
- time to first token of a short prompt on a loaded model;
- time to first token of the next turn of a ~1,500-token chat, cached vs uncached;
- /api/embed with 256 sentences in one request vs 256 single requests.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from peers import (
    free_port,
    llama_bench,
    llama_server,
    median,
    model_path,
    pyollama_server,
    replace_section,
    wait_http,
)

from pyollama.llama import Model
from pyollama.store.bundled import import_bundled_models
from pyollama.store.store import Store

N_GEN = 128
CHAT_TOKENS = 1500  # the length of the chat whose next turn is timed
SECTIONS = ("decode", "chat", "embed")
BEGIN = "<!-- bench_engine.py: begin (rewritten by --out; edit outside the markers) -->"
END = "<!-- bench_engine.py: end -->"
PROMPTS = [
    "Write a long story about a dragon who learns to cook.",
    "Explain in detail how a steam engine works.",
    "Describe the history of the Roman Empire.",
    "Write a poem about the ocean and the moon.",
    "List many facts about the planets of the solar system.",
    "Tell me about the life of a honey bee.",
    "Explain how computers store numbers in memory.",
    "Describe a walk through a busy city market.",
]


def chatml(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


# ---- one request per peer ----

def pyollama_generate(url: str, prompt: str, n: int = N_GEN) -> tuple[int, float]:
    """Returns (generated tokens, seconds from request to last token)."""
    body = {"model": "smollm2:135m", "prompt": prompt, "raw": True, "stream": False,
            "options": {"temperature": 0, "num_predict": n, "seed": 1}}
    t0 = time.perf_counter()
    r = requests.post(f"{url}/api/generate", json=body, timeout=600)
    r.raise_for_status()
    return int(r.json()["eval_count"]), time.perf_counter() - t0


def pyollama_stream_rate(url: str, prompt: str, n: int = N_GEN) -> float:
    """Decode tokens/s as a client sees it: streamed chunks, first to last, timed here."""
    body = {"model": "smollm2:135m", "prompt": prompt, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": n, "seed": 1}}
    with requests.post(f"{url}/api/generate", json=body, stream=True, timeout=600) as r:
        r.raise_for_status()
        lines = r.iter_lines()
        next(lines)
        t_first = time.perf_counter()
        final: dict[str, Any] = {}
        for line in lines:
            final = json.loads(line)
        t_last = time.perf_counter()
    return (int(final["eval_count"]) - 1) / (t_last - t_first)


def server_generate(url: str, prompt: str, n: int = N_GEN) -> tuple[int, float]:
    body = {"prompt": prompt, "n_predict": n, "temperature": 0, "seed": 1, "cache_prompt": True}
    t0 = time.perf_counter()
    r = requests.post(f"{url}/completion", json=body, timeout=600)
    r.raise_for_status()
    return int(r.json()["tokens_predicted"]), time.perf_counter() - t0


def aggregate(fn: Any, url: str, streams: int) -> float:
    """Total generated tokens / wall time with `streams` concurrent requests."""
    counts = [0] * streams

    def one(i: int) -> None:
        counts[i] = fn(url, chatml(PROMPTS[i % len(PROMPTS)]))[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def ttft_pyollama(url: str, messages: list[dict[str, str]]) -> tuple[float, str, int]:
    """(time to first token, reply, prompt tokens evaluated)."""
    body = {"model": "smollm2:135m", "messages": messages, "stream": True,
            "options": {"temperature": 0, "num_predict": 32, "num_ctx": 4096}}
    t0 = time.perf_counter()
    first = None
    text = []
    n_prompt = 0
    with requests.post(f"{url}/api/chat", json=body, stream=True, timeout=600) as r:
        for line in r.iter_lines():
            if not line:
                continue
            if first is None:
                first = time.perf_counter() - t0
            chunk = json.loads(line)
            text.append(chunk.get("message", {}).get("content", ""))
            n_prompt = chunk.get("prompt_eval_count", n_prompt)
    return first or 0.0, "".join(text), n_prompt


def long_history(model: Path, n_tokens: int) -> list[dict[str, str]]:
    """User notes and short assistant acknowledgements, as many turns as make about `n_tokens`
    tokens in ChatML (the measured count of the whole next-turn prompt goes in the table)."""
    vocab = Model(model, vocab_only=True)
    filler = ("The committee reviewed the quarterly figures, the shipping delays, the new supplier contracts "
              "and the plans for the spring launch, and asked for a summary by Friday. ")
    msgs: list[dict[str, str]] = []
    while True:
        rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
        if len(vocab.tokenize(rendered, add_special=True, parse_special=True)) >= n_tokens:
            return msgs
        i = len(msgs) // 2
        msgs.append({"role": "user", "content": f"Note {i}: " + filler})
        msgs.append({"role": "assistant", "content": f"Noted item {i}."})


def embed_many(url: str, model: str, texts: list[str]) -> float:
    t0 = time.perf_counter()
    requests.post(f"{url}/api/embed", json={"model": model, "input": texts}, timeout=600).raise_for_status()
    return time.perf_counter() - t0


def embed_single(url: str, model: str, texts: list[str]) -> float:
    t0 = time.perf_counter()
    for t in texts:
        requests.post(f"{url}/api/embed", json={"model": model, "input": t}, timeout=600).raise_for_status()
    return time.perf_counter() - t0


def llama_cpp_python_tg(path: Path, threads: int, n: int) -> float | None:
    """Decode tokens/s of llama-cpp-python's streaming completion: first chunk to last (prompt excluded)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(path), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm(chatml("hi"), max_tokens=4, temperature=0)  # warm-up
    rates = []
    for prompt in PROMPTS[:3]:
        llm.reset()
        stream = llm.create_completion(chatml(prompt), max_tokens=n, temperature=0, stream=True)
        next(stream)
        t0 = time.perf_counter()
        count = sum(1 for _ in stream)
        rates.append(count / (time.perf_counter() - t0))
    return median(rates)


def llama_cpp_server_stream_rate(path: Path, threads: int, n: int, rounds: int = 3) -> float | None:
    """llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`), streamed completion,
    timed by the client as `pyollama_stream_rate` times pyollama: first chunk to last."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--n_ctx", "1024", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v1/models", timeout=120)
        rates = []
        body = {"prompt": chatml(PROMPTS[3]), "max_tokens": n, "temperature": 0, "stream": True}
        for i in range(rounds + 1):
            t_first = t_last = 0.0
            count = 0
            with requests.post(f"{url}/v1/completions", json=body, stream=True, timeout=600) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if not line.startswith(b"data: {"):
                        continue
                    count += 1
                    t_last = time.perf_counter()
                    if count == 1:
                        t_first = t_last
            if i and count > 1:  # the first round warms up
                rates.append((count - 1) / (t_last - t_first))
        return median(rates) if rates else None
    finally:
        proc.terminate()
        proc.wait(30)


def bench_decode(path: Path, models: Path, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """Aggregate and single-stream decode against llama-server, llama-bench and llama-cpp-python."""
    agg: dict[tuple[str, int], list[float]] = {}
    single_http: list[float] = []
    single_client: list[float] = []
    bench_tg: list[float] = []
    lcp_tg: list[float] = []
    lcp_server_tg: list[float] = []
    ttft_short: list[float] = []
    for _ in range(args.rounds):
        with pyollama_server(models, threads=args.threads, n_parallel=8, ctx=1024) as url:
            pyollama_generate(url, chatml("hi"), 4)  # load
            for s in (1, 4, 8):
                agg.setdefault(("pyollama", s), []).append(aggregate(pyollama_generate, url, s))
            body = {"model": "smollm2:135m", "prompt": chatml(PROMPTS[3]), "raw": True, "stream": False,
                    "options": {"temperature": 0, "num_predict": N_GEN}}
            res = requests.post(f"{url}/api/generate", json=body, timeout=600).json()
            single_http.append(res["eval_count"] / (res["eval_duration"] / 1e9))
            single_client.append(pyollama_stream_rate(url, chatml(PROMPTS[3])))
            t0 = time.perf_counter()
            with requests.post(f"{url}/api/generate", json={"model": "smollm2:135m", "prompt": "Hi",
                               "options": {"num_predict": 1}}, stream=True, timeout=60) as r:
                next(r.iter_lines())
            ttft_short.append(time.perf_counter() - t0)
        # the single-stream peers right after pyollama's own, in every round: this machine's speed
        # drifts by 10% over minutes, so only measurements taken side by side compare
        bench_tg.append(llama_bench(path, threads=args.threads, n_gen=N_GEN, reps=3)["tg"])
        rate = llama_cpp_python_tg(path, args.threads, N_GEN)
        if rate is not None:
            lcp_tg.append(rate)
        rate = llama_cpp_server_stream_rate(path, args.threads, N_GEN)
        if rate is not None:
            lcp_server_tg.append(rate)
        with llama_server(path, threads=args.threads, n_parallel=8, ctx_per_slot=1024) as url:
            server_generate(url, chatml("hi"), 4)
            for s in (1, 4, 8):
                agg.setdefault(("llama-server", s), []).append(aggregate(server_generate, url, s))
    lcp = median(lcp_tg) if lcp_tg else None

    rows = []
    for s in (1, 4, 8):
        ours, peer = median(agg[("pyollama", s)]), median(agg[("llama-server", s)])
        rows.append((f"aggregate decode, {s} stream(s)", f"{ours:.1f} tok/s", f"llama-server -np 8: {peer:.1f}",
                     f"{ours / peer:.2f}x"))
    tg = median(bench_tg)
    rows.append(("single-stream decode via HTTP (eval_count/eval_duration)", f"{median(single_http):.1f} tok/s",
                 f"llama-bench tg{N_GEN}: {tg:.1f}", f"{median(single_http) / tg:.2f}x"))
    rows.append(("single-stream decode via HTTP, timed by the client (streamed chunks)",
                 f"{median(single_client):.1f} tok/s", f"llama-bench tg{N_GEN}: {tg:.1f}",
                 f"{median(single_client) / tg:.2f}x"))
    if lcp:
        rows.append(("single-stream decode via HTTP", f"{median(single_http):.1f} tok/s",
                     f"llama-cpp-python: {lcp:.1f}", f"{median(single_http) / lcp:.2f}x"))
    if lcp_server_tg:
        rows.append(("single-stream decode via HTTP, timed by the client (streamed chunks)",
                     f"{median(single_client):.1f} tok/s",
                     f"llama-cpp-python's server (llama_cpp.server), same timing: {median(lcp_server_tg):.1f}",
                     f"{median(single_client) / median(lcp_server_tg):.2f}x"))
    rows.append(("time to first token, short prompt, model loaded", f"{median(ttft_short) * 1000:.0f} ms", "", ""))
    return rows


def bench_chat(path: Path, models: Path, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """Prompt cache: the next turn of a long chat, cached vs uncached (fresh server, model loaded)."""
    history = long_history(path, CHAT_TOKENS - 50)  # the reply and the new question make up the rest
    cached: list[float] = []
    uncached: list[float] = []
    n_tokens: list[float] = []
    for _ in range(args.rounds):
        with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=4096) as url:
            ttft_pyollama(url, [{"role": "user", "content": "hi"}])  # load the model
            _, reply, _ = ttft_pyollama(url, history)
            next_turn = [*history, {"role": "assistant", "content": reply},
                         {"role": "user", "content": "Summarise note 3."}]
            cached.append(ttft_pyollama(url, next_turn)[0])
        with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=4096) as url:
            ttft_pyollama(url, [{"role": "user", "content": "hi"}])
            t_first, _, n_prompt = ttft_pyollama(url, next_turn)  # nothing cached: every token evaluated
            uncached.append(t_first)
            n_tokens.append(n_prompt)
    return [(f"next turn of a {int(median(n_tokens))}-token chat, time to first token",
             f"cached {median(cached) * 1000:.0f} ms", f"uncached {median(uncached) * 1000:.0f} ms",
             f"{median(cached) / median(uncached):.2f}")]


def bench_embed(models: Path, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """/api/embed: 256 sentences in one request vs 256 requests."""
    texts = [f"Sentence number {i} is about {PROMPTS[i % 8].lower()}" for i in range(256)]
    emb_model = "all-minilm" if (models / "manifests/registry.ollama.ai/library/all-minilm").exists() else "smollm2:135m"
    batched, singles = [], []
    with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=1024) as url:
        embed_many(url, emb_model, texts[:4])
        for _ in range(args.rounds):
            batched.append(embed_many(url, emb_model, texts))
            singles.append(embed_single(url, emb_model, texts))
    return [(f"/api/embed 256 sentences ({emb_model})", f"one request {median(batched):.2f} s",
             f"256 requests {median(singles):.2f} s", f"{median(singles) / median(batched):.1f}x faster")]


def write_results(path: Path, table: str) -> None:
    """Replace this script's marked section of `path` (appended if missing) with the table and
    the command that reproduces it; everything outside the markers is kept."""
    command = "python bench/bench_engine.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    block = (f"{BEGIN}\n`{command}` ({datetime.date.today().isoformat()}; each peer its own process, over "
             f"HTTP; pyollama with OLLAMA_NUM_PARALLEL=8, llama-server with -np 8, 1024 tokens of context "
             f"per slot)\n\n{table}\n{END}")
    replace_section(path, BEGIN, END, "## Server and engine (bench_engine.py)", block)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sections = args.only or list(SECTIONS)
    path = model_path()
    models = Path(tempfile.mkdtemp(prefix="pyollama-bench-"))
    import_bundled_models(Store(models))
    rows: list[tuple[str, str, str, str]] = []
    try:
        if "decode" in sections:
            rows += bench_decode(path, models, args)
        if "chat" in sections:
            rows += bench_chat(path, models, args)
        if "embed" in sections:
            rows += bench_embed(models, args)
    finally:
        shutil.rmtree(models, ignore_errors=True)
    table = "| measure | pyollama | peer | ratio |\n|---|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    print(table)
    if args.out:
        write_results(args.out, table)


if __name__ == "__main__":
    main()
