"""Batches of tokens: positions, sequence ids and output flags, capacity-checked."""

from __future__ import annotations

from pyollama import _native

Batch = _native.Batch
