"""ggml's batch-invariant mode (vendor/patches/0003, on in pyollama.llama): a token's logits are
the same whether it is decoded alone, with the tokens after it (a speculative check of drafts)
or beside other sequences (continuous batching), at depths where llama.cpp's CPU flash
attention would otherwise split a lone query's KV cache across threads (512 cells and more), and on
any thread count."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pyollama.llama import Batch, Context, Model

SENTENCE = "The quick brown fox jumps over the lazy dog. "


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Model:
    # weights in ggml's own layout: the CPU's repacked layouts (AMX tiles on Xeons, 4- and
    # 8-row interleaves on AVX2 for Q4_0/Q4_K) have their own kernels for one row and for several,
    # which the batch-invariant mode does not cover (docs/DIFFERENCES.md)
    return Model(str(smollm2_path), repack=False)


def _context(model: Model, n_seq: int = 1) -> tuple[Context, Batch]:
    ctx = Context(model, n_ctx=2048 * n_seq, n_batch=2048, n_ubatch=512, n_seq_max=n_seq, n_threads=2, flash_attn="on")
    return ctx, Batch(2048, 1)


def _prefill(ctx: Context, batch: Batch, tokens: list[int], seq: int = 0) -> None:
    batch.clear()
    batch.add_sequence(tokens, 0, seq, True)
    assert ctx.decode(batch) == 0


def test_the_mode_is_on_in_pyollama() -> None:
    assert os.environ["GGML_CPU_BATCH_INVARIANT"] == "1"


@pytest.mark.parametrize("repeats", [3, 12, 60])
def test_a_checked_draft_has_the_logits_of_decoding_one_by_one(model: Model, repeats: int) -> None:
    tokens = model.tokenize(SENTENCE * repeats, True)
    head, tail = tokens[:-5], tokens[-5:]
    ctx, batch = _context(model)
    _prefill(ctx, batch, head)
    one_by_one = []
    for i, tok in enumerate(tail):
        batch.clear()
        batch.add(tok, len(head) + i, 0, True)
        assert ctx.decode(batch) == 0
        one_by_one.append(ctx.logits(0).copy())
    ctx, batch = _context(model)
    _prefill(ctx, batch, head)
    batch.clear()
    for i, tok in enumerate(tail):
        batch.add(tok, len(head) + i, 0, True)
    assert ctx.decode(batch) == 0
    for i in range(len(tail)):
        assert np.array_equal(ctx.logits(i), one_by_one[i]), f"row {i} at depth {len(head) + i}"


def test_a_token_decoded_beside_other_sequences_has_its_lone_logits(model: Model) -> None:
    tokens = model.tokenize(SENTENCE * 60, True)
    other = model.tokenize("Once upon a time, in a land far away, " * 40, True)
    ctx, batch = _context(model)
    _prefill(ctx, batch, tokens[:-1])
    batch.clear()
    batch.add(tokens[-1], len(tokens) - 1, 0, True)
    assert ctx.decode(batch) == 0
    alone = ctx.logits(0).copy()
    ctx, batch = _context(model, n_seq=3)
    _prefill(ctx, batch, tokens[:-1], seq=0)
    _prefill(ctx, batch, other, seq=1)
    _prefill(ctx, batch, other[:100], seq=2)
    batch.clear()
    batch.add(other[100], 100, 2, True)
    batch.add(tokens[-1], len(tokens) - 1, 0, True)
    batch.add(other[-1], len(other), 1, True)
    assert ctx.decode(batch) == 0
    assert np.array_equal(ctx.logits(1), alone)


def test_a_lone_decode_at_depth_has_the_same_logits_on_any_thread_count(model: Model) -> None:
    # the KV cache is split in fixed blocks, not in one chunk per thread
    tokens = model.tokenize(SENTENCE * 60, True)
    logits = []
    for n_threads in (1, 2, 3):
        ctx = Context(model, n_ctx=2048, n_batch=2048, n_ubatch=512, n_threads=n_threads, flash_attn="on")
        batch = Batch(2048, 1)
        _prefill(ctx, batch, tokens[:-1])
        batch.clear()
        batch.add(tokens[-1], len(tokens) - 1, 0, True)
        assert ctx.decode(batch) == 0
        logits.append(ctx.logits(0).copy())
    assert np.array_equal(logits[0], logits[1]) and np.array_equal(logits[0], logits[2])
