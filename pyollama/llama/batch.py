"""Batches of tokens: positions, sequence ids and output flags, capacity-checked."""

from __future__ import annotations

import pyollama._native as _native

Batch = _native.Batch
