"""pyollama.llama: the typed, safe low-level API over llama.cpp.

No call from Python can crash the interpreter with a bad argument: indices,
token ids, sequence ids and sizes are checked before reaching C. Long calls
(load, decode, quantize) release the GIL.
"""

from __future__ import annotations

import os

# Before ggml's CPU backend initializes (vendor/patches/0003): a token's logits do not depend on
# what else shares its batch (up to 32 rows), so greedy output is the same alone, under
# continuous batching and with speculative drafts. GGML_CPU_BATCH_INVARIANT=0 turns it off.
# Embedding-only runner processes run without it (engine/runner_process.py): they sample nothing,
# and llamafile's sgemm is faster on their small batches.
BATCH_INVARIANT_FROM_USER = "GGML_CPU_BATCH_INVARIANT" in os.environ
os.environ.setdefault("GGML_CPU_BATCH_INVARIANT", "1")

from pyollama.llama.batch import Batch
from pyollama.llama.chat import ChatParams, ChatTemplates
from pyollama.llama.context import Context
from pyollama.llama.model import LoraAdapter, Model
from pyollama.llama.quantize import QUANTIZE_TYPES, quantize
from pyollama.llama.sampler import Sampler, SamplerChain, SamplerSettings, json_schema_to_grammar
from pyollama.llama.system import init_backends, system_info

__all__ = [
    "QUANTIZE_TYPES",
    "Batch",
    "ChatParams",
    "ChatTemplates",
    "Context",
    "LoraAdapter",
    "Model",
    "Sampler",
    "SamplerChain",
    "SamplerSettings",
    "init_backends",
    "json_schema_to_grammar",
    "quantize",
    "system_info",
]
