"""Speculative decoding: draft tokens proposed cheaply, then checked by the model in one batch.

A generating sequence that has drafts puts its last sampled token and the drafts into the step's
batch with logits for each; the runner then samples position by position with the request's own
sampler and keeps going while the sampled token equals the draft (runner.Runner._verify). Every
token is still sampled from the model's logits for the prefix actually generated, so the output
is the one decoding token by token gives (greedy: token for token; seeded: the same draws), only
fewer decodes pay for it when drafts are right.

Two sources of drafts:
- `NgramDrafter` (prompt lookup): the tokens that followed the latest earlier occurrence of the
  sequence's last few tokens, as many as the match is long (NGRAM_TRUST). No second model;
  it wins where output quotes its input (code edits, summaries that quote, JSON that repeats
  keys). Opt-in per request or model (`draft_num_predict`).
- `DraftModel`: a smaller model that shares the vocabulary (Ollama's draft layer,
  `application/vnd.ollama.image.draft`), decoded greedily for each sequence in its own context;
  it stops drafting where its top token's probability falls under `P_MIN` (llama.cpp's default).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from pyollama.gguf import read_gguf_info
from pyollama.gguf.vocab import draft_vocab_difference
from pyollama.llama import Batch, Context, Model

log = logging.getLogger("pyollama.speculative")

# Drafts per step at most (llama-server's --draft-max default is 16).
MAX_DRAFT = 16
# A draft model's token is proposed only when it is at least this sure (llama-server's --draft-p-min).
P_MIN = 0.75
# Prompt lookup n-gram lengths, longest tried first; shorter matches propose too much noise.
NGRAM_MAX = 4
NGRAM_MIN = 2
# A prompt-lookup match of L tokens proposes L - NGRAM_TRUST drafts (at most what was asked):
# a chance 2- or 3-gram proposes nothing, a copy that has run for a while proposes many. A draft
# that is wrong costs most of a decode where checking k tokens costs nearly k decodes (x86 CPUs
# on small models), so drafts are proposed only where output is copying its input.
NGRAM_TRUST = 3


class NgramDrafter:
    """Prompt lookup for one sequence: an index from each n-gram of its history (n in
    NGRAM_MIN..NGRAM_MAX) to where its latest occurrence ends, kept up to date as the history
    grows; rebuilt when the history is not an extension of the one it has seen."""

    def __init__(self) -> None:
        self._tokens: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}

    def draft(self, history: Sequence[int], k: int) -> list[int]:
        """The tokens that followed the latest earlier occurrence of the longest suffix of
        `history` (at least NGRAM_MIN tokens) seen before, as many as that occurrence matches
        the history's end beyond NGRAM_TRUST tokens and at most `k`; [] when none matches."""
        self._sync(history)
        tokens = self._tokens
        n_tok = len(tokens)
        for n in range(min(NGRAM_MAX, n_tok - 1), NGRAM_MIN - 1, -1):
            end = self._index.get(tuple(tokens[n_tok - n :]))
            if end is not None:
                count = min(k, self._match_length(end, k + NGRAM_TRUST) - NGRAM_TRUST)
                return tokens[end : end + count] if count > 0 else []
        return []

    def _match_length(self, end: int, most: int) -> int:
        """How many tokens before `end` equal the history's last ones (at most `most`)."""
        tokens, last = self._tokens, len(self._tokens) - 1
        length = 0
        while length < most and end - 1 - length >= 0 and tokens[end - 1 - length] == tokens[last - length]:
            length += 1
        return length

    def _sync(self, history: Sequence[int]) -> None:
        seen = len(self._tokens)
        if seen > len(history) or list(history[:seen]) != self._tokens:
            self._tokens, self._index, seen = [], {}, 0
        self._tokens.extend(history[seen:])
        # index the n-grams that end where a following token exists (end <= len - 1), so the
        # suffix being looked up never finds itself
        tokens, index = self._tokens, self._index
        for end in range(max(1, seen - 1), len(tokens)):
            for n in range(NGRAM_MIN, NGRAM_MAX + 1):
                if end >= n:
                    index[tuple(tokens[end - n : end])] = end


class DraftModel:
    """A draft model with one context holding a sequence per runner slot (same seq ids). Only
    the decode thread uses it. `draft` brings each asked sequence's KV up to the tokens given
    (evaluating what it lacks, dropping what it no longer shares) and decodes drafts greedily,
    all sequences in one batch per step."""

    def __init__(self, model: Model, ctx: Context, n_vocab: int) -> None:
        self.model = model
        self.ctx = ctx
        self.n_vocab = n_vocab  # the model's: a draft token past it ends the draft
        self.n_batch = ctx.n_batch
        self._batch = Batch(self.n_batch, 1)
        self._cache: dict[int, list[int]] = {}

    @property
    def size(self) -> int:
        return int(self.model.size)

    def forget(self, seq_id: int) -> None:
        self._cache.pop(seq_id, None)
        self.ctx.seq_rm(seq_id, -1, -1)

    def draft(self, wanted: Mapping[int, tuple[Sequence[int], int]]) -> dict[int, list[int]]:
        """For each seq id: (the sequence's tokens so far, at most how many drafts) -> drafts."""
        tops = self._catch_up({seq: history for seq, (history, _) in wanted.items()})
        drafts: dict[int, list[int]] = {seq: [] for seq in wanted}
        while tops:
            batch = self._batch
            batch.clear()
            proposing: dict[int, int] = {}
            for seq, (tok, p) in tops.items():
                if p < P_MIN or tok >= self.n_vocab:
                    continue
                drafts[seq].append(tok)
                if len(drafts[seq]) >= wanted[seq][1]:
                    continue
                cache = self._cache[seq]
                proposing[seq] = len(batch)
                batch.add(tok, len(cache), seq, True)
                cache.append(tok)
            if not proposing or self.ctx.decode(batch) != 0:
                break
            tops = {seq: _top(self.ctx.logits(i)) for seq, i in proposing.items()}
        return drafts

    def _catch_up(self, histories: Mapping[int, Sequence[int]]) -> dict[int, tuple[int, float]]:
        """Evaluate what each sequence lacks; each one's top next token and its probability."""
        pending: dict[int, list[int]] = {}
        for seq, history in histories.items():
            cache = self._cache.setdefault(seq, [])
            n_keep = _common_prefix(cache, history)
            n_keep = min(n_keep, len(history) - 1)  # the last token is evaluated for its logits
            if not self.ctx.seq_rm(seq, n_keep, -1):
                n_keep = 0
                self.ctx.seq_rm(seq, -1, -1)
            del cache[n_keep:]
            pending[seq] = list(history[n_keep:])
        tops: dict[int, tuple[int, float]] = {}
        while any(pending.values()):
            batch = self._batch
            batch.clear()
            budget = self.n_batch
            done: dict[int, int] = {}
            for seq, rest in pending.items():
                if not rest or budget <= 0:
                    continue
                chunk = rest[:budget]
                del rest[: len(chunk)]
                cache = self._cache[seq]
                batch.add_sequence(chunk, len(cache), seq, not rest)
                cache.extend(chunk)
                budget -= len(chunk)
                if not rest:
                    done[seq] = len(batch) - 1
            if self.ctx.decode(batch) != 0:
                log.warning("draft model decode failed; no drafts this step")
                for seq in pending:
                    self.forget(seq)
                return {}
            # read now: the next decode overwrites these logits
            tops.update({seq: _top(self.ctx.logits(i)) for seq, i in done.items()})
        return tops


def _top(logits: np.ndarray) -> tuple[int, float]:
    """The most likely token and its probability under softmax."""
    i = int(np.argmax(logits))
    top = logits[i]
    return i, float(1.0 / np.sum(np.exp(logits - top)))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def compatible(model_path: str, draft_path: str) -> str | None:
    """Why the draft model cannot draft for the model (pyollama.gguf.vocab: llama.cpp's rule, from
    the GGUF headers), or None when it can."""
    return draft_vocab_difference(read_gguf_info(model_path), read_gguf_info(draft_path))
