"""Contexts: decode/encode batches, read logits and embeddings, manage KV memory.

The native methods hold a per-context lock and release the GIL during decode;
still, a context is meant to be driven by one thread (the engine's decode thread).
"""

from __future__ import annotations

from pyollama import _native

Context = _native.Context
