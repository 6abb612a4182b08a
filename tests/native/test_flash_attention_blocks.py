"""Patch 0003's flash attention for up to 32 query rows (pyollama's batch-invariant mode): blocks of
256 KV cells computed as scores, one softmax, then V, with up to 4 query rows of a head at once
where K and V are f16. It must compute attention (agree with llama.cpp's path without flash
attention as closely as llama.cpp's own flash attention does), and give a row the same result
whichever rows share its group (checks of 2, 3 and 7 tokens: groups of 2, 3, and 4 + 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyollama.llama import Batch, Context, Model

SENTENCE = "The quick brown fox jumps over the lazy dog. "


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Model:
    return Model(str(smollm2_path), repack=False)  # ggml's own weight layout (test_batch_invariance)


def _logits(model: Model, head: list[int], tail: list[int], flash: str, one_by_one: bool = False) -> np.ndarray:
    ctx = Context(model, n_ctx=2048, n_batch=2048, n_ubatch=512, n_threads=2, flash_attn=flash)
    batch = Batch(2048, 1)
    batch.add_sequence(head, 0, 0, True)
    assert ctx.decode(batch) == 0
    rows = []
    if one_by_one:
        for i, tok in enumerate(tail):
            batch.clear()
            batch.add(tok, len(head) + i, 0, True)
            assert ctx.decode(batch) == 0
            rows.append(ctx.logits(0).copy())
        return np.stack(rows)
    batch.clear()
    for i, tok in enumerate(tail):
        batch.add(tok, len(head) + i, 0, True)
    assert ctx.decode(batch) == 0
    return np.stack([ctx.logits(i).copy() for i in range(len(tail))])


@pytest.mark.parametrize("n_tail", [1, 5])
@pytest.mark.parametrize("repeats", [3, 60])
def test_it_agrees_with_attention_without_flash_attention(model: Model, repeats: int, n_tail: int) -> None:
    # depth ~30 (one block) and ~600 (three blocks, the last one partly masked)
    tokens = model.tokenize(SENTENCE * repeats, True)
    head, tail = tokens[:-n_tail], tokens[-n_tail:]
    flash = _logits(model, head, tail, "on")
    plain = _logits(model, head, tail, "off")
    assert np.array_equal(flash.argmax(axis=1), plain.argmax(axis=1))
    # measured at depth 600 over 7 rows: this kernel against the plain path 0.27 mean, 1.06 max;
    # llama.cpp's own CPU flash attention against the plain path 0.17 and 0.96, and against this
    # kernel 0.16 and 0.84 (f16 rounding of Q, of the probabilities and of llama.cpp's
    # accumulator); a wrong cell, row or block shows as differences of several units
    difference = np.abs(flash - plain)
    assert difference.mean() < 0.4 and difference.max() < 2.0, (difference.mean(), difference.max())


@pytest.mark.parametrize("n_tail", [2, 3, 7])
def test_a_row_gets_the_same_result_in_any_group(model: Model, n_tail: int) -> None:
    tokens = model.tokenize(SENTENCE * 60, True)
    head, tail = tokens[:-n_tail], tokens[-n_tail:]
    together = _logits(model, head, tail, "on")
    alone = _logits(model, head, tail, "on", one_by_one=True)
    for i in range(n_tail):
        assert np.array_equal(together[i], alone[i]), f"row {i} of {n_tail}"
