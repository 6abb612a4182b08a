from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyollama.llama import Model


def test_metadata_reports_architecture_and_sizes(smollm2: Model) -> None:
    assert smollm2.architecture == "llama"
    assert smollm2.n_vocab == 49152
    assert smollm2.n_ctx_train == 8192
    assert smollm2.n_embd == 576
    assert 130_000_000 < smollm2.n_params < 140_000_000
    assert smollm2.ftype_name.startswith("Q4_1")
    meta = smollm2.metadata()
    assert meta["general.architecture"] == "llama"
    assert "tokenizer.chat_template" in meta
    assert "<|im_start|>" in (smollm2.chat_template() or "")


def test_special_tokens_are_exposed_by_name(smollm2: Model) -> None:
    special = smollm2.special_tokens
    assert special["bos"] == 1 and special["eos"] == 2
    assert smollm2.token_text(special["eos"]) == "<|im_end|>"
    assert smollm2.is_eog(special["eos"])
    assert not smollm2.supports_fim


def test_tokenize_round_trips_text(smollm2: Model) -> None:
    text = "Hello world, ¿qué tal? 日本語 🙂"
    tokens = smollm2.tokenize(text, add_special=False)
    assert smollm2.detokenize(tokens) == text


def test_tokenize_parses_special_tokens_only_when_asked(smollm2: Model) -> None:
    plain = smollm2.tokenize("<|im_start|>", add_special=False, parse_special=False)
    special = smollm2.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(special) == 1 and len(plain) > 1


def test_bad_token_ids_raise_index_error(smollm2: Model) -> None:
    with pytest.raises(IndexError):
        smollm2.token_to_piece(smollm2.n_vocab)
    with pytest.raises(IndexError):
        smollm2.detokenize([1, -5])
    with pytest.raises(IndexError):
        smollm2.is_eog(10**9)


def test_token_to_piece_returns_raw_bytes_of_partial_characters(smollm2: Model) -> None:
    tokens = smollm2.tokenize("🙂", add_special=False)
    pieces = b"".join(smollm2.token_to_piece(t) for t in tokens)
    assert pieces.decode("utf-8") == "🙂"


def test_missing_file_raises_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="failed to load model"):
        Model(tmp_path / "nope.gguf")


def test_garbage_file_raises_runtime_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(RuntimeError):
        Model(bad)


def test_progress_callback_reports_and_can_cancel(smollm2_path: Path) -> None:
    seen: list[float] = []
    Model(smollm2_path, progress=lambda p: seen.append(p) is None)
    assert seen and seen[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="canceled"):
        Model(smollm2_path, progress=lambda p: False)


def test_vocab_only_models_tokenize_like_llama_cpp_reference(vocab_dir: Path) -> None:
    """llama.cpp ships expected token ids for its vocab-only GGUFs; ours must match exactly."""
    checked = 0
    for name in ("llama-bpe", "llama-spm", "gpt-2", "bert-bge", "qwen2", "phi-3"):
        gguf = vocab_dir / f"ggml-vocab-{name}.gguf"
        if not (gguf.with_suffix(".gguf.inp")).exists():
            continue
        model = Model(gguf, vocab_only=True)
        inputs = gguf.with_suffix(".gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
        outputs = gguf.with_suffix(".gguf.out").read_text(encoding="utf-8").splitlines()
        for text, expected in zip(inputs, outputs):
            want = [int(t) for t in expected.split()]
            assert model.tokenize(text, add_special=False) == want, (name, text)
            checked += 1
    assert checked > 100


# -- detokenize(tokenize(x)) == x on llama.cpp's vocab-only GGUFs ----------------------------------------

# WPM (bert-bge) lowercases, strips accents and splits punctuation with spaces, and UGM
# (nomic-bert-moe) collapses and strips whitespace: both normalise the text by design, so no
# round trip holds for them. Every other vocab here is byte-level BPE or SentencePiece, lossless.
LOSSLESS_VOCABS = (
    "aquila", "baichuan", "command-r", "deepseek-coder", "deepseek-llm", "falcon", "gemma-4", "gpt-2",
    "gpt-neox", "llama-bpe", "llama-spm", "mpt", "phi-3", "qwen2", "qwen35", "refact", "starcoder",
)
# Their pre-tokenizer types turn on HF's clean_up_tokenization_spaces in llama-vocab.cpp, so
# detokenize drops the space in " ?", " !", " .", " ," (what the HF tokenizer decodes too).
CLEANS_SPACES = {"falcon", "gemma-4", "gpt-2", "llama-bpe", "mpt", "refact", "starcoder"}
# SentencePiece vocabs with a dummy prefix: tokenize prepends a space that detokenize removes
# again, unless it has just removed a BOS (llama_vocab::impl::detokenize: remove_space = false).
SPACE_PREFIX = {"baichuan", "llama-spm", "phi-3"}
ROUND_TRIP_TEXTS = [
    "Hello world",
    " Hello world",
    "   three leading spaces",
    "trailing spaces  ",
    "a\n\nb\tc\r\nd",
    "Ünïcödé ñ façade",
    "日本語のテキストと中文",
    "😶‍🌫️ 🦙🦙 ✅",
    "def f(x):\n    return x * 2\n",
    "Привет, мир",
    "3.14159 1,000,000",
]


def _round_trip_texts(gguf: Path) -> list[str]:
    inp = gguf.with_suffix(".gguf.inp")
    reference = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n") if inp.exists() else []
    return reference + ROUND_TRIP_TEXTS


def _cleaned(text: str) -> str:
    return re.sub(r" (?=[?!.,])", "", text)


@pytest.mark.parametrize("name", LOSSLESS_VOCABS)
def test_vocab_detokenize_inverts_tokenize_without_specials(vocab_dir: Path, name: str) -> None:
    gguf = vocab_dir / f"ggml-vocab-{name}.gguf"
    model = Model(gguf, vocab_only=True)
    for text in _round_trip_texts(gguf):
        expected = _cleaned(text) if name in CLEANS_SPACES else text
        assert model.detokenize(model.tokenize(text, add_special=False)) == expected, (name, text)


@pytest.mark.parametrize("name", LOSSLESS_VOCABS)
def test_vocab_detokenize_removes_the_bos_tokenize_added(vocab_dir: Path, name: str) -> None:
    gguf = vocab_dir / f"ggml-vocab-{name}.gguf"
    model = Model(gguf, vocab_only=True)
    for text in ROUND_TRIP_TEXTS:
        tokens = model.tokenize(text, add_special=True)
        if model.add_bos:
            assert tokens[0] == model.token_bos
        expected = " " + text if name in SPACE_PREFIX else text
        assert model.detokenize(tokens, remove_special=True) == expected, (name, text)


def test_vocab_space_cleanup_applies_only_to_vocabs_that_ask_for_it(vocab_dir: Path) -> None:
    text = "How are you ? Fine , thanks !"
    cleaning = Model(vocab_dir / "ggml-vocab-gpt-2.gguf", vocab_only=True)
    plain = Model(vocab_dir / "ggml-vocab-qwen2.gguf", vocab_only=True)
    assert cleaning.detokenize(cleaning.tokenize(text, add_special=False)) == "How are you? Fine, thanks!"
    assert plain.detokenize(plain.tokenize(text, add_special=False)) == text
