"""Issue 2: greedy decode and prompt-eval tokens/s through pyollama.llama vs llama-bench.

Same model (SmolLM2-135M Q4_1), same threads, same sizes (pp512, tg128), runs
interleaved in one process run; medians and ratios are reported.

    python bench/bench_native.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import time

from peers import llama_bench, median, model_path

from pyollama.llama import Batch, Context, Model, SamplerSettings


def pyollama_pp(model: Model, ctx: Context, n_prompt: int) -> float:
    rng = random.Random(0)
    tokens = [rng.randrange(model.n_vocab) for _ in range(n_prompt)]
    batch = Batch(n_prompt)
    batch.add_sequence(tokens, 0, 0, True)
    ctx.memory_clear()
    t0 = time.perf_counter()
    ctx.decode(batch)
    ctx.logits(-1)  # synchronise like llama-bench does
    return n_prompt / (time.perf_counter() - t0)


def pyollama_tg(model: Model, ctx: Context, n_gen: int) -> float:
    """Greedy generation: decode one token, sample the argmax, feed it back."""
    ctx.memory_clear()
    sampler = SamplerSettings(temperature=0.0).build(model)  # the engine's sampler (argmax fast path)
    batch = Batch(1)
    batch.add(model.token_bos or 1, 0, 0, True)
    ctx.decode(batch)
    t0 = time.perf_counter()
    for pos in range(1, n_gen + 1):
        tok = sampler.sample(ctx, -1)
        sampler.accept(tok)
        batch.clear()
        batch.add(tok, pos, 0, True)
        ctx.decode(batch)
    return n_gen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    args = ap.parse_args()
    path = model_path()
    model = Model(path)
    ctx = Context(model, n_ctx=args.pp + args.tg, n_batch=2048, n_ubatch=512, n_threads=args.threads)
    pyollama_pp(model, ctx, args.pp)  # warm-up, like llama-bench's
    pyollama_tg(model, ctx, 16)
    ours_pp, ours_tg, peer_pp, peer_tg = [], [], [], []
    for _ in range(args.rounds):
        ours_pp.append(pyollama_pp(model, ctx, args.pp))
        ours_tg.append(pyollama_tg(model, ctx, args.tg))
        ref = llama_bench(path, threads=args.threads, n_prompt=args.pp, n_gen=0)
        peer_pp.append(ref["pp"])
        ref = llama_bench(path, threads=args.threads, n_prompt=0, n_gen=args.tg)
        peer_tg.append(ref["tg"])
    print(f"model {path.name}, threads {args.threads}, rounds {args.rounds} (medians, tokens/s)")
    # The machine's speed drifts by 10% over minutes: each round's pair is measured side by side,
    # so the median of the per-round ratios is the figure to read.
    print("| test | pyollama.llama | llama-bench | ratio of medians | median of per-round ratios |")
    print("|---|---|---|---|---|")
    for name, ours, peer in ((f"pp{args.pp}", ours_pp, peer_pp), (f"tg{args.tg}", ours_tg, peer_tg)):
        paired = median([o / p for o, p in zip(ours, peer)])
        print(f"| {name} | {median(ours):.1f} | {median(peer):.1f} | {median(ours) / median(peer):.3f}x "
              f"| {paired:.3f}x |")


if __name__ == "__main__":
    main()
