"""Embeddings of a loaded model: inputs fitted to the context, packed several to a decode,
pooled by llama.cpp (the model's own pooling, or mean for generative models, as Ollama does).

Where the time goes (bench/bench_embed.py: all-MiniLM, 256 short sentences, 2 threads): nearly
all of it in llama.cpp's decode, little in the packing here. A decode's matrix products run
faster the more tokens it holds, while its attention spans every token of the decode (masked
to each input's own tokens), so that part grows with the square of the decode's tokens. A
decode therefore packs inputs up to N_TOKENS_PACK tokens, a measured middle; one longer input
(up to num_ctx tokens) goes alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pyollama.engine.types import TOO_LONG, EmbedResult
from pyollama.errors import BadRequestError
from pyollama.llama import Batch, Context, Model

# Tokens one decode packs when it holds several inputs (see the module docstring).
N_TOKENS_PACK = 256
# Inputs one decode may pack (sequences of the embedding context): short sentences of 4 tokens
# still fill N_TOKENS_PACK.
N_SEQ_EMBED = 64

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
            return EmbedResult(np.zeros((0, self.model.n_embd_out), dtype=np.float32), 0)
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
            # One unified KV buffer; a decode holds one input of up to num_ctx tokens, or several
            # short ones up to N_TOKENS_PACK (an encoder's batch may exceed n_ctx, a causal
            # model's is capped at it by llama.cpp). Both sizes are multiples of N_SEQ_EMBED:
            # llama.cpp reserves its graphs for n_batch tokens spread evenly over n_seq_max
            # sequences, and with mean pooling it aborts when they do not divide (num_ctx 300).
            self._ctx = self._make_context(
                _round_up(self.n_ctx, N_SEQ_EMBED),
                N_SEQ_EMBED,
                embeddings=True,
                pooling=pooling,
                n_batch=_round_up(max(self.n_ctx, N_TOKENS_PACK), N_SEQ_EMBED),
                unified=True,
            )
        return self._ctx


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def embed_batched(ctx: Context, model: Model, token_lists: list[list[int]]) -> npt.NDArray[np.float32]:
    """The pooled embedding of each input, one row each in input order. Inputs are packed in
    order into decodes of up to N_TOKENS_PACK tokens and n_seq_max sequences; an input longer
    than that goes alone (it fits n_batch: the embedder fits inputs to num_ctx)."""
    rows: list[npt.NDArray[np.float32]] = []
    n_batch, n_seq = ctx.n_batch, ctx.n_seq_max
    pack = min(N_TOKENS_PACK, n_batch)
    batch = Batch(n_batch, 1)
    encoder = model.has_encoder and not model.has_decoder
    i = 0
    while i < len(token_lists):
        batch.clear()
        n_members = 0
        while i < len(token_lists) and n_members < n_seq:
            toks = token_lists[i]
            if len(batch) + len(toks) > (pack if n_members else n_batch):
                break
            for pos, tok in enumerate(toks):
                batch.add(tok, pos, n_members, True)
            n_members += 1
            i += 1
        ctx.memory_clear(True)
        (ctx.encode if encoder else ctx.decode)(batch)
        rows.extend(ctx.embeddings_seq(seq) for seq in range(n_members))
    return np.stack(rows)
