"""A tiny random-weight Llama GGUF that llama.cpp loads, decodes and quantizes, and the
greedy loop the native proof tests share.

The tokenizer is the SentencePiece vocabulary of llama.cpp's vocab-only
`ggml-vocab-llama-spm.gguf`, cut to its first `n_vocab` pieces: the specials, the 256
byte tokens and the most frequent merges form a complete vocabulary (any text falls
back to byte tokens), so the embedding matrices stay small. Widths default to
multiples of 256 so that K-quants (block 256) apply to every matrix instead of
llama.cpp falling back to another type.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from pyollama.llama import Batch, Context, Model, SamplerChain

VOCAB_SPM = (
    Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"
)

# general.file_type values (llama_ftype) for the float types we write directly.
_FILE_TYPES = {"F32": 0, "F16": 1}
# Scale of the random weights: small enough that activations stay in F16 range through the
# RMS norms, large enough that logits are not all equal (greedy argmax must not tie).
_WEIGHT_STD = 0.05


VocabFields = list[tuple[str, Any, gguf.GGUFValueType, gguf.GGUFValueType | None]]


def read_spm_vocab(n_vocab: int = 1024) -> VocabFields:
    """tokenizer.ggml.* keys of the SPM vocab, arrays cut to the first n_vocab entries (reading the
    32000-token file takes seconds: pass the result to several write_tiny_llama calls)."""
    reader = gguf.GGUFReader(VOCAB_SPM)
    n_source = len(reader.fields["tokenizer.ggml.tokens"].contents())
    if not 259 < n_vocab <= n_source:
        # 3 specials + 256 byte tokens are the minimum for a vocabulary that encodes any text.
        raise ValueError(f"n_vocab must be in (259, {n_source}]")
    out: VocabFields = []
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.ggml."):
            continue
        value = field.contents()
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            if len(value) == n_source:
                value = value[:n_vocab]
            out.append((key, value, gguf.GGUFValueType.ARRAY, field.types[1]))
        else:
            out.append((key, value, field.types[0], None))
    return out


def tiny_llama_tensors(
    *, n_vocab: int, n_embd: int, n_ff: int, n_layer: int, n_head: int, n_head_kv: int, seed: int
) -> dict[str, np.ndarray[Any, Any]]:
    """Float32 weights in numpy shape (rows, cols): GGUF stores dims reversed, so a numpy
    (n_vocab, n_embd) matrix is llama.cpp's {n_embd, n_vocab} tensor."""
    rng = np.random.default_rng(seed)
    head_dim = n_embd // n_head

    def mat(rows: int, cols: int) -> np.ndarray[Any, Any]:
        return (rng.standard_normal((rows, cols)) * _WEIGHT_STD).astype(np.float32)

    tensors = {
        "token_embd.weight": mat(n_vocab, n_embd),
        "output_norm.weight": np.ones(n_embd, np.float32),
        "output.weight": mat(n_vocab, n_embd),
    }
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors[p + "attn_norm.weight"] = np.ones(n_embd, np.float32)
        tensors[p + "attn_q.weight"] = mat(n_head * head_dim, n_embd)
        tensors[p + "attn_k.weight"] = mat(n_head_kv * head_dim, n_embd)
        tensors[p + "attn_v.weight"] = mat(n_head_kv * head_dim, n_embd)
        tensors[p + "attn_output.weight"] = mat(n_embd, n_head * head_dim)
        tensors[p + "ffn_norm.weight"] = np.ones(n_embd, np.float32)
        tensors[p + "ffn_gate.weight"] = mat(n_ff, n_embd)
        tensors[p + "ffn_up.weight"] = mat(n_ff, n_embd)
        tensors[p + "ffn_down.weight"] = mat(n_embd, n_ff)
    return tensors


def write_tiny_llama(
    path: str | os.PathLike[str],
    *,
    dtype: str = "F32",
    n_layer: int = 2,
    n_embd: int = 256,
    n_ff: int = 512,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_vocab: int = 1024,
    n_ctx_train: int = 512,
    seed: int = 0,
    vocab: VocabFields | None = None,
) -> Path:
    """Write a random-weight llama-architecture GGUF at `path` (atomically) and return it.

    dtype is F32 or F16 for the matrices; norms stay F32 as llama.cpp's converter writes them.
    `vocab` (from read_spm_vocab(n_vocab)) saves re-reading the vocabulary file.
    """
    if dtype not in _FILE_TYPES:
        raise ValueError(f"dtype must be one of {sorted(_FILE_TYPES)}")
    if n_embd % 32 or n_ff % 32:
        raise ValueError("n_embd and n_ff must be multiples of 32 (the quantization block)")
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_head must divide n_embd and n_head_kv must divide n_head")
    out = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, "llama")
        writer.add_name("tiny-llama")
        writer.add_context_length(n_ctx_train)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(n_ff)
        writer.add_block_count(n_layer)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_rope_dimension_count(n_embd // n_head)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(n_vocab)
        writer.add_file_type(_FILE_TYPES[dtype])
        for key, value, vtype, sub_type in vocab if vocab is not None else read_spm_vocab(n_vocab):
            writer.add_key_value(key, value, vtype, sub_type=sub_type)
        tensors = tiny_llama_tensors(
            n_vocab=n_vocab,
            n_embd=n_embd,
            n_ff=n_ff,
            n_layer=n_layer,
            n_head=n_head,
            n_head_kv=n_head_kv,
            seed=seed,
        )
        for name, data in tensors.items():
            writer.add_tensor(name, data if data.ndim == 1 or dtype == "F32" else data.astype(np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def tiny_llama_cached(tmp_path_factory: pytest.TempPathFactory, dtype: str = "F32") -> Path:
    """The default tiny model of `dtype`, written once per pytest session and shared by every module
    (session fixtures are per module when defined in test files); both float variants are written
    together so that the vocabulary is read once."""
    base = tmp_path_factory.getbasetemp()
    paths = {name: base / f"tiny-llama-{name.lower()}.gguf" for name in _FILE_TYPES}
    if not all(path.exists() for path in paths.values()):
        vocab = read_spm_vocab()
        for name, path in paths.items():
            write_tiny_llama(path, dtype=name, vocab=vocab)
    return paths[dtype]


def greedy_generate(
    model: Model, prompt: list[int], n_predict: int, *, n_ctx: int = 0, n_batch: int = 0, n_threads: int = 1
) -> list[int]:
    """Greedy tokens after `prompt`, the loop of llama.cpp's examples/simple: decode the prompt in one
    batch, then one token at a time; stop after n_predict tokens or at an end-of-generation token
    (which is not returned). n_ctx/n_batch 0 size the context to fit prompt and answer."""
    ctx = Context(
        model,
        n_ctx=n_ctx or len(prompt) + n_predict,
        n_batch=n_batch or len(prompt),
        n_threads=n_threads,
    )
    chain = SamplerChain()
    chain.add_greedy()
    batch = Batch(len(prompt))
    batch.add_sequence(prompt, 0)
    out: list[int] = []
    n_pos = 0
    while len(out) < n_predict:
        if ctx.decode(batch) != 0:
            raise RuntimeError("decode found no KV slot")
        n_pos += len(batch)
        token = chain.sample(ctx, -1)
        if model.is_eog(token):
            break
        out.append(token)
        batch.clear()
        batch.add(token, n_pos, 0, True)
    return out
