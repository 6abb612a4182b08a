"""Tokenizer files -> GGUF tokenizer metadata, checked on small hand-made tokenizers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import pytest
from convert_helpers import BYTE_LEVEL, BYTE_LEVEL_NO_REGEX, sentencepiece_model

from pyollama.store.convert.tokenizer import (
    LLAMA3_SPLIT,
    QWEN2_SPLIT,
    TokenizerError,
    load_causal_vocab,
    load_wordpiece_vocab,
    parse_sentencepiece_model,
    pre_tokenizer_name,
)


def _write(dir_: Path, files: dict[str, Any]) -> Path:
    for name, content in files.items():
        (dir_ / name).write_text(
            content if isinstance(content, str) else json.dumps(content), encoding="utf-8"
        )
    return dir_


def _split(regex: str) -> dict[str, Any]:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


@pytest.mark.parametrize(
    ("pre_tokenizer", "expected"),
    [
        (BYTE_LEVEL, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL],
            },
            "smollm",
        ),
        ({"type": "Sequence", "pretokenizers": [_split(LLAMA3_SPLIT), BYTE_LEVEL_NO_REGEX]}, "llama-bpe"),
        ({"type": "Sequence", "pretokenizers": [_split(QWEN2_SPLIT), BYTE_LEVEL_NO_REGEX]}, "qwen2"),
        ({"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, BYTE_LEVEL]}, "default"),
        ({"type": "Sequence", "pretokenizers": [_split(r"\d+"), BYTE_LEVEL_NO_REGEX]}, "default"),
    ],
)
def test_pre_tokenizer_name_follows_split_rules(pre_tokenizer: dict[str, Any], expected: str) -> None:
    assert pre_tokenizer_name({"pre_tokenizer": pre_tokenizer}) == expected


def _bpe_tokenizer(
    merges: list[Any], post: dict[str, Any] | None = None, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    vocab = {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġa": 4, "<|endoftext|>": 5, "<extra>": 6, "a b": 7}
    return {
        "added_tokens": [
            {"id": 5, "content": "<|endoftext|>", "special": True},
            {"id": 6, "content": "<extra>", "special": False},
            *(extra or []),
        ],
        "pre_tokenizer": BYTE_LEVEL,
        "post_processor": post,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    }


IM_START = {"id": 9, "content": "<|im_start|>", "special": False}


def test_gpt2_vocab_pads_types_and_merges(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "tokenizer.json": _bpe_tokenizer([["a", "b"], ["Ġ", "a"], ["a", " b"]], extra=[IM_START]),
            "tokenizer_config.json": {
                "eos_token": {"content": "<|endoftext|>"},
                "bos_token": "<|im_start|>",
                "add_bos_token": True,
                "chat_template": "{{ x }}",
            },
        },
    )
    vocab = load_causal_vocab(src, 12)
    assert vocab.model == "gpt2" and vocab.pre == "gpt-2"
    assert vocab.tokens[:8] == ["a", "b", "ab", "Ġ", "Ġa", "<|endoftext|>", "<extra>", "a b"]
    assert vocab.tokens[8] == "[PAD8]" and vocab.tokens[9] == "<|im_start|>" and len(vocab.tokens) == 12
    types = vocab.token_types
    assert types[0] == gguf.TokenType.NORMAL and types[5] == gguf.TokenType.CONTROL
    assert types[6] == gguf.TokenType.USER_DEFINED and types[8] == gguf.TokenType.UNUSED
    # "<|...|>" tokens are control tokens even when not flagged special.
    assert types[9] == gguf.TokenType.CONTROL
    # Pair-form merges holding a space are written with llama.cpp's U+0120 spelling.
    assert vocab.merges == ["a b", "Ġ a", "a Ġb"]
    assert vocab.special_ids == {"bos": 9, "eos": 5}
    assert vocab.add_special == {"bos": True}
    assert vocab.chat_template == "{{ x }}"


def test_post_processor_decides_add_bos_over_tokenizer_config(tmp_path: Path) -> None:
    template = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
    }
    src = _write(
        tmp_path,
        {
            "tokenizer.json": _bpe_tokenizer(["a b"], template),
            "tokenizer_config.json": {"add_bos_token": False},
        },
    )
    vocab = load_causal_vocab(src, 8)
    assert vocab.special_ids["bos"] == 5
    assert vocab.add_special["bos"] is True


def test_special_ids_fall_back_to_config_json(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "tokenizer.json": _bpe_tokenizer(["a b"], {"type": "ByteLevel"}),
            "config.json": {"bos_token_id": 0, "eos_token_id": 5, "pad_token_id": 99},
        },
    )
    vocab = load_causal_vocab(src, 8)
    # Out-of-range ids are dropped rather than written.
    assert vocab.special_ids == {"bos": 0, "eos": 5}
    assert vocab.add_special == {"bos": False, "eos": False}


def test_token_id_beyond_vocab_size_raises(tmp_path: Path) -> None:
    src = _write(tmp_path, {"tokenizer.json": _bpe_tokenizer(["a b"], extra=[IM_START])})
    with pytest.raises(TokenizerError, match="id 9 but the model's vocab_size is 9"):
        load_causal_vocab(src, 9)
    with pytest.raises(TokenizerError, match="id 7 but the model's vocab_size is 6"):
        load_causal_vocab(src, 6)


def test_missing_tokenizer_raises_ollama_message(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="^unknown tokenizer format$"):
        load_causal_vocab(tmp_path, 10)
    with pytest.raises(TokenizerError, match="^unknown tokenizer format$"):
        load_wordpiece_vocab(tmp_path, 10, 2)


def test_unigram_tokenizer_json_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, {"tokenizer.json": {"model": {"type": "Unigram", "vocab": []}}})
    with pytest.raises(TokenizerError, match="Unigram"):
        load_causal_vocab(src, 10)


def test_chat_template_list_and_jinja_file(tmp_path: Path) -> None:
    named = [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]
    src = _write(
        tmp_path,
        {"tokenizer.json": _bpe_tokenizer(["a b"]), "tokenizer_config.json": {"chat_template": named}},
    )
    assert load_causal_vocab(src, 8).chat_template == named
    other = tmp_path / "other"
    other.mkdir()
    _write(other, {"tokenizer.json": _bpe_tokenizer(["a b"]), "chat_template.jinja": "J"})
    assert load_causal_vocab(other, 8).chat_template == "J"


def test_parse_sentencepiece_model_reads_pieces() -> None:
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("▁the", -1.5, 1), ("<0x0A>", 0.0, 6)]
    assert parse_sentencepiece_model(sentencepiece_model(pieces)) == pieces


@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0f", b"", b"\x0a\x03\x0a\x05ab"])
def test_parse_sentencepiece_model_rejects_garbage(data: bytes) -> None:
    with pytest.raises(TokenizerError):
        parse_sentencepiece_model(data)


def test_sentencepiece_vocab_applies_added_tokens(tmp_path: Path) -> None:
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁hi", -1.0, 1)]
    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model(pieces))
    _write(
        tmp_path,
        {
            "added_tokens.json": {"<tool>": 4},
            "tokenizer_config.json": {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "add_prefix_space": False,
                "added_tokens_decoder": {"5": {"content": "<|eot|>", "special": True}},
            },
        },
    )
    vocab = load_causal_vocab(tmp_path, 7)
    assert vocab.model == "llama" and vocab.pre == "default"
    assert vocab.tokens[:6] == ["<unk>", "<s>", "</s>", "▁hi", "<tool>", "<|eot|>"]
    assert vocab.scores is not None and vocab.scores[3] == -1.0 and vocab.scores[4] == -1000.0
    assert (
        vocab.token_types[4] == gguf.TokenType.USER_DEFINED and vocab.token_types[5] == gguf.TokenType.CONTROL
    )
    assert vocab.token_types[6] == gguf.TokenType.UNUSED
    assert vocab.special_ids == {"bos": 1, "eos": 2}
    assert vocab.add_space_prefix is False


def test_wordpiece_from_vocab_txt_uses_phantom_spaces(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##ing\n,\n", encoding="utf-8")
    _write(
        tmp_path,
        {
            "tokenizer_config.json": {
                "do_lower_case": False,
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
            }
        },
    )
    vocab = load_wordpiece_vocab(tmp_path, 8, 2)
    assert vocab.model == "bert" and vocab.token_type_count == 2
    assert vocab.tokens[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "▁hello", "ing", "▁,"]
    assert vocab.token_types[0] == gguf.TokenType.CONTROL and vocab.token_types[4] == gguf.TokenType.NORMAL
    assert vocab.special_ids == {"bos": 2, "eos": 3, "unk": 1, "sep": 3, "pad": 0, "cls": 2}
    assert vocab.normalizer_lowercase is False


def test_wordpiece_rejects_bpe_tokenizer_json(tmp_path: Path) -> None:
    _write(tmp_path, {"tokenizer.json": _bpe_tokenizer(["a b"])})
    with pytest.raises(TokenizerError, match="WordPiece"):
        load_wordpiece_vocab(tmp_path, 8, 2)


def test_malformed_tokenizer_json_raises(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_causal_vocab(tmp_path, 8)
    _write(tmp_path, {"tokenizer.json": {"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}})
    with pytest.raises(TokenizerError, match="non-negative"):
        load_causal_vocab(tmp_path, 8)
