"""Issue 15, attention path: pyollama's measured flash-attention choice against llama-bench's
two settings, per shape, on this CPU.

Shapes (llama-bench's names): tg32 @ d2048 (a reply at a chat's depth), pp32 @ d2048 (the next
turn's new tokens), pp512 @ d0 (a long first prompt). pyollama runs a context as its runner
builds it with PYOLLAMA_MEASURE_ATTENTION=1 (flash attention as `engine/attention.py` chooses
for the model on this CPU; without it pyollama uses llama.cpp's auto, llama-bench's `-fa 1`
path); llama-bench runs `-fa 0` and `-fa 1` (its default, `auto`, is `1` on a CPU) in the
same round. Reported: medians of per-round ratios against llama-bench's better
setting for that shape, and against its default.

    python bench/bench_attention.py --threads 2 --rounds 5 [--out bench/RESULTS.md]
    python bench/bench_attention.py --default ...   # pyollama's default path (auto) instead

pyollama's contexts run in its batch-invariant mode (GGML_CPU_BATCH_INVARIANT=1, set by
pyollama.llama); llama-bench runs llama.cpp's own paths.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from bench_threads import cpu_name
from peers import llama_bench, median, model_path, replace_section

from pyollama.engine.attention import cpu_flash_attention, head_shape, measure
from pyollama.llama import Batch, Context, Model

BEGIN = "<!-- bench_attention: begin -->"
END = "<!-- bench_attention: end -->"
SHAPES = (("tg32 @ d2048", 2048, 0, 32), ("pp32 @ d2048", 2048, 32, 0), ("pp512 @ d0", 0, 512, 0))


def _filler(n: int) -> list[int]:
    return [(i * 7919) % 40000 + 100 for i in range(n)]


def pyollama_shape(model: Model, flash: str, threads: int, depth: int, n_prompt: int, n_gen: int,
                   kv_type: str = "f16") -> float:
    """tokens/s for one shape, as llama-bench measures it: fill `depth` tokens, then time a
    prompt of `n_prompt` tokens or `n_gen` single-token decodes."""
    ctx = Context(model, n_ctx=depth + 640, n_batch=512, n_ubatch=512, n_threads=threads, flash_attn=flash,
                  type_k=kv_type, type_v=kv_type)
    batch = Batch(512, 1)
    for start in range(0, depth, 512):
        batch.clear()
        batch.add_sequence(_filler(depth)[start : start + 512], start, 0, True)
        ctx.decode(batch)
    # warm-up, as llama-bench's: the first graph of a new batch size is planned and allocated
    batch.clear()
    if n_prompt:
        batch.add_sequence(_filler(n_prompt), depth, 0, True)
    else:
        batch.add(99, depth, 0, True)
    ctx.decode(batch)
    ctx.seq_rm(0, depth, -1)
    if n_prompt:
        t0 = time.perf_counter()
        ctx.decode(batch)
        return n_prompt / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n_gen):
        batch.clear()
        batch.add(100 + i, depth + i, 0, True)
        ctx.decode(batch)
    return n_gen / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--default", action="store_true", help="pyollama's default (auto), not the measured choice")
    args = parser.parse_args()
    path = model_path("smollm2")
    model = Model(str(path))
    shape = head_shape(model)
    assert shape is not None
    if args.default:
        choice, how = "auto", "pyollama's default: llama.cpp's auto, flash attention on on a CPU"
    else:
        choice = cpu_flash_attention(*shape, args.threads)
        how = f"PYOLLAMA_MEASURE_ATTENTION=1 chose flash attention **{choice}** ({measure(*shape, args.threads).describe()})"
    print(how, flush=True)
    begin, end = (BEGIN.replace(":", "_default:"), END.replace(":", "_default:")) if args.default else (BEGIN, END)

    ratios: dict[str, dict[str, list[float]]] = {name: {"best": [], "default": []} for name, *_ in SHAPES}
    speeds: dict[str, dict[str, list[float]]] = {name: {"pyollama": [], "fa0": [], "fa1": []} for name, *_ in SHAPES}
    for rnd in range(args.rounds):
        for name, depth, n_prompt, n_gen in SHAPES:
            ours = pyollama_shape(model, choice, args.threads, depth, n_prompt, n_gen)
            peers = {}
            for fa in ("0", "1"):
                got = llama_bench(path, threads=args.threads, n_prompt=n_prompt, n_gen=n_gen,
                                  extra=["-fa", fa, "-d", str(depth)])
                peers[fa] = got["pp" if n_prompt else "tg"]
            speeds[name]["pyollama"].append(ours)
            speeds[name]["fa0"].append(peers["0"])
            speeds[name]["fa1"].append(peers["1"])
            ratios[name]["best"].append(ours / max(peers.values()))
            ratios[name]["default"].append(ours / peers["1"])
            print(f"round {rnd + 1} {name}: pyollama {ours:.1f}, llama-bench fa0 {peers['0']:.1f}, "
                  f"fa1 {peers['1']:.1f} t/s", flush=True)

    rows = []
    for name, *_ in SHAPES:
        s, r = speeds[name], ratios[name]
        rows.append(f"| {name} | {median(s['pyollama']):.1f} | {median(s['fa0']):.1f} | {median(s['fa1']):.1f} | "
                    f"**{median(r['best']):.2f}x** | {median(r['default']):.2f}x |")
    today = datetime.date.today().isoformat()
    flag = " --default" if args.default else ""
    label = "default" if args.default else "measured choice"
    block = "\n".join([
        begin,
        (f"`python bench/bench_attention.py{flag} --threads {args.threads} --rounds {args.rounds}` ({today}; CPU: "
        f"{cpu_name()}; SmolLM2-135M Q4_1). {how}; pyollama in its batch-invariant mode."),
        "",
        (f"| shape | pyollama ({label}) t/s | llama-bench -fa 0 | llama-bench -fa 1 (its default) | pyollama / better "
        "llama-bench setting | pyollama / llama-bench default |"),
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Medians of the per-round ratios; each round runs pyollama then both llama-bench settings.",
        end,
    ])
    print(block)
    if args.out:
        heading = "## Attention path per shape, pyollama's default (issue 15)" if args.default else \
            "## Attention path per shape (issue 15)"
        replace_section(args.out, begin, end, heading, block)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
