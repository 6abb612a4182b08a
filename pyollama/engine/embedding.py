"""Embeddings of a loaded model: inputs fitted to the context, packed several to a decode,
pooled by llama.cpp (the model's own pooling, or mean for generative models, as Ollama does)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyollama.engine.types import TOO_LONG, EmbedResult
from pyollama.errors import BadRequestError
from pyollama.llama import Batch, Context, Model

# Inputs one decode may pack (sequences of the embedding context).
N_SEQ_EMBED = 8

# (n_ctx, n_seq, embeddings=, pooling=, n_batch=, unified=) -> a context of the runner's settings
MakeContext = Callable[..., Context]


class Embedder:
    """A model's embedding context, made on first use. Thread rules: `embed` from any thread;
    calls are serialised (they share the one context)."""

    def __init__(self, model: Model, n_ctx: int, make_context: MakeContext) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self._make_context = make_context
        self._lock = threading.Lock()
        self._ctx: Context | None = None

    def embed(self, inputs: list[str], *, truncate: bool = True) -> EmbedResult:
        if not inputs:
            return EmbedResult([], 0)
        token_lists = [self._fit(list(self.model.tokenize(text, True, False)), truncate) for text in inputs]
        with self._lock:
            vectors = embed_batched(self._context(), self.model, token_lists)
        return EmbedResult(vectors, sum(len(t) for t in token_lists))

    def _fit(self, tokens: list[int], truncate: bool) -> list[int]:
        limit = self.n_ctx
        if len(tokens) > limit:
            if not truncate:
                raise BadRequestError(TOO_LONG)
            keep_eos = self.model.add_eos and tokens and tokens[-1] == self.model.token_eos
            tokens = tokens[: limit - 1] + [tokens[-1]] if keep_eos else tokens[:limit]
        if not tokens:
            tokens = [self.model.token_bos or 0]
        return tokens

    def _context(self) -> Context:
        if self._ctx is None:
            pooling = "unspecified" if self.model.is_embedding else "mean"
            # one unified KV buffer: a decode packs up to N_SEQ_EMBED inputs whose tokens fit num_ctx together
            self._ctx = self._make_context(
                self.n_ctx, N_SEQ_EMBED, embeddings=True, pooling=pooling, n_batch=self.n_ctx, unified=True
            )
        return self._ctx


def embed_batched(ctx: Context, model: Model, token_lists: list[list[int]]) -> list[list[float]]:
    """Pack as many inputs as fit (by tokens and sequences) into each decode."""
    vectors: list[list[float]] = [[] for _ in token_lists]
    n_batch, n_seq = ctx.n_batch, ctx.n_seq_max
    batch = Batch(n_batch, 1)
    encoder = model.has_encoder and not model.has_decoder
    i = 0
    while i < len(token_lists):
        batch.clear()
        members: list[int] = []
        while i < len(token_lists) and len(members) < n_seq and len(batch) + len(token_lists[i]) <= n_batch:
            seq = len(members)
            toks = token_lists[i]
            for pos, tok in enumerate(toks):
                batch.add(tok, pos, seq, True)
            members.append(i)
            i += 1
        ctx.memory_clear(True)
        (ctx.encode if encoder else ctx.decode)(batch)
        for seq, idx in enumerate(members):
            vectors[idx] = ctx.embeddings_seq(seq).astype(float).tolist()
    return vectors
