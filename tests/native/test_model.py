from __future__ import annotations

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
