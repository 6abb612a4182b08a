"""Llama-family decoders (Llama, SmolLM, Mistral, Qwen2) -> GGUF `llama` / `qwen2`.

Two things differ from a plain rename. HF stores Llama's q/k projections with
the rotary halves split (rotate_half), while llama.cpp's `llama` rope rotates
adjacent pairs, so q/k rows are interleaved back per head. Qwen2 uses the
NeoX-style rope in llama.cpp as well as in HF, so its rows stay as they are.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pyollama.store.convert.errors import ConvertError
from pyollama.store.convert.safetensors import SafetensorsModel
from pyollama.store.convert.tokenizer import load_causal_vocab
from pyollama.store.convert.writer import (
    HParams,
    ModelPlan,
    PlannedTensor,
    check_shape,
    map_tensors,
    require_tensors,
    sentence_transformers_pooling,
)

ARCHITECTURES: dict[str, gguf.MODEL_ARCH] = {
    "LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "LLaMAForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "MistralForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2,
}

# Buffers some checkpoints carry that are recomputed at run time.
_DROPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")

_REQUIRED_PER_LAYER = (
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
)


def rope_interleave(data: np.ndarray[Any, Any], n_head: int) -> np.ndarray[Any, Any]:
    """Reorder q/k rows per head from HF's [first halves | second halves] to adjacent rotary pairs.

    Within each head of `d` rows, row `i` of the first half and row `i` of the
    second half rotate together; llama.cpp's normal rope wants them at rows 2i and
    2i+1. Works for weights (rows x cols) and biases (rows).
    """
    rows = data.shape[0]
    if rows % (2 * n_head):
        raise ConvertError(f"cannot split {rows} rows into {n_head} heads of rotary pairs")
    half = rows // n_head // 2
    return data.reshape(n_head, 2, half, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def llama3_rope_factors(
    rope: dict[str, Any], head_dim: int, theta: float
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Per-frequency divisors of Llama 3.1's rope scaling (llama.cpp reads them as `rope_freqs`)."""
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * math.pi / freqs
    # Long wavelengths are slowed by `factor`, short ones kept; those between blend linearly in 1/wavelen.
    smooth = (old_ctx / wavelen - low) / (high - low) if high != low else np.zeros_like(wavelen)
    blended = 1.0 / ((1 - smooth) / factor + smooth)
    out = np.where(wavelen < old_ctx / high, 1.0, np.where(wavelen > old_ctx / low, factor, blended))
    return out.astype(np.float32)


def plan_llama(src_dir: Path, hparams: HParams, st: SafetensorsModel, architecture: str) -> ModelPlan:
    arch = ARCHITECTURES[architecture]
    n_layers = hparams.integer(["num_hidden_layers", "n_layers"])
    n_vocab = hparams.integer(["vocab_size"])
    n_embd = hparams.integer(["hidden_size"])
    n_ff = hparams.integer(["intermediate_size"])
    n_head = hparams.integer(["num_attention_heads"])
    n_head_kv = hparams.optional_int(["num_key_value_heads"])
    n_ctx = hparams.optional_int(["max_position_embeddings"])
    head_dim = hparams.optional_int(["head_dim"])
    rope_dim = head_dim if head_dim is not None else n_embd // n_head
    rms_eps = hparams.number(["rms_norm_eps"], default=1e-6)
    rope = hparams.get("rope_parameters") or hparams.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise ConvertError("config.json: rope_scaling must be an object")
    rope_theta = hparams.number(
        ["rope_theta", "rotary_emb_base"], default=_float_or_none(rope.get("rope_theta"))
    )
    rope_type = rope.get("rope_type", rope.get("type"))
    pooling = sentence_transformers_pooling(src_dir) if arch == gguf.MODEL_ARCH.QWEN2 else None

    def transform(target: str, source: str, data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if ".attn_q." in target:
            return rope_interleave(data, n_head)
        if ".attn_k." in target:
            return rope_interleave(data, n_head_kv or n_head)
        return data

    names = [(n, n) for n in st.names() if not n.endswith(_DROPPED_SUFFIXES)]
    tensors = map_tensors(st, arch, n_layers, names, transform if arch == gguf.MODEL_ARCH.LLAMA else None)
    require_tensors(
        tensors,
        ["token_embd.weight", "output_norm.weight"]
        + [f"blk.{i}.{t}" for i in range(n_layers) for t in _REQUIRED_PER_LAYER],
    )
    check_shape(tensors, "token_embd.weight", (n_vocab, n_embd))
    check_shape(tensors, "output.weight", (n_vocab, n_embd))
    for i in range(n_layers):
        check_shape(tensors, f"blk.{i}.attn_q.weight", (n_head * rope_dim, n_embd))
        check_shape(tensors, f"blk.{i}.attn_k.weight", ((n_head_kv or n_head) * rope_dim, n_embd))

    if rope_type in ("llama3", "Llama3"):
        factors = llama3_rope_factors(rope, rope_dim, rope_theta or 10000.0)
        tensors.append(PlannedTensor("rope_freqs.weight", factors.shape, lambda: factors))
    elif rope_type not in (None, "default", "linear", "yarn"):
        raise ConvertError(f"unsupported rope scaling type {rope_type!r}")

    vocab = load_causal_vocab(src_dir, n_vocab)

    def write_hparams(writer: gguf.GGUFWriter) -> None:
        writer.add_block_count(n_layers)
        if n_ctx is not None:
            writer.add_context_length(n_ctx)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(n_ff)
        writer.add_head_count(n_head)
        if n_head_kv is not None:
            writer.add_head_count_kv(n_head_kv)
        _write_rope_scaling(writer, rope, rope_type)
        if rope_theta is not None:
            writer.add_rope_freq_base(rope_theta)
        assert rms_eps is not None
        writer.add_layer_norm_rms_eps(rms_eps)
        if head_dim is not None:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        if hparams.get("is_causal") is False:
            writer.add_causal_attention(False)
        if pooling is not None:
            writer.add_pooling_type(pooling)
        if arch == gguf.MODEL_ARCH.LLAMA:
            writer.add_vocab_size(n_vocab)
            writer.add_rope_dimension_count(rope_dim)

    return ModelPlan(arch=arch, vocab=vocab, write_hparams=write_hparams, tensors=tensors)


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _write_rope_scaling(writer: gguf.GGUFWriter, rope: dict[str, Any], rope_type: Any) -> None:
    factor = _float_or_none(rope.get("factor"))
    if factor is None:
        return
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(factor)
    elif rope_type == "yarn":
        orig_ctx = rope.get("original_max_position_embeddings")
        if not isinstance(orig_ctx, int):
            raise ConvertError("config.json: yarn rope scaling needs original_max_position_embeddings")
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(factor)
        writer.add_rope_scaling_orig_ctx_len(orig_ctx)
        for key, add in (
            ("extrapolation_factor", writer.add_rope_scaling_yarn_ext_factor),
            ("beta_fast", writer.add_rope_scaling_yarn_beta_fast),
            ("beta_slow", writer.add_rope_scaling_yarn_beta_slow),
        ):
            if (value := _float_or_none(rope.get(key))) is not None:
                add(value)
        attn = _float_or_none(rope.get("attention_factor", rope.get("attn_factor")))
        if attn is not None:
            writer.add_rope_scaling_yarn_attn_factor(attn)
