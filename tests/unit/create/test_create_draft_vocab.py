"""The DRAFT vocabulary check (pyollama.store.create.draft.check_vocab) on GGUF headers:
llama.cpp's common_speculative_are_compatible rules, each with the difference it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyollama.errors import BadRequestError
from pyollama.gguf import GGUFInfo
from pyollama.store.create.draft import check_vocab

TOKENS = ["<unk>", "<s>", "</s>", "<0x00>", "<0x01>", *(f"piece{i}" for i in range(200))]


def header(**metadata: Any) -> GGUFInfo:
    base: dict[str, Any] = {
        "general.architecture": "llama",
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": TOKENS,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    return GGUFInfo(path=Path("x.gguf"), version=3, metadata={**base, **metadata})


def refusal(model: GGUFInfo, draft: GGUFInfo) -> str:
    with pytest.raises(BadRequestError) as caught:
        check_vocab(model, draft)
    prefix = "the DRAFT model's vocabulary does not match the model's: "
    suffix = "; speculative decoding needs a draft with the model's tokenizer"
    message = caught.value.message
    assert message.startswith(prefix) and message.endswith(suffix)
    return message[len(prefix) : -len(suffix)]


NO_BOS = {"tokenizer.ggml.add_bos_token": False}


@pytest.mark.parametrize(
    ("model", "draft"),
    [
        ({}, {}),
        # Within llama.cpp's tolerance: up to 128 more (or fewer) tokens, the shared ones the same.
        ({}, {"tokenizer.ggml.tokens": [*TOKENS, *(f"extra{i}" for i in range(128))]}),
        ({}, {"tokenizer.ggml.tokens": TOKENS[:-128]}),
        # Ids below 5 are not compared (llama.cpp starts at SPEC_VOCAB_CHECK_START_TOKEN_ID).
        ({}, {"tokenizer.ggml.tokens": ["[UNK]", *TOKENS[1:]]}),
        # Where one file leaves add_bos_token to the tokenizer's default, it is not compared.
        ({}, {"tokenizer.ggml.add_bos_token": True}),
        # BOS ids differ but neither adds a BOS token: llama.cpp accepts it.
        (NO_BOS, {**NO_BOS, "tokenizer.ggml.bos_token_id": 7}),
    ],
)
def test_check_vocab_accepts_what_llama_cpp_speculates_with(model: dict[str, Any], draft: dict[str, Any]) -> None:
    check_vocab(header(**model), header(**draft))


def test_check_vocab_names_a_different_tokenizer() -> None:
    assert refusal(header(), header(**{"tokenizer.ggml.model": "gpt2"})) == (
        'the draft\'s tokenizer is "gpt2", the model\'s is "llama"'
    )


def test_check_vocab_names_a_size_past_the_tolerance() -> None:
    draft = header(**{"tokenizer.ggml.tokens": [*TOKENS, *(f"extra{i}" for i in range(129))]})
    assert refusal(header(), draft) == f"the draft has {len(TOKENS) + 129} tokens, the model {len(TOKENS)} (at most 128 apart)"


def test_check_vocab_names_the_first_token_that_differs() -> None:
    tokens = list(TOKENS)
    tokens[5], tokens[9] = "other", "another"
    assert refusal(header(), header(**{"tokenizer.ggml.tokens": tokens})) == (
        'token 5 is "other" in the draft and "piece0" in the model'
    )


def test_check_vocab_names_add_bos_and_bos_id_differences() -> None:
    adds = header(**{"tokenizer.ggml.add_bos_token": True})
    assert refusal(adds, header(**NO_BOS)) == "the model adds a BOS token, the draft does not"
    assert refusal(header(**NO_BOS), adds) == "the draft adds a BOS token, the model does not"
    assert refusal(adds, header(**{"tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.bos_token_id": 0})) == (
        "the draft's BOS token is 0, the model's is 1"
    )
    eos = header(**{"tokenizer.ggml.add_eos_token": True})
    assert refusal(eos, header(**{"tokenizer.ggml.add_eos_token": True, "tokenizer.ggml.eos_token_id": 3})) == (
        "the draft's EOS token is 3, the model's is 2"
    )
