"""`pyollama.gguf.fim`: the store finds the fill-in-the-middle tokens llama.cpp finds, without llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyollama.gguf import FIM_ROLES, fim_token_ids, read_gguf_info
from pyollama.llama import Model

VOCABS = sorted((Path(__file__).resolve().parents[3] / "vendor" / "llama.cpp" / "models").glob("ggml-vocab-*.gguf"))
TOKENS = ["<s>", "</s>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<PRE>", "<SUF>", "<MID>"]


@pytest.mark.parametrize("path", VOCABS, ids=lambda p: p.stem.removeprefix("ggml-vocab-"))
def test_fim_tokens_are_the_ones_llama_cpp_finds(path: Path) -> None:
    native = Model(path, vocab_only=True).fim_tokens
    assert fim_token_ids(read_gguf_info(path).metadata) == {r: native[r] for r in FIM_ROLES if r in native}


def test_vocabularies_with_and_without_fim_tokens_are_among_those_compared() -> None:
    found = {p.stem: set(read_gguf_info(p).fim_tokens) for p in VOCABS}
    assert found["ggml-vocab-deepseek-coder"] == found["ggml-vocab-starcoder"] == set(FIM_ROLES)
    assert found["ggml-vocab-llama-spm"] == set()


def test_keys_win_over_names_and_the_older_keys_over_the_newer() -> None:
    meta = {
        "tokenizer.ggml.tokens": TOKENS,
        "tokenizer.ggml.fim_pre_token_id": 5,
        "tokenizer.ggml.prefix_token_id": 6,  # read after fim_pre: llama.cpp keeps this one
        "tokenizer.ggml.fim_mid_token_id": 7,
    }
    assert fim_token_ids(meta) == {"pre": 6, "mid": 7, "suf": 3}


def test_ids_outside_the_vocabulary_are_ignored() -> None:
    meta = {"tokenizer.ggml.tokens": TOKENS, "tokenizer.ggml.fim_pre_token_id": len(TOKENS),
            "tokenizer.ggml.fim_suf_token_id": -1}
    assert fim_token_ids(meta) == {"pre": 2, "suf": 3, "mid": 4}
    assert fim_token_ids({"tokenizer.ggml.fim_pre_token_id": 0}) == {}


def test_names_must_match_whole_tokens() -> None:
    assert fim_token_ids({"tokenizer.ggml.tokens": ["<fim_prefix> ", "fim_suffix", "<fim-middle>"]}) == {"mid": 2}
