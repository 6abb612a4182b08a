"""Issue 15, KV cache types: the speed cost of OLLAMA_KV_CACHE_TYPE=q8_0 / q4_0 against f16.

pyollama.llama contexts as the runner builds them for a quantized cache (flash attention on,
K and V in the type) beside llama-bench with the same `-ctk/-ctv -fa 1`, in the same round:
decode (tg32) and next-turn prompt (pp32) at depth 1024. Medians of per-round figures.

    python bench/bench_kv_types.py --threads 2 --rounds 3 [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from bench_attention import pyollama_shape
from bench_threads import cpu_name
from peers import llama_bench, median, model_path, replace_section

from pyollama.llama import Model

BEGIN = "<!-- bench_kv_types: begin -->"
END = "<!-- bench_kv_types: end -->"
DEPTH = 1024
TYPES = ("f16", "q8_0", "q4_0")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    path = model_path("smollm2")
    model = Model(str(path))
    ours: dict[tuple[str, str], list[float]] = {}
    theirs: dict[tuple[str, str], list[float]] = {}
    for rnd in range(args.rounds):
        for kv in TYPES:
            for shape, n_prompt, n_gen in (("tg32", 0, 32), ("pp32", 32, 0)):
                mine = pyollama_shape(model, "on", args.threads, DEPTH, n_prompt, n_gen, kv_type=kv)
                peer = llama_bench(path, threads=args.threads, n_prompt=n_prompt, n_gen=n_gen,
                                   extra=["-fa", "1", "-ctk", kv, "-ctv", kv, "-d", str(DEPTH)])
                ours.setdefault((kv, shape), []).append(mine)
                theirs.setdefault((kv, shape), []).append(peer["pp" if n_prompt else "tg"])
                print(f"round {rnd + 1} {kv} {shape}: pyollama {mine:.1f}, llama-bench {theirs[(kv, shape)][-1]:.1f}",
                      flush=True)
    rows = []
    for kv in TYPES:
        cells = []
        for shape in ("tg32", "pp32"):
            mine, peer = median(ours[(kv, shape)]), median(theirs[(kv, shape)])
            base = median(ours[("f16", shape)])
            cells.append(f"{mine:.1f} ({mine / base:.2f}x of f16) | {peer:.1f}")
        rows.append(f"| {kv} | " + " | ".join(cells) + " |")
    block = "\n".join([
        BEGIN,
        (f"`python bench/bench_kv_types.py --threads {args.threads} --rounds {args.rounds}` "
         f"({datetime.date.today().isoformat()}; CPU: {cpu_name()}; SmolLM2-135M Q4_1; depth {DEPTH}; "
         "flash attention on, K and V in the type, as pyollama runs a quantized cache)."),
        "",
        "| KV type | pyollama tg32 t/s | llama-bench tg32 | pyollama pp32 t/s | llama-bench pp32 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        ("Memory (tests/native/test_attention_probe.py, llama.cpp's own sequence state): q8_0 0.53x, "
        "q4_0 0.28x of f16."),
        END,
    ])
    print(block)
    if args.out:
        replace_section(args.out, BEGIN, END, "## KV cache types (issue 15)", block)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
