"""Converted GGUFs run in llama.cpp: same token ids as HF, embeddings and logits as a numpy reference.

References are computed here from the same safetensors (numpy forward passes)
or come from HF tokenizers (ids recorded from `tokenizers` for all-MiniLM, and
llama.cpp's `ggml-vocab-*.gguf.out` files for the decoder vocabularies).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from convert_helpers import (
    BYTE_LEVEL_NO_REGEX,
    bpe_tokenizer_json,
    llama_reference_logits,
    llama_weights,
    sentencepiece_model,
    tiny_config,
    vocab_cases,
    vocab_gguf,
    write_checkpoint_dir,
)

from pyollama.llama import Batch, Context, Model
from pyollama.store.convert import ConvertResult, convert_safetensors_dir
from pyollama.store.convert.safetensors import SafetensorsModel
from pyollama.store.convert.tokenizer import LLAMA3_SPLIT, QWEN2_SPLIT

# Ids from the HF `tokenizers` library (tokenizers 0.23.3) on all-MiniLM-L6-v2's tokenizer.json.
MINILM_REFERENCE_IDS = {
    "Hello, world!": [101, 7592, 1010, 2088, 999, 102],
    "The quick brown fox jumps over the lazy dog.": [
        101,
        1996,
        4248,
        2829,
        4419,
        14523,
        2058,
        1996,
        13971,
        3899,
        1012,
        102,
    ],
    "Ünïcödé café naïve résumé": [101, 27260, 7668, 15743, 13746, 102],
    "don't stop-believing 12345 $%^ 東京 tokenization": [
        101,
        2123,
        1005,
        1056,
        2644,
        1011,
        8929,
        13138,
        19961,
        1002,
        1003,
        1034,
        1879,
        1755,
        19204,
        3989,
        102,
    ],
    "  multiple   spaces\tand\nnewlines  ": [101, 3674, 7258, 1998, 2047, 12735, 102],
}


def _erf(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.vectorize(math.erf)(x)


def minilm_reference(st: SafetensorsModel, ids: list[int]) -> np.ndarray[Any, Any]:
    """sentence-transformers all-MiniLM-L6-v2 in numpy: BERT encoder, mean pooling, L2 normalisation."""
    w = {
        name: st.load_float32(name).astype(np.float64) for name in st.names() if st.info(name).dtype == "F32"
    }

    def norm(x: np.ndarray[Any, Any], prefix: str) -> np.ndarray[Any, Any]:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[prefix + ".weight"] + w[prefix + ".bias"]

    n, n_head = len(ids), 12
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for i in range(6):
        p = f"encoder.layer.{i}."

        def lin(h: np.ndarray[Any, Any], name: str, p: str = p) -> np.ndarray[Any, Any]:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (
            lin(x, f"attention.self.{t}").reshape(n, n_head, -1).transpose(1, 0, 2)
            for t in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = norm(x + lin(attn, "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, "intermediate.dense")
        x = norm(x + lin(0.5 * h * (1 + _erf(h / math.sqrt(2))), "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_minilm_tokenization_matches_hf_tokenizer(minilm_gguf: ConvertResult) -> None:
    model = Model(minilm_gguf.path, vocab_only=True)
    for text, expected in MINILM_REFERENCE_IDS.items():
        assert model.tokenize(text, add_special=True) == expected, text


def test_minilm_embeddings_match_numpy_reference(minilm_gguf: ConvertResult, minilm_dir: Path) -> None:
    model = Model(minilm_gguf.path)
    ctx = Context(model, n_ctx=512, embeddings=True, pooling="mean")
    st = SafetensorsModel.open_dir(minilm_dir)
    for text in ("Hello, world!", "The quick brown fox jumps over the lazy dog."):
        ids = model.tokenize(text, add_special=True)
        batch = Batch(len(ids), 1)
        for pos, token in enumerate(ids):
            batch.add(token, pos, 0, True)
        ctx.memory_clear()
        assert ctx.encode(batch) == 0
        got = ctx.embeddings_seq(0)
        got = got / np.linalg.norm(got)
        assert float(got @ minilm_reference(st, ids)) > 0.99, text


def test_llama_tokenization_matches_original_gguf(
    tiny_smollm: tuple[Path, Path], smollm2_gguf_path: Path
) -> None:
    _src, out = tiny_smollm
    converted = Model(out, vocab_only=True)
    original = Model(smollm2_gguf_path, vocab_only=True)
    for text in (
        "Hello world",
        " 12345 numbers",
        "<|im_start|>user\nhi<|im_end|>\n",
        "Ünïcödé 東京 🦙 don't\n\n  x",
    ):
        assert converted.tokenize(text, True, True) == original.tokenize(text, True, True), text


def test_llama_logits_match_numpy_reference(tiny_smollm: tuple[Path, Path]) -> None:
    src, out = tiny_smollm
    model = Model(out)
    ids = model.tokenize("The quick brown fox jumps", add_special=False)
    assert len(ids) >= 4  # several positions, so a wrong q/k rope layout would show
    ctx = Context(model, n_ctx=64)
    batch = Batch(len(ids), 1)
    for pos, token in enumerate(ids):
        batch.add(token, pos, 0, pos == len(ids) - 1)
    assert ctx.decode(batch) == 0
    got = ctx.logits(-1)
    expected = llama_reference_logits(src, ids)
    assert np.abs(got - expected).max() < 0.02 * np.abs(expected).max()


def _tiny_vocab_model(root: Path, architecture: str, n_vocab: int, files: dict[str, Any]) -> Path:
    """Convert a 1-layer model with the given tokenizer files; only its vocabulary matters here."""
    config = tiny_config(
        architecture,
        n_vocab,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    weights = llama_weights(
        np.random.default_rng(0), config, tied=True, qkv_bias=architecture == "Qwen2ForCausalLM"
    )
    src = write_checkpoint_dir(root / "src", config, weights, files, "F16")
    out = root / "model.gguf"
    convert_safetensors_dir(src, out)
    return out


def _assert_vocab_cases(out: Path, vocab: str) -> None:
    model = Model(out, vocab_only=True)
    cases = vocab_cases(vocab)
    assert len(cases) > 30
    for text, expected in cases:
        assert model.tokenize(text, add_special=False, parse_special=False) == expected, repr(text)


@pytest.mark.parametrize(
    ("vocab", "architecture", "split"),
    [("llama-bpe", "LlamaForCausalLM", LLAMA3_SPLIT), ("qwen2", "Qwen2ForCausalLM", QWEN2_SPLIT)],
    ids=["llama-bpe", "qwen2"],
)
def test_bpe_tokenization_matches_hf_reference(
    tmp_path: Path, vocab: str, architecture: str, split: str
) -> None:
    meta = vocab_gguf(vocab)
    pre = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            BYTE_LEVEL_NO_REGEX,
        ],
    }
    out = _tiny_vocab_model(
        tmp_path,
        architecture,
        len(meta["tokenizer.ggml.tokens"]),
        {"tokenizer.json": bpe_tokenizer_json(meta, pre)},
    )
    assert Model(out, vocab_only=True).meta("tokenizer.ggml.pre") == meta["tokenizer.ggml.pre"]
    _assert_vocab_cases(out, vocab)


def _spm_pieces() -> list[tuple[str, float, int]]:
    meta = vocab_gguf("llama-spm")
    return list(
        zip(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"], meta["tokenizer.ggml.token_type"])
    )


SPM_TOKENIZER_CONFIG = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
}


def test_sentencepiece_model_tokenization_matches_hf_reference(tmp_path: Path) -> None:
    pieces = _spm_pieces()
    out = _tiny_vocab_model(
        tmp_path,
        "LlamaForCausalLM",
        len(pieces),
        {
            "tokenizer.model": sentencepiece_model(pieces),
            "tokenizer_config.json": SPM_TOKENIZER_CONFIG,
        },
    )
    model = Model(out, vocab_only=True)
    assert (model.token_bos, model.token_eos, model.add_bos) == (1, 2, True)
    _assert_vocab_cases(out, "llama-spm")


def test_sentencepiece_tokenizer_json_tokenization_matches_hf_reference(tmp_path: Path) -> None:
    """A byte-fallback BPE tokenizer.json as HF derives it from a SentencePiece model (Llama 2 style)."""
    pieces = _spm_pieces()
    vocab = {piece: i for i, (piece, _score, _kind) in enumerate(pieces)}
    # HF's SentencePieceExtractor: every split of a piece into two pieces, best-scored merged piece first.
    merges: list[tuple[float, int, int, str, str]] = []
    for piece, score, kind in pieces:
        if kind != 1:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append((-score, vocab[left], vocab[right], left, right))
    merges.sort()
    tokenizer = {
        "version": "1.0",
        "added_tokens": [
            {"id": i, "content": p, "special": True} for i, (p, _s, k) in enumerate(pieces) if k == 3
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
        },
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {
            "type": "BPE",
            "byte_fallback": True,
            "unk_token": "<unk>",
            "fuse_unk": True,
            "vocab": vocab,
            "merges": [f"{left} {right}" for *_ids, left, right in merges],
        },
    }
    out = _tiny_vocab_model(
        tmp_path,
        "LlamaForCausalLM",
        len(pieces),
        {
            "tokenizer.json": tokenizer,
            "tokenizer_config.json": SPM_TOKENIZER_CONFIG,
        },
    )
    model = Model(out, vocab_only=True)
    assert model.meta("tokenizer.ggml.model") == "llama"
    assert model.add_bos is True
    _assert_vocab_cases(out, "llama-spm")
