"""Issue 15, speculative decoding: the speed-up of drafting, beside llama-server's own options.

SmolLM2-135M Q4_1 as the model; as the draft model, its first DRAFT_LAYERS layers (an early-exit
copy that shares the vocabulary: tests/native/draft_models.py). Two prompts: a repetitive one
(quote a passage of code back: SmolLM2 copies it, then goes on repeating itself) and an
ordinary one. Greedy, one request at a time, the same raw ChatML
prompt to both servers; each round runs every configuration once, in turn:

- pyollama: no drafts; prompt lookup (`draft_num_predict`); the draft model (a model created with
  `draft_files`, Ollama's draft layer, 4 drafts per step: Ollama's default, asked for with
  `draft_num_predict`, since a runner drafts by default only where a load-time check says it pays).
- llama-server: no drafts; `--spec-type ngram-simple` (its prompt lookup, default sizes); the draft
  model (`-md`, `--spec-draft-n-max 4`).

Figures: decode tokens/s as each server reports it (pyollama eval_count/eval_duration,
llama-server timings.predicted_per_second), medians over rounds; and whether each drafted reply
is the undrafted one, token for token.

    python bench/bench_speculative.py --threads 2 --rounds 5 [--out bench/RESULTS.md]
    python bench/bench_speculative.py --check-cost   # ms per decode of 1, 2, 5, 9, 17 tokens
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "native"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_threads import cpu_name
from draft_models import write_truncated_copy
from peers import llama_server, median, model_path, pyollama_server, replace_section

BEGIN = "<!-- bench_speculative: begin -->"
END = "<!-- bench_speculative: end -->"
DRAFT_LAYERS = 24
N_PREDICT = 160
NGRAM_DRAFTS = 16
# asked for explicitly: a runner drafts by default only where its load-time check says it can pay
DRAFT_MODEL_DRAFTS = 4
PASSAGE = (
    "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\n"
    "def mul(a, b):\n    return a * b\n\n\ndef div(a, b):\n    if b == 0:\n        raise ValueError('b is zero')\n"
    "    return a / b\n"
)
PROMPTS = {
    "repetitive": f"Repeat the following code exactly:\n\n{PASSAGE}",
    "ordinary": "Write a short story about a lighthouse keeper and a storm.",
}


def chatml(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def pyollama_run(url: str, model: str, prompt: str, drafts: int | None) -> tuple[float, str, int, int]:
    options: dict[str, Any] = {"temperature": 0, "num_predict": N_PREDICT, "seed": 1}
    if drafts is not None:
        options["draft_num_predict"] = drafts
    body = {"model": model, "prompt": chatml(prompt), "raw": True, "stream": False, "options": options}
    r = requests.post(f"{url}/api/generate", json=body, timeout=600)
    r.raise_for_status()
    out = r.json()
    return out["eval_count"] / (out["eval_duration"] / 1e9), out["response"], out["eval_count"], 0


def server_run(url: str, prompt: str) -> tuple[float, str, int, int]:
    body = {"prompt": chatml(prompt), "n_predict": N_PREDICT, "temperature": 0, "top_k": 1, "seed": 1,
            "cache_prompt": False}
    r = requests.post(f"{url}/completion", json=body, timeout=600)
    r.raise_for_status()
    out = r.json()
    timings = out.get("timings", {})
    return (float(timings["predicted_per_second"]), out["content"], int(out["tokens_predicted"]),
            int(timings.get("draft_n_accepted", 0)))


def create_drafted(url: str, draft: Path) -> str:
    data = draft.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    requests.post(f"{url}/api/blobs/{digest}", data=data, timeout=600).raise_for_status()
    body = {"model": "smollm2-drafted", "from": "smollm2:135m", "draft_files": {"draft.gguf": digest}, "stream": False}
    r = requests.post(f"{url}/api/create", json=body, timeout=600)
    r.raise_for_status()
    return "smollm2-drafted"


def check_cost(threads: int) -> dict[int, float]:
    """Median ms of one decode of n tokens (logits for each, as a check of n-1 drafts) at depth 200."""
    import statistics
    import time

    from pyollama.llama import Batch, Context, Model

    model = Model(str(model_path("smollm2")))
    ctx = Context(model, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads)
    batch = Batch(512, 1)
    tokens = [(i * 7919) % 40000 + 100 for i in range(240)]
    batch.add_sequence(tokens[:200], 0, 0, True)
    ctx.decode(batch)
    out = {}
    for n in (1, 2, 5, 9, 17):
        times = []
        for _ in range(12):
            batch.clear()
            for j in range(n):
                batch.add(tokens[200 + j], 200 + j, 0, True)
            t0 = time.perf_counter()
            ctx.decode(batch)
            times.append(time.perf_counter() - t0)
            ctx.seq_rm(0, 200, -1)
        out[n] = statistics.median(times[2:]) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check-cost", action="store_true")
    args = parser.parse_args()
    if args.check_cost:
        costs = check_cost(args.threads)
        print(f"{cpu_name()}: " + ", ".join(f"{n} tokens {ms:.1f} ms ({ms / costs[1]:.1f}x)" for n, ms in costs.items()))
        return
    target = model_path("smollm2")
    work = Path(tempfile.mkdtemp(prefix="bench-spec-"))
    draft = write_truncated_copy(target, work / "draft.gguf", DRAFT_LAYERS)
    rates: dict[tuple[str, str], list[float]] = {}
    same: dict[tuple[str, str], bool] = {}
    baseline: dict[tuple[str, str], str] = {}

    def record(peer: str, config: str, prompt: str, rate: float, text: str) -> None:
        rates.setdefault((f"{peer} {config}", prompt), []).append(rate)
        if config == "no drafts":
            baseline[(peer, prompt)] = text
        else:
            same[(f"{peer} {config}", prompt)] = same.get((f"{peer} {config}", prompt), True) and (
                text == baseline[(peer, prompt)])
        print(f"  {peer} {config} {prompt}: {rate:.1f} t/s", flush=True)

    common = {"threads": args.threads, "n_parallel": 1, "ctx_per_slot": 2048}
    server_configs = [
        ("no drafts", []),
        ("prompt lookup", ["--spec-type", "ngram-simple"]),
        ("draft model", ["-md", str(draft), "--spec-draft-n-max", "4"]),
    ]
    with pyollama_server(work / "models", threads=args.threads, n_parallel=1, ctx=2048) as url:
        drafted = create_drafted(url, draft)
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}", flush=True)
            for prompt_name, prompt in PROMPTS.items():
                for config, model, drafts in (("no drafts", "smollm2:135m", None),
                                              ("prompt lookup", "smollm2:135m", NGRAM_DRAFTS),
                                              ("draft model", drafted, DRAFT_MODEL_DRAFTS)):
                    rate, text, _, _ = pyollama_run(url, model, prompt, drafts)
                    record("pyollama", config, prompt_name, rate, text)
            for config, extra in server_configs:
                with llama_server(target, extra=extra, **common) as surl:
                    for prompt_name, prompt in PROMPTS.items():
                        rate, text, _, _ = server_run(surl, prompt)
                        record("llama-server", config, prompt_name, rate, text)
    rows = []
    for config in ("no drafts", "prompt lookup", "draft model"):
        for prompt_name in PROMPTS:
            mine = median(rates[(f"pyollama {config}", prompt_name)])
            peer = median(rates[(f"llama-server {config}", prompt_name)])
            mine0 = median(rates[("pyollama no drafts", prompt_name)])
            peer0 = median(rates[("llama-server no drafts", prompt_name)])
            kept = "" if config == "no drafts" else (
                f"{'yes' if same[(f'pyollama {config}', prompt_name)] else 'NO'} / "
                f"{'yes' if same[(f'llama-server {config}', prompt_name)] else 'no'}")
            rows.append(f"| {config} | {prompt_name} | {mine:.1f} ({mine / mine0:.2f}x) | {peer:.1f} ({peer / peer0:.2f}x) "
                        f"| **{mine / peer:.2f}x** | {kept} |")
    block = "\n".join([
        BEGIN,
        (f"`python bench/bench_speculative.py --threads {args.threads} --rounds {args.rounds}` "
         f"({datetime.date.today().isoformat()}; CPU: {cpu_name()}; SmolLM2-135M Q4_1, draft: its first "
         f"{DRAFT_LAYERS} layers; greedy, {N_PREDICT} tokens, one request at a time; pyollama prompt lookup "
         f"with draft_num_predict {NGRAM_DRAFTS}, llama-server `--spec-type ngram-simple`; draft model: 4 drafts "
         "per step on both)."),
        "",
        ("| drafts | prompt | pyollama decode t/s (x its no-draft) | llama-server t/s (x its no-draft) "
         "| pyollama / llama-server | same greedy reply as without drafts (pyollama / llama-server) |"),
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Medians over rounds; each round runs every configuration once.",
        END,
    ])
    print(block)
    if args.out:
        replace_section(args.out, BEGIN, END, "## Speculative decoding (issue 15)", block)


if __name__ == "__main__":
    main()
