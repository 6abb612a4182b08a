from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pyollama.llama import Batch, Context, Model, SamplerChain


def _prompt(model: Model) -> list[int]:
    return model.tokenize("The capital of France is", add_special=True)


def test_decode_gives_logits_for_flagged_tokens_only(smollm2: Model, ctx: Context) -> None:
    tokens = _prompt(smollm2)
    batch = Batch(64)
    batch.add_sequence(tokens, 0, 0, True)
    assert ctx.decode(batch) == 0
    logits = ctx.logits(len(tokens) - 1)
    assert isinstance(logits, np.ndarray) and logits.shape == (smollm2.n_vocab,)
    assert np.isfinite(logits).all()
    with pytest.raises(IndexError):
        ctx.logits(0)  # no output requested there
    with pytest.raises(IndexError):
        ctx.logits(1000)


def test_bad_batches_are_refused_before_reaching_llama(smollm2: Model, ctx: Context) -> None:
    batch = Batch(4)
    batch.add(smollm2.n_vocab + 3, 0, 0, True)
    with pytest.raises(IndexError, match="token id"):
        ctx.decode(batch)
    batch.clear()
    batch.add(1, 0, 7, True)  # ctx has 2 sequences
    with pytest.raises(IndexError, match="sequence id"):
        ctx.decode(batch)
    batch.clear()
    with pytest.raises(ValueError, match="empty"):
        ctx.decode(batch)
    for i in range(4):
        batch.add(1, i, 0)
    with pytest.raises(IndexError, match="full"):
        batch.add(1, 4, 0)
    with pytest.raises(ValueError):
        Batch(0)


def test_kv_memory_operations_per_sequence(smollm2: Model) -> None:
    ctx = Context(smollm2, n_ctx=512, n_seq_max=2, n_threads=2, kv_unified=True)
    tokens = _prompt(smollm2)
    batch = Batch(64)
    batch.add_sequence(tokens, 0, 0, True)
    ctx.decode(batch)
    assert ctx.seq_pos_max(0) == len(tokens) - 1
    assert ctx.seq_pos_max(1) == -1
    ctx.seq_cp(0, 1)
    assert ctx.seq_pos_max(1) == len(tokens) - 1
    assert ctx.seq_rm(1, 2, -1)
    assert ctx.seq_pos_max(1) == 1
    ctx.seq_keep(0)
    assert ctx.seq_pos_max(1) == -1
    with pytest.raises(IndexError):
        ctx.seq_pos_max(2)
    ctx.memory_clear()
    assert ctx.seq_pos_max(0) == -1


def test_sequence_state_restores_identical_logits(smollm2: Model, ctx: Context) -> None:
    tokens = _prompt(smollm2)
    batch = Batch(64)
    batch.add_sequence(tokens, 0, 0, True)
    ctx.decode(batch)
    state = ctx.seq_state(0)
    batch.clear()
    batch.add(100, len(tokens), 0, True)
    ctx.decode(batch)
    first = ctx.logits(0)
    ctx.memory_clear()
    ctx.set_seq_state(state, 1)
    batch.clear()
    batch.add(100, len(tokens), 1, True)
    ctx.decode(batch)
    np.testing.assert_allclose(ctx.logits(0), first, rtol=1e-4, atol=1e-4)


def test_two_sequences_in_one_batch_match_separate_decodes(smollm2: Model) -> None:
    a = smollm2.tokenize("Once upon a time", add_special=True)
    b = smollm2.tokenize("The quick brown fox", add_special=True)
    ctx = Context(smollm2, n_ctx=512, n_seq_max=2, n_threads=2)
    batch = Batch(64, 1)
    batch.add_sequence(a, 0, 0, True)
    batch.add_sequence(b, 0, 1, True)
    ctx.decode(batch)
    both = ctx.logits(len(a) - 1), ctx.logits(len(a) + len(b) - 1)
    for seq_tokens, expected in zip((a, b), both):
        solo = Context(smollm2, n_ctx=512, n_seq_max=1, n_threads=2)
        batch.clear()
        batch.add_sequence(seq_tokens, 0, 0, True)
        solo.decode(batch)
        assert int(np.argmax(solo.logits(-1))) == int(np.argmax(expected))


def test_decode_releases_the_gil(smollm2: Model) -> None:
    ctx = Context(smollm2, n_ctx=2048, n_batch=2048, n_threads=1)
    tokens = (smollm2.tokenize("word " * 400, add_special=True))[:1500]
    batch = Batch(2048)
    batch.add_sequence(tokens, 0, 0, True)
    ticks = 0
    done = threading.Event()

    def decode() -> None:
        ctx.decode(batch)
        done.set()

    t = threading.Thread(target=decode)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - start
    # With the GIL held for the whole decode the loop could not tick at all meanwhile.
    assert elapsed > 0.02 and ticks > 5


def test_greedy_chain_picks_the_argmax(smollm2: Model, ctx: Context) -> None:
    batch = Batch(64)
    batch.add_sequence(_prompt(smollm2), 0, 0, True)
    ctx.decode(batch)
    chain = SamplerChain()
    chain.add_greedy()
    assert chain.sample(ctx, -1) == int(np.argmax(ctx.logits(-1)))
    with pytest.raises(IndexError):
        chain.sample(ctx, 0)


def test_embeddings_context_pools_per_sequence(smollm2: Model) -> None:
    ctx = Context(smollm2, n_ctx=512, n_seq_max=2, embeddings=True, pooling="mean", n_threads=2)
    batch = Batch(64)
    batch.add_sequence(smollm2.tokenize("hello", add_special=True), 0, 0, True)
    batch.add_sequence(smollm2.tokenize("goodbye forever", add_special=True), 0, 1, True)
    ctx.decode(batch)
    a, b = ctx.embeddings_seq(0), ctx.embeddings_seq(1)
    assert a.shape == (smollm2.n_embd,) and not np.allclose(a, b)
    with pytest.raises(ValueError):
        Context(smollm2, n_ctx=64, pooling="sideways")
    with pytest.raises(ValueError):
        Context(smollm2, n_ctx=64, type_k="q9_9")


def test_set_n_threads_between_decodes_gives_the_same_logits(smollm2: Model) -> None:
    """Growing the context's thread pool replaces it; the CPU backend still points at the old pool
    until the next decode, so the old one must stay alive (it was freed once: a hang or a crash)."""
    ctx = Context(smollm2, n_ctx=64, n_threads=1)
    tokens = smollm2.tokenize("The sky is blue because")
    batch = Batch(len(tokens))
    batch.add_sequence(tokens, 0)
    reference = None
    for n in (2, 1, 3, 2, 4, 1, 4):
        ctx.set_n_threads(n)
        assert ctx.n_threads == n
        ctx.memory_clear()
        assert ctx.decode(batch) == 0
        logits = np.array(ctx.logits(-1), copy=True)
        if reference is None:
            reference = logits
        assert np.allclose(logits, reference, atol=1e-3)
