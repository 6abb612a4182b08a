"""Quantization of float GGUFs (F32 and F16 tiny Llamas) with llama.cpp, through pyollama.llama.quantize."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gguf
import numpy as np
import pytest
from tiny_model import greedy_generate, tiny_llama_cached

from pyollama.llama import Batch, Context, Model, quantize

PROMPT = "The quick brown fox jumps over the lazy dog"

# type name -> (llama_ftype_name of the result, GGML types its 2-D weights must use).
# Q4_K_M keeps some matrices (output, half the attn_v/ffn_down) at Q6_K by design.
EXPECTED = {
    "Q8_0": ("Q8_0", {"Q8_0"}),
    "Q4_K_M": ("Q4_K - Medium", {"Q4_K", "Q6_K"}),
}
# Pearson correlation of the last-token logits with the F32 model's: random weights give ~0, so these
# bounds prove the quantized weights are the source's; measured 0.9996 (Q8_0) and 0.972 (Q4_K_M).
MIN_LOGIT_CORRELATION = {"Q8_0": 0.99, "Q4_K_M": 0.9}


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_cached(tmp_path_factory, "F32")


@pytest.fixture(scope="module")
def tiny_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_cached(tmp_path_factory, "F16")


def _last_logits(model: Model, tokens: list[int]) -> np.ndarray:
    ctx = Context(model, n_ctx=128, n_threads=1)
    batch = Batch(len(tokens))
    batch.add_sequence(tokens, 0)
    assert ctx.decode(batch) == 0
    return ctx.logits(-1)


def _matrix_types(path: Path) -> Counter[str]:
    return Counter(t.tensor_type.name for t in gguf.GGUFReader(path).tensors if len(t.shape) == 2)


@pytest.mark.parametrize("source", ["F32", "F16"])
@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_quantize_float_model_gives_a_loadable_generating_model(
    source: str, type_name: str, tiny_f32: Path, tiny_f16: Path, tmp_path: Path
) -> None:
    src = tiny_f32 if source == "F32" else tiny_f16
    dst = tmp_path / f"tiny-{type_name}.gguf"
    quantize(src, dst, type_name)

    assert dst.stat().st_size < src.stat().st_size
    ftype_name, matrix_types = EXPECTED[type_name]
    assert set(_matrix_types(dst)) == matrix_types  # K-quants applied, no fallback to other types
    model = Model(dst)
    assert model.ftype_name == ftype_name
    reference = Model(tiny_f32)
    assert model.n_vocab == reference.n_vocab and model.n_layer == reference.n_layer

    prompt = model.tokenize(PROMPT)
    assert prompt == reference.tokenize(PROMPT)  # the vocabulary survives quantization
    logits = _last_logits(model, prompt)
    assert np.isfinite(logits).all()
    correlation = float(np.corrcoef(logits, _last_logits(reference, prompt))[0, 1])
    assert correlation > MIN_LOGIT_CORRELATION[type_name]

    tokens = greedy_generate(model, prompt, 4)
    assert tokens and all(0 <= t < model.n_vocab for t in tokens)


def test_quantize_accepts_lower_case_and_short_k_names(tiny_f16: Path, tmp_path: Path) -> None:
    dst = tmp_path / "q4k.gguf"
    quantize(tiny_f16, dst, "q4_K")  # Ollama's name for Q4_K_M
    assert Model(dst).ftype_name == "Q4_K - Medium"


@pytest.mark.parametrize("type_name", ["Q9_9", "", "q4_k_x", "F64", "Q4_K_M "])
def test_quantize_unknown_type_raises_value_error_and_writes_nothing(
    type_name: str, tiny_f32: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "out.gguf"
    with pytest.raises(ValueError, match="unsupported quantization type"):
        quantize(tiny_f32, dst, type_name)
    assert list(tmp_path.iterdir()) == []


def test_quantize_missing_source_raises_runtime_error_and_leaves_no_output(tmp_path: Path) -> None:
    dst = tmp_path / "out.gguf"
    with pytest.raises(RuntimeError, match="quantization of .* failed"):
        quantize(tmp_path / "missing.gguf", dst, "Q8_0")
    assert list(tmp_path.iterdir()) == []


def test_quantize_of_a_non_gguf_source_raises_runtime_error(tmp_path: Path) -> None:
    src = tmp_path / "junk.gguf"
    src.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    dst = tmp_path / "out.gguf"
    with pytest.raises(RuntimeError):
        quantize(src, dst, "Q8_0")
    assert not dst.exists()


def test_quantize_of_a_quantized_model_is_refused(tiny_f32: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    quantize(tiny_f32, q8, "Q8_0")
    with pytest.raises(RuntimeError):
        quantize(
            q8, tmp_path / "q4.gguf", "Q4_K_M"
        )  # llama.cpp refuses requantizing without allow_requantize
    assert not (tmp_path / "q4.gguf").exists()


def test_failed_quantize_leaves_an_existing_destination_untouched(tiny_f32: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    quantize(tiny_f32, q8, "Q8_0")
    dst = tmp_path / "existing.gguf"
    dst.write_bytes(b"a blob the store already has")
    with pytest.raises(RuntimeError):
        quantize(q8, dst, "Q4_K_M")
    assert dst.read_bytes() == b"a blob the store already has"


def test_quantize_reports_progress_once_per_tensor_on_the_calling_thread(tiny_f16: Path, tmp_path: Path) -> None:
    import threading

    calls: list[tuple[int, int, str]] = []
    quantize(tiny_f16, tmp_path / "q8.gguf", "Q8_0",
             progress=lambda i, n: calls.append((i, n, threading.current_thread().name)))
    n_tensors = len(gguf.GGUFReader(tiny_f16).tensors)
    assert [(i, n) for i, n, _ in calls] == [(i, n_tensors) for i in range(1, n_tensors + 1)]
    assert {name for _, _, name in calls} == {threading.current_thread().name}


def test_quantize_progress_callback_error_is_raised_after_a_complete_file(tiny_f16: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def stop_at_three(i: int, n: int) -> None:
        seen.append(i)
        if i == 3:
            raise KeyError("enough")

    dst = tmp_path / "q8.gguf"
    with pytest.raises(KeyError, match="enough"):
        quantize(tiny_f16, dst, "Q8_0", progress=stop_at_three)
    assert seen == [1, 2, 3]  # not called again after it failed
    assert not dst.exists()  # a failed quantize leaves nothing behind
    with pytest.raises(TypeError, match="callable"):
        quantize(tiny_f16, dst, "Q8_0", progress=42)  # type: ignore[arg-type]
