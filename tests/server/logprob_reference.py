"""A NumPy reference for log-probabilities: the model's raw logits from `pyollama.llama`, one
fresh single-sequence context, teacher-forced along the tokens a server generated, and their
log-softmax over the full vocabulary (what Ollama reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pyollama.llama import Batch, Context, Model

N_BATCH = 512


def log_softmax(logits: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    values = logits.astype(np.float64)
    peak = values.max()
    return values - (peak + np.log(np.exp(values - peak).sum()))


def reference_logprobs(model: Model, prompt: Sequence[int], generated: Sequence[int]) -> list[np.ndarray[Any, Any]]:
    """The log-softmax rows that predicted each of `generated` after `prompt`: row i is the
    distribution the model gives after prompt + generated[:i]."""
    tokens = [*prompt, *generated[:-1]] if generated else list(prompt)
    n_ctx = max(256, len(tokens) + 8)
    ctx = Context(model, n_ctx=n_ctx, n_batch=N_BATCH, n_ubatch=N_BATCH, n_seq_max=1, n_threads=2)
    batch = Batch(N_BATCH, 1)
    wanted = set(range(len(prompt) - 1, len(tokens)))
    rows: list[np.ndarray[Any, Any]] = []
    for start in range(0, len(tokens), N_BATCH):
        batch.clear()
        chunk = tokens[start : start + N_BATCH]
        outputs = []
        for i, token in enumerate(chunk):
            out = start + i in wanted
            batch.add(token, start + i, 0, out)
            if out:
                outputs.append(i)
        assert ctx.decode(batch) == 0
        rows.extend(log_softmax(ctx.logits(i)) for i in outputs)
    return rows[: len(generated)]


def top(row: np.ndarray[Any, Any], n: int) -> list[int]:
    """The ids of the `n` largest values, largest first."""
    return [int(i) for i in np.argsort(-row, kind="stable")[:n]]


def greedy_reference(model: Model, prompt: Sequence[int], n: int) -> list[tuple[int, np.ndarray[Any, Any]]]:
    """Up to `n` greedy steps after `prompt` (stopping at an end-of-generation token, which is
    not included): each step's argmax token and the log-softmax row it was taken from."""
    eog = set(model.eog_tokens())
    ctx = Context(model, n_ctx=max(256, len(prompt) + n + 8), n_batch=N_BATCH, n_ubatch=N_BATCH, n_seq_max=1,
                  n_threads=2)
    batch = Batch(N_BATCH, 1)
    batch.add_sequence(list(prompt), 0, 0, True)
    assert ctx.decode(batch) == 0
    steps: list[tuple[int, np.ndarray[Any, Any]]] = []
    for pos in range(len(prompt), len(prompt) + n):
        row = log_softmax(ctx.logits(-1))
        token = int(np.argmax(row))
        if token in eog:
            break
        steps.append((token, row))
        batch.clear()
        batch.add(token, pos, 0, True)
        assert ctx.decode(batch) == 0
    return steps
