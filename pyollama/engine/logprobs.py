"""Log-probabilities of generated tokens, computed as Ollama's runners compute them.

Ollama (`runner/common/logprob.go`, and llama-server's `n_probs` at its HEAD) takes the raw
logits of the decode, before any sampler touches them (no temperature, penalties, top-k/p
or grammar), and reports the log-softmax over the whole vocabulary: the sampled token's
value and, when asked, the `top_logprobs` most likely tokens. Token text is the token's piece
with special tokens rendered; `bytes` keeps the piece's raw bytes, since a piece may hold
only part of a multi-byte UTF-8 character.

`PendingLogprobs` ties each token's entry to the text the streaming detokenizer lets out, so
that every chunk carries the entries of the tokens whose text it completes (a stop string
drops the entries of the tokens that only made the stop string). Called only from the
decode thread, and only for requests that ask for log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass
class TokenLogprob:
    """One token and its log-probability (Ollama's api.TokenLogprob)."""

    token: str
    logprob: float
    bytes: bytes

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"token": self.token, "logprob": self.logprob}
        if self.bytes:
            out["bytes"] = list(self.bytes)
        return out


@dataclass
class Logprob(TokenLogprob):
    """A generated token with the most likely tokens at its position (Ollama's api.Logprob)."""

    top_logprobs: list[TokenLogprob] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        out = super().to_json()
        if self.top_logprobs:
            out["top_logprobs"] = [top.to_json() for top in self.top_logprobs]
        return out


def compute_logprobs(
    logits: npt.NDArray[np.float32], token: int, n_top: int, piece: Callable[[int], bytes]
) -> Logprob:
    """`token`'s log-softmax over the full vocabulary of `logits`, and the `n_top` most likely
    tokens (highest first; ties by lower id), with their pieces from `piece`."""
    values = logits.astype(np.float64)
    peak = float(values.max())
    log_norm = peak + float(np.log(np.exp(values - peak).sum()))
    own = piece(token)
    entry = Logprob(own.decode("utf-8", errors="replace"), float(values[token]) - log_norm, own)
    n_top = min(n_top, values.size)
    if n_top > 0:
        candidates = np.argpartition(-values, n_top - 1)[:n_top]
        order = sorted(candidates.tolist(), key=lambda i: (-values[i], i))
        for i in order:
            raw = piece(i)
            entry.top_logprobs.append(TokenLogprob(raw.decode("utf-8", errors="replace"), float(values[i]) - log_norm, raw))
    return entry


@dataclass
class PendingLogprobs:
    """The entries of tokens whose text the detokenizer has not let out yet.

    Positions count characters of the detokenizer's decoded text: a token spans [start, end),
    where `end` counts a character still incomplete at the token's last byte as if it were
    done, so that the token goes out with the chunk that finishes the character."""

    entries: list[tuple[Logprob, int, int]] = field(default_factory=list)

    def add(self, entry: Logprob, start: int, end: int) -> None:
        self.entries.append((entry, start, end))

    def take(self, n_released: int, *, stopped: bool) -> list[Logprob]:
        """The entries to send with text released up to character `n_released`: the tokens
        whose text is all out; after a stop string, every token that began before it (the
        rest only made the stop string, and are dropped)."""
        if stopped:
            out = [entry for entry, start, _ in self.entries if start < n_released]
            self.entries.clear()
            return out
        n = 0
        while n < len(self.entries) and self.entries[n][2] <= n_released:
            n += 1
        out = [entry for entry, _, _ in self.entries[:n]]
        del self.entries[:n]
        return out

    def take_all(self) -> list[Logprob]:
        out = [entry for entry, _, _ in self.entries]
        self.entries.clear()
        return out
