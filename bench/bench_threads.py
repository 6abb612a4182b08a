"""Issue 12: decode speed wherever the model was loaded, with other models loaded, through HTTP;
and the CPU's extra buffer types (AMX, repacked weights) on and off.

Every figure is set beside llama-bench's (same pinned tree, built by bench/build_peers.sh, same
model file and thread count) measured in the same round; medians of per-round ratios are
reported. Decode is greedy tg128 at depth 0, as llama-bench's tg128.

    python bench/bench_threads.py --threads 2 --rounds 5 [--out bench/RESULTS.md]

Sections:
- threads: load and decode on one thread; load on a thread that stays alive (a waitress worker)
  and decode on another (a runner's decode thread); the same with two and three models loaded,
  each of which has decoded on its own thread; and `pyollama serve` over HTTP (each model in its
  runner process, the default), reading Ollama's eval_count / eval_duration.
- repack: pp512 and tg128 with the extra buffer types on and off, pyollama.llama beside
  `llama-bench --repack 1/0`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import re
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from bench_native import pyollama_pp, pyollama_tg
from peers import llama_bench, median, model_path, pyollama_server, replace_section

from pyollama.llama import Context, Model
from pyollama.llama.system import cpu_paths

BEGIN = "<!-- bench_threads: begin -->"
END = "<!-- bench_threads: end -->"


def cpu_name() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    name = found.group(1).strip() if found else platform.processor() or platform.machine()
    amx = " with AMX" if re.search(r"\bamx_int8\b", text) else ", no AMX"
    isa = "AVX-512" if re.search(r"\bavx512f\b", text) else "AVX2" if re.search(r"\bavx2\b", text) else "no AVX2"
    return f"{name} ({isa}){amx}, {os.cpu_count()} CPUs"


class HeldModel:
    """A model loaded on a thread that stays alive afterwards, as a waitress worker does, and
    optionally decoding on a thread of its own first (a runner's decode thread)."""

    def __init__(self, path: Path, *, threads: int, decode_on_own_thread: bool, repack: bool = True) -> None:
        self.model: Model | None = None
        self.ctx: Context | None = None
        self._loaded = threading.Event()
        self._release = threading.Event()
        self._error: BaseException | None = None
        self._holder = threading.Thread(target=self._hold, args=(path, threads, repack), daemon=True)
        self._holder.start()
        self._loaded.wait()
        if self._error:
            raise self._error
        if decode_on_own_thread:
            worker = threading.Thread(target=self._decode_some, daemon=True)
            worker.start()
            worker.join()

    def _hold(self, path: Path, threads: int, repack: bool) -> None:
        try:
            self.model = Model(path, repack=repack)
            self.ctx = Context(self.model, n_ctx=1024, n_batch=512, n_threads=threads)
        except BaseException as e:  # noqa: BLE001 - re-raised on the creating thread
            self._error = e
        self._loaded.set()
        self._release.wait()

    def _decode_some(self) -> None:
        assert self.model is not None and self.ctx is not None
        pyollama_tg(self.model, self.ctx, 16)

    def close(self) -> None:
        self._release.set()
        self._holder.join()


def tg_same_thread(path: Path, threads: int, n_gen: int) -> Callable[[], float]:
    model = Model(path)
    ctx = Context(model, n_ctx=n_gen + 16, n_batch=512, n_threads=threads)
    pyollama_tg(model, ctx, 16)
    return lambda: pyollama_tg(model, ctx, n_gen)


def tg_loaded_elsewhere(path: Path, threads: int, n_gen: int, others: list[Path]) -> tuple[Callable[[], float], list[HeldModel]]:
    held = [HeldModel(p, threads=threads, decode_on_own_thread=True) for p in others]
    main = HeldModel(path, threads=threads, decode_on_own_thread=False)
    held.append(main)
    assert main.model is not None and main.ctx is not None
    model, ctx = main.model, main.ctx
    pyollama_tg(model, ctx, 16)
    return (lambda: pyollama_tg(model, ctx, n_gen)), held


def http_eval_rate(url: str, model: str, n_gen: int) -> float:
    import requests

    body = {"model": model, "prompt": "Write a long story about a dragon who learns to bake bread.",
            "stream": False, "options": {"temperature": 0, "num_predict": n_gen, "seed": 1}}
    reply = requests.post(f"{url}/api/generate", json=body, timeout=600).json()
    return float(reply["eval_count"]) / (reply["eval_duration"] / 1e9)


def section_threads(args: argparse.Namespace, models: dict[str, Path]) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "models"
        with pyollama_server(store, threads=args.threads, n_parallel=1, ctx=2048) as url:
            for name in ("smollm2", "gemma3"):
                path = models[name]
                tag = {"smollm2": "smollm2:135m", "gemma3": "gemma3:270m"}[name]
                others = [models[o] for o in models if o != name]
                cases: dict[str, Callable[[], float]] = {}
                cleanup: list[HeldModel] = []
                cases["load and decode on one thread"] = tg_same_thread(path, args.threads, args.tg)
                fn, held = tg_loaded_elsewhere(path, args.threads, args.tg, [])
                cases["loaded on one thread, decoded on another"] = fn
                cleanup += held
                fn, held = tg_loaded_elsewhere(path, args.threads, args.tg, others[:1])
                cases["... with 2 models loaded (each decoded on its own thread)"] = fn
                cleanup += held
                fn, held = tg_loaded_elsewhere(path, args.threads, args.tg, others[:1] + [models["smollm2-f16"]])
                cases["... with 3 models loaded"] = fn
                cleanup += held
                http_eval_rate(url, tag, 16)  # load it in its runner process
                cases["HTTP /api/generate (runner process), eval_count/eval_duration"] = (
                    lambda tag=tag: http_eval_rate(url, tag, args.tg))
                results: dict[str, list[float]] = {k: [] for k in cases}
                peer: list[float] = []
                for i in range(args.rounds):
                    # the machine drifts within a round: llama-bench before and after the cases,
                    # which run in a different order each round
                    before = llama_bench(path, threads=args.threads, n_gen=args.tg)["tg"]
                    for key in random.Random(i).sample(list(cases), len(cases)):
                        results[key].append(cases[key]())
                    after = llama_bench(path, threads=args.threads, n_gen=args.tg)["tg"]
                    peer.append((before + after) / 2)
                for key, values in results.items():
                    ratio = median([v / p for v, p in zip(values, peer)])
                    rows.append(f"| {path.name} | {key} | {median(values):.1f} | {median(peer):.1f} | {ratio:.3f}x |")
                for h in cleanup:
                    h.close()
    return rows


def section_repack(args: argparse.Namespace, models: dict[str, Path]) -> list[str]:
    rows = []
    for name in ("smollm2", "gemma3"):
        path = models[name]
        for repack in (True, False):
            model = Model(path, repack=repack)
            ctx = Context(model, n_ctx=args.pp + args.tg, n_batch=2048, n_ubatch=512, n_threads=args.threads)
            pyollama_pp(model, ctx, args.pp)
            ours_pp, ours_tg, peer_pp, peer_tg = [], [], [], []
            flag = ["--repack", "1" if repack else "0"]
            for _ in range(args.rounds):
                ours_pp.append(pyollama_pp(model, ctx, args.pp))
                ours_tg.append(pyollama_tg(model, ctx, args.tg))
                peer_pp.append(llama_bench(path, threads=args.threads, n_prompt=args.pp, extra=flag)["pp"])
                peer_tg.append(llama_bench(path, threads=args.threads, n_gen=args.tg, extra=flag)["tg"])
            for test, ours, peer in ((f"pp{args.pp}", ours_pp, peer_pp), (f"tg{args.tg}", ours_tg, peer_tg)):
                ratio = median([o / p for o, p in zip(ours, peer)])
                rows.append(f"| {path.name} | {'on' if repack else 'off'} | {test} | {median(ours):.1f} | "
                            f"{median(peer):.1f} | {ratio:.3f}x |")
            del ctx, model
    return rows


def f16_smollm2() -> Path:
    """SmolLM2 in F16: a third model with other kernels (no repack)."""
    out = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyollama-bench" / "smollm2-f16.gguf"
    if not out.exists():
        from pyollama import _native

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_suffix(".part")
        _native.quantize(str(model_path("smollm2")), str(tmp_out), "F16", allow_requantize=True)
        os.replace(tmp_out, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--only", choices=("threads", "repack"))
    ap.add_argument("--out", type=Path, help="replace this script's section of a RESULTS.md")
    args = ap.parse_args()
    models = {"smollm2": model_path("smollm2"), "gemma3": model_path("gemma3"), "smollm2-f16": f16_smollm2()}
    paths = cpu_paths()
    command = f"python bench/bench_threads.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}"
    about = (f"`{command}` ({datetime.date.today().isoformat()}; {cpu_name()}; {args.threads} threads; "
             f"{args.rounds} rounds; pyollama's CPU: variant {paths['variant']}, extra buffer types "
             f"{', '.join(paths['extra_buffer_types']) or 'none'}; llama-bench built with its default OpenMP)")
    lines = [BEGIN, about, ""]
    if args.only in (None, "threads"):
        header = "| model | pyollama, decode tg128 | tokens/s | llama-bench tg128 | median of per-round ratios |"
        lines += [header, "|---|---|---|---|---|", *section_threads(args, models), ""]
    if args.only in (None, "repack"):
        header = ("| model | extra buffer types (repack) | test | pyollama.llama | llama-bench --repack | "
                  "median of per-round ratios |")
        lines += [header, "|---|---|---|---|---|---|", *section_repack(args, models), ""]
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if args.out:
        replace_section(args.out, BEGIN, END, "## Decode threads and CPU paths (issue 12, bench_threads.py)", text)


if __name__ == "__main__":
    main()
