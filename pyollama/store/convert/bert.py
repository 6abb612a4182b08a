"""BERT encoders (all-MiniLM, bge, ...) -> GGUF `bert`, for embeddings.

The pooling head and masked-LM head are dropped (llama.cpp pools itself, by
the `bert.pooling_type` taken from the sentence-transformers Pooling module);
the vocabulary becomes llama.cpp's phantom-space WordPiece.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from pyollama.store.convert.safetensors import SafetensorsModel
from pyollama.store.convert.tokenizer import load_wordpiece_vocab
from pyollama.store.convert.writer import (
    HParams,
    ModelPlan,
    check_shape,
    map_tensors,
    require_tensors,
    sentence_transformers_pooling,
)

ARCHITECTURES = frozenset({"BertModel", "BertForMaskedLM"})

# Heads llama.cpp does not use for embeddings, and HF's constant position-id buffer.
_DROPPED_PREFIXES = ("pooler.", "cls.predictions.", "cls.seq_relationship.")
_DROPPED_NAMES = frozenset({"embeddings.position_ids"})

_REQUIRED_GLOBAL = ("token_embd.weight", "position_embd.weight", "token_embd_norm.weight")
_REQUIRED_PER_LAYER = (
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "attn_output_norm.weight",
    "ffn_up.weight",
    "ffn_down.weight",
    "layer_output_norm.weight",
)


def _lookup_name(name: str) -> str | None:
    """The name gguf's BERT map knows for a checkpoint tensor, or None for tensors to drop."""
    name = name.removeprefix("bert.")
    # Old TF-converted checkpoints call LayerNorm parameters gamma/beta.
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    if name in _DROPPED_NAMES or name.startswith(_DROPPED_PREFIXES):
        return None
    return name


def plan_bert(src_dir: Path, hparams: HParams, st: SafetensorsModel) -> ModelPlan:
    arch = gguf.MODEL_ARCH.BERT
    n_layers = hparams.integer(["num_hidden_layers", "n_layers"])
    n_vocab = hparams.integer(["vocab_size"])
    n_embd = hparams.integer(["hidden_size"])
    n_ff = hparams.integer(["intermediate_size"])
    n_head = hparams.integer(["num_attention_heads"])
    n_ctx = hparams.integer(["max_position_embeddings"], default=512)
    type_vocab_size = hparams.integer(["type_vocab_size"], default=1)
    norm_eps = hparams.number(["layer_norm_eps"], default=1e-12)
    pooling = sentence_transformers_pooling(src_dir)

    names = [(n, lookup) for n in st.names() if (lookup := _lookup_name(n)) is not None]
    tensors = map_tensors(st, arch, n_layers, names)
    require_tensors(
        tensors,
        list(_REQUIRED_GLOBAL) + [f"blk.{i}.{t}" for i in range(n_layers) for t in _REQUIRED_PER_LAYER],
    )
    check_shape(tensors, "token_embd.weight", (n_vocab, n_embd))
    vocab = load_wordpiece_vocab(src_dir, n_vocab, type_vocab_size)

    def write_hparams(writer: gguf.GGUFWriter) -> None:
        writer.add_block_count(n_layers)
        writer.add_context_length(n_ctx)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        assert norm_eps is not None
        writer.add_layer_norm_eps(norm_eps)
        writer.add_causal_attention(False)
        if pooling is not None:
            writer.add_pooling_type(pooling)

    return ModelPlan(arch=arch, vocab=vocab, write_hparams=write_hparams, tensors=tensors)
