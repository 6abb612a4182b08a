"""Streaming detokenizer: token pieces in, whole UTF-8 characters out, stop strings held back.

Token pieces can end in the middle of a multi-byte character, and a stop string
can span several tokens. `StreamDetokenizer.push` returns only text that can
no longer become part of a stop string and never splits a character; once a
stop string is complete, everything from its start on is dropped.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class StreamDetokenizer:
    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in stops if s]
        self._held = ""  # decoded text not yet released (a possible stop-string prefix)
        self.stopped = False
        # characters decoded and characters released so far (log-probabilities follow them)
        self.n_decoded = 0
        self.n_released = 0

    def push(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now safe to send."""
        if self.stopped:
            return ""
        text = self._decoder.decode(piece)
        self.n_decoded += len(text)
        self._held += text
        return self._release(final=False)

    @property
    def partial(self) -> bool:
        """The last piece ended inside a multi-byte character."""
        return bool(self._decoder.getstate()[0])

    def finish(self) -> str:
        """End of generation: flush whatever is held (an unfinished character becomes U+FFFD)."""
        if self.stopped:
            return ""
        text = self._decoder.decode(b"", final=True)
        self.n_decoded += len(text)
        self._held += text
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        out = self._cut(final=final)
        self.n_released += len(out)
        return out

    def _cut(self, *, final: bool) -> str:
        text = self._held
        if not self._stops:
            self._held = ""
            return text
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        if final:
            self._held = ""
            return text
        keep = self._partial_stop_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
