"""Log-probabilities: the log-softmax and top-k of a logits vector, and which chunk of streamed
text each token's entry goes out with (the decode thread's bookkeeping, with the real
streaming detokenizer)."""

from __future__ import annotations

import numpy as np
import pytest

from pyollama.engine.detokenizer import StreamDetokenizer
from pyollama.engine.logprobs import Logprob, PendingLogprobs, compute_logprobs

PIECES = {0: b"a", 1: b"\xf0\x9f", 2: b"\xa6\x99", 3: b"<|end|>", 4: b" b"}


def test_logprob_is_the_log_softmax_of_the_raw_logits() -> None:
    logits = np.random.default_rng(0).standard_normal(5).astype(np.float32) * 4
    entry = compute_logprobs(logits, 2, 3, PIECES.__getitem__)
    shifted = logits.astype(np.float64) - logits.max()
    expected = shifted - np.log(np.exp(shifted).sum())
    assert entry.logprob == pytest.approx(expected[2], abs=1e-12)
    assert [t.logprob for t in entry.top_logprobs] == pytest.approx(sorted(expected, reverse=True)[:3], abs=1e-12)
    assert np.exp([t.logprob for t in compute_logprobs(logits, 0, 5, PIECES.__getitem__).top_logprobs]).sum() == \
        pytest.approx(1.0)


def test_top_logprobs_break_ties_by_token_id_and_stop_at_the_vocabulary() -> None:
    logits = np.array([1.0, 3.0, 3.0, 0.0, 3.0], dtype=np.float32)
    entry = compute_logprobs(logits, 0, 20, PIECES.__getitem__)
    assert [t.bytes for t in entry.top_logprobs] == [PIECES[i] for i in (1, 2, 4, 0, 3)]
    assert compute_logprobs(logits, 0, 0, PIECES.__getitem__).top_logprobs == []


def test_token_text_replaces_a_partial_character_and_bytes_keep_it() -> None:
    entry = compute_logprobs(np.zeros(5, np.float32), 1, 0, PIECES.__getitem__)
    assert entry.token == "\ufffd" and entry.bytes == b"\xf0\x9f"
    assert entry.to_json() == {"token": "\ufffd", "logprob": pytest.approx(-np.log(5)), "bytes": [0xF0, 0x9F]}


def _stream(tokens: list[int], stops: list[str]) -> list[tuple[str, list[bytes]]]:
    """Chunks as the decode thread sends them: text, and the pieces of the entries with it."""
    detok = StreamDetokenizer(stops)
    pending = PendingLogprobs()
    chunks = []
    for token in tokens:
        start = detok.n_decoded
        text = detok.push(PIECES[token])
        pending.add(Logprob("", 0.0, PIECES[token]), start, detok.n_decoded + int(detok.partial))
        entries = pending.take(detok.n_released, stopped=detok.stopped)
        if text or entries:
            chunks.append((text, [e.bytes for e in entries]))
        if detok.stopped:
            break
    else:
        tail = detok.finish()
        entries = pending.take_all()
        if tail or entries:
            chunks.append((tail, [e.bytes for e in entries]))
    return chunks


def test_a_character_split_across_tokens_carries_both_entries_with_its_chunk() -> None:
    chunks = _stream([0, 1, 2, 4], [])
    assert chunks == [("a", [b"a"]), ("🦙", [b"\xf0\x9f", b"\xa6\x99"]), (" b", [b" b"])]
    assert all(b"".join(pieces) == text.encode() for text, pieces in chunks)


def test_tokens_held_for_a_possible_stop_string_go_out_when_released() -> None:
    chunks = _stream([0, 3, 4], ["<|x"])
    assert "".join(text for text, _ in chunks) == "a<|end|> b"
    assert [p for _, pieces in chunks for p in pieces] == [b"a", b"<|end|>", b" b"]


def test_tokens_that_only_make_the_stop_string_are_dropped() -> None:
    # "a" + "<|end|>" + " b" with the stop string "d|> b": the stop begins inside "<|end|>"
    chunks = _stream([0, 3, 4], ["d|> b"])
    assert "".join(text for text, _ in chunks) == "a<|en"
    assert [p for _, pieces in chunks for p in pieces] == [b"a", b"<|end|>"]
    assert _stream([0, 3, 4], ["<|end|>"]) == [("a", [b"a"])]


def test_an_unfinished_character_at_the_end_goes_out_with_the_last_text() -> None:
    assert _stream([0, 1], []) == [("a", [b"a"]), ("\ufffd", [b"\xf0\x9f"])]
