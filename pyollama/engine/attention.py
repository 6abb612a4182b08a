"""Flash attention on or off, chosen by measuring this CPU on the model's head shape.

With the model on the CPU, the choice matters and depends on the CPU family and the shape:
ggml's CPU flash-attention kernel wins on large batches (a long prompt evaluated at once) and
loses on one token and on small batches once the context is deep, which is where a chat
spends its time: each reply token, and the next turn's few new tokens, at a depth of
thousands. llama.cpp's `auto` turns it on for every CPU. With PYOLLAMA_MEASURE_ATTENTION=1, for
a model whose layers stay on the CPU, the runner times one layer's attention both ways
(`pyollama.llama.system.attention_seconds`, a few milliseconds) at a chat's depth for one token
and for a next turn's 32, and turns flash attention on only when it is at least as fast for
both. Embedding contexts keep `auto`: they evaluate whole inputs at once, where flash attention
wins. `OLLAMA_FLASH_ATTENTION` overrides, and models with layers on a GPU keep llama.cpp's own
choice.

Why it is not the default: pyollama's own CPU flash-attention kernel for up to 32 query rows
(patch 0003, in the batch-invariant mode pyollama runs: scores, one softmax, then V, per block of
256 cells) made flash attention as fast as the other path for one token and for a next turn's
32 at depth 2048, where llama.cpp's kernel was about 2x slower, while it stays the faster path
for long prompts; so llama.cpp's `auto` (on, on a CPU) serves every shape (bench/RESULTS.md,
`bench_attention.py --default`). The probe stays for CPUs and head shapes where that may not hold.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from pyollama.llama import Model
from pyollama.llama.system import attention_seconds

log = logging.getLogger("pyollama.attention")

DEPTH = 2048  # a chat a few turns in
NEXT_TURN_TOKENS = 32


@dataclass(frozen=True)
class AttentionTiming:
    """Seconds of one layer's attention at DEPTH, per path and batch size."""

    decode_flash: float
    decode_plain: float
    turn_flash: float
    turn_plain: float

    @property
    def flash_pays(self) -> bool:
        return self.decode_flash <= self.decode_plain and self.turn_flash <= self.turn_plain

    def describe(self) -> str:
        return (
            f"one layer at depth {DEPTH}: 1 token {self.decode_flash * 1e6:.0f} us with flash attention, "
            f"{self.decode_plain * 1e6:.0f} us without; {NEXT_TURN_TOKENS} tokens "
            f"{self.turn_flash * 1e6:.0f} us with, {self.turn_plain * 1e6:.0f} us without"
        )


@functools.lru_cache(maxsize=32)
def measure(head_dim: int, n_head: int, n_head_kv: int, n_threads: int) -> AttentionTiming:
    """Both paths, interleaved, three rounds; the fastest round of each (the least disturbed)."""
    runs: dict[tuple[int, bool], list[float]] = {}
    for _ in range(3):
        for n_q in (1, NEXT_TURN_TOKENS):
            for flash in (True, False):
                seconds = attention_seconds(head_dim, n_head, n_head_kv, DEPTH, n_q, n_threads, flash, 3)
                runs.setdefault((n_q, flash), []).append(seconds)
    best = {key: min(values) for key, values in runs.items()}
    return AttentionTiming(
        decode_flash=best[(1, True)],
        decode_plain=best[(1, False)],
        turn_flash=best[(NEXT_TURN_TOKENS, True)],
        turn_plain=best[(NEXT_TURN_TOKENS, False)],
    )


def head_shape(model: Model) -> tuple[int, int, int] | None:
    """(head_dim, n_head, n_head_kv) of a model's attention; None without attention (recurrent)."""
    n_head, n_head_kv = model.n_head, model.n_head_kv
    if n_head <= 0 or n_head_kv <= 0 or model.is_recurrent:
        return None
    arch = model.meta("general.architecture") or ""
    key_length = model.meta(f"{arch}.attention.key_length")
    head_dim = int(key_length) if key_length and key_length.isdigit() else model.n_embd // n_head
    return head_dim, n_head, n_head_kv


def cpu_flash_attention(head_dim: int, n_head: int, n_head_kv: int, n_threads: int) -> str:
    """"on" or "off" for a generation context on the CPU; "auto" when the shape cannot be measured."""
    try:
        timing = measure(head_dim, n_head, n_head_kv, max(1, n_threads))
    except (ValueError, RuntimeError) as exc:
        log.info("flash attention left to llama.cpp: the attention probe failed: %s", exc)
        return "auto"
    choice = "on" if timing.flash_pays else "off"
    log.info("flash attention %s on this CPU for heads %dx%d (%d KV): %s", choice, n_head, head_dim, n_head_kv,
             timing.describe())
    return choice
