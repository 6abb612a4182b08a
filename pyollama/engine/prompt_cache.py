"""Prompt cache: which sequence's KV to reuse for a new prompt.

Each slot keeps the tokens whose KV it still holds after its request ends.
A new request takes the free slot sharing the longest token prefix with its
prompt, so only the differing tail is evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # Compare in chunks first: most prompts share long prefixes.
    step = 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def pick_slot(cached: Sequence[Sequence[int]], free: Sequence[int], prompt: Sequence[int]) -> tuple[int, int]:
    """Return (slot index, reusable prefix length) among `free` slots; ties go to the emptiest cache."""
    best_slot, best_len, best_size = free[0], -1, 0
    for i in free:
        n = common_prefix_len(cached[i], prompt)
        if n > best_len or (n == best_len and len(cached[i]) < best_size):
            best_slot, best_len, best_size = i, n, len(cached[i])
    return best_slot, max(best_len, 0)
