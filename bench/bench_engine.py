"""Issues 3 and 4: the server side by side with its peers, in one run, same model and threads.

    python bench/bench_engine.py --threads 2 --rounds 3 [--out bench/RESULTS.md]

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
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from peers import llama_bench, llama_server, median, model_path, pyollama_server

from pyollama.store.bundled import import_bundled_models
from pyollama.store.manifests import Store

N_GEN = 128
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


def ttft_pyollama(url: str, messages: list[dict[str, str]]) -> tuple[float, str]:
    body = {"model": "smollm2:135m", "messages": messages, "stream": True,
            "options": {"temperature": 0, "num_predict": 32, "num_ctx": 4096}}
    t0 = time.perf_counter()
    first = None
    text = []
    with requests.post(f"{url}/api/chat", json=body, stream=True, timeout=600) as r:
        for line in r.iter_lines():
            if not line:
                continue
            if first is None:
                first = time.perf_counter() - t0
            text.append(json.loads(line).get("message", {}).get("content", ""))
    return first or 0.0, "".join(text)


def long_history(n_turns: int = 14) -> list[dict[str, str]]:
    filler = ("The committee reviewed the quarterly figures, the shipping delays, the new supplier contracts "
              "and the plans for the spring launch, and asked for a summary by Friday. ")
    msgs = []
    for i in range(n_turns):
        msgs.append({"role": "user", "content": f"Note {i}: " + filler})
        msgs.append({"role": "assistant", "content": f"Noted item {i}."})
    return msgs


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    path = model_path()
    models = Path(tempfile.mkdtemp(prefix="pyollama-bench-"))
    import_bundled_models(Store(models))
    rows: list[tuple[str, str, str, str]] = []
    agg: dict[tuple[str, int], list[float]] = {}
    single_http: list[float] = []
    ttft_short: list[float] = []
    try:
        for _ in range(args.rounds):
            with pyollama_server(models, threads=args.threads, n_parallel=8, ctx=1024) as url:
                pyollama_generate(url, chatml("hi"), 4)  # load
                for s in (1, 4, 8):
                    agg.setdefault(("pyollama", s), []).append(aggregate(pyollama_generate, url, s))
                n, dt = pyollama_generate(url, chatml(PROMPTS[2]))
                body = {"model": "smollm2:135m", "prompt": chatml(PROMPTS[3]), "raw": True, "stream": False,
                        "options": {"temperature": 0, "num_predict": N_GEN}}
                res = requests.post(f"{url}/api/generate", json=body, timeout=600).json()
                single_http.append(res["eval_count"] / (res["eval_duration"] / 1e9))
                t0 = time.perf_counter()
                with requests.post(f"{url}/api/generate", json={"model": "smollm2:135m", "prompt": "Hi",
                                   "options": {"num_predict": 1}}, stream=True, timeout=60) as r:
                    next(r.iter_lines())
                ttft_short.append(time.perf_counter() - t0)
            with llama_server(path, threads=args.threads, n_parallel=8, ctx_per_slot=1024) as url:
                server_generate(url, chatml("hi"), 4)
                for s in (1, 4, 8):
                    agg.setdefault(("llama-server", s), []).append(aggregate(server_generate, url, s))
        bench_tg = [llama_bench(path, threads=args.threads, n_gen=N_GEN)["tg"] for _ in range(args.rounds)]
        lcp = llama_cpp_python_tg(path, args.threads, N_GEN)

        # prompt cache: next turn of a long chat, cached vs uncached (fresh server, model loaded)
        history = long_history()
        cached, uncached = [], []
        for _ in range(args.rounds):
            with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=4096) as url:
                ttft_pyollama(url, [{"role": "user", "content": "hi"}])  # load the model
                t_first, reply = ttft_pyollama(url, history)
                next_turn = [*history, {"role": "assistant", "content": reply},
                             {"role": "user", "content": "Summarise note 3."}]
                cached.append(ttft_pyollama(url, next_turn)[0])
            with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=4096) as url:
                ttft_pyollama(url, [{"role": "user", "content": "hi"}])
                uncached.append(ttft_pyollama(url, next_turn)[0])

        # embeddings: 256 sentences in one request vs 256 requests
        texts = [f"Sentence number {i} is about {PROMPTS[i % 8].lower()}" for i in range(256)]
        emb_model = "all-minilm" if (models / "manifests/registry.ollama.ai/library/all-minilm").exists() else "smollm2:135m"
        batched, singles = [], []
        with pyollama_server(models, threads=args.threads, n_parallel=4, ctx=1024) as url:
            embed_many(url, emb_model, texts[:4])
            for _ in range(args.rounds):
                batched.append(embed_many(url, emb_model, texts))
                singles.append(embed_single(url, emb_model, texts))
    finally:
        shutil.rmtree(models, ignore_errors=True)

    for s in (1, 4, 8):
        ours, peer = median(agg[("pyollama", s)]), median(agg[("llama-server", s)])
        rows.append((f"aggregate decode, {s} stream(s)", f"{ours:.1f} tok/s", f"llama-server -np 8: {peer:.1f}",
                     f"{ours / peer:.2f}x"))
    tg = median(bench_tg)
    rows.append(("single-stream decode via HTTP (eval_count/eval_duration)", f"{median(single_http):.1f} tok/s",
                 f"llama-bench tg{N_GEN}: {tg:.1f}", f"{median(single_http) / tg:.2f}x"))
    if lcp:
        rows.append(("single-stream decode via HTTP", f"{median(single_http):.1f} tok/s",
                     f"llama-cpp-python: {lcp:.1f}", f"{median(single_http) / lcp:.2f}x"))
    rows.append(("time to first token, short prompt, model loaded", f"{median(ttft_short) * 1000:.0f} ms", "", ""))
    rows.append(("next turn of a ~1,500-token chat, time to first token", f"cached {median(cached) * 1000:.0f} ms",
                 f"uncached {median(uncached) * 1000:.0f} ms", f"{median(cached) / median(uncached):.2f}"))
    rows.append((f"/api/embed 256 sentences ({emb_model})", f"one request {median(batched):.2f} s",
                 f"256 requests {median(singles):.2f} s", f"{median(singles) / median(batched):.1f}x faster"))
    table = "| measure | pyollama | peer | ratio |\n|---|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
